package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// readyTimeout bounds how long a starting server may take to accept
	// connections.
	readyTimeout = time.Minute
	// stopTimeout bounds a fast shutdown before the server is killed.
	stopTimeout = 30 * time.Second
	// dirPrefix names the directories of throwaway clusters; the pid of the
	// owning test binary follows, so that a later binary can tell which
	// ones were orphaned.
	dirPrefix = "neostore-pgtest-"
)

// Server is a throwaway PostgreSQL cluster that a test owns: it can stop
// and start it again (same port, same data) or freeze it, which the shared
// cluster of Start must never do. StartServer stops it and removes its
// files when the test ends.
type Server struct {
	bin     string // directory holding initdb and postgres
	dir     string // everything of the cluster; removed by shutdown
	data    string
	sockDir string
	logPath string
	runAs   *account // nil: run as the current user

	mu     sync.Mutex
	port   int
	proc   *os.Process   // running postmaster, or nil
	done   chan struct{} // closed when proc has exited
	frozen bool
}

// account is the user a cluster runs as when the test binary is root.
type account struct {
	name     string
	uid, gid int
}

// StartServer starts a dedicated cluster for tb. Use it only for tests
// that stop, start or freeze the server; everything else shares one
// cluster through Start. It does not use NEOSTORE_TEST_POSTGRES_URL: a
// server that the test stops must be its own.
func StartServer(tb testing.TB) *Server {
	tb.Helper()
	srv, err := newServer()
	if err == nil {
		if err = srv.start(); err != nil {
			_ = srv.shutdown()
		}
	}
	if err != nil {
		fail(tb, err)
	}
	tb.Cleanup(func() {
		if err := srv.shutdown(); err != nil {
			tb.Errorf("pgtest: %v", err)
		}
	})
	return srv
}

// NewDatabase returns the URL of a fresh, empty database on s, owned by
// tb and dropped when tb ends (unless s is stopped then).
func (s *Server) NewDatabase(tb testing.TB) string {
	tb.Helper()
	if !s.Running() {
		tb.Fatalf("pgtest: NewDatabase on a stopped server")
	}
	return createDatabase(tb, s.adminURL(), "", s.Running)
}

// Port returns the loopback TCP port of s, which stays the same across
// Stop and Start.
func (s *Server) Port() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.port
}

// Running reports whether the server process is up (frozen or not).
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil
}

// Stop shuts the server down ("fast" mode: sessions are terminated,
// committed data is kept) and waits until it has exited.
func (s *Server) Stop(tb testing.TB) {
	tb.Helper()
	if err := s.stop(); err != nil {
		tb.Fatalf("pgtest: stop: %v", err)
	}
}

// Start starts the stopped server again, on the same port and data
// directory, and waits until it accepts connections.
func (s *Server) Start(tb testing.TB) {
	tb.Helper()
	if err := s.start(); err != nil {
		tb.Fatalf("pgtest: start: %v", err)
	}
}

// Freeze suspends every process of the server (SIGSTOP), which to clients
// looks like a network partition: connections are accepted by the kernel
// but nothing answers. Thaw resumes it; Stop and the cleanup of
// StartServer thaw a frozen server first.
func (s *Server) Freeze(tb testing.TB) {
	tb.Helper()
	if err := s.freeze(); err != nil {
		tb.Fatalf("pgtest: freeze: %v", err)
	}
}

// Thaw resumes a server suspended by Freeze.
func (s *Server) Thaw(tb testing.TB) {
	tb.Helper()
	if err := s.thaw(); err != nil {
		tb.Fatalf("pgtest: thaw: %v", err)
	}
}

// adminURL is the superuser's URL of the maintenance database.
func (s *Server) adminURL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&application_name=pgtest", s.Port())
}

// newServer finds the binaries, creates the cluster's directory and runs
// initdb. It removes what it created when it fails.
func newServer() (srv *Server, err error) {
	sweepOrphans()
	bin, err := findBinDir()
	if err != nil {
		return nil, err
	}
	runAs, err := runAsAccount()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", dirPrefix, os.Getpid()))
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()
	s := &Server{
		bin:     bin,
		dir:     dir,
		data:    filepath.Join(dir, "data"),
		sockDir: filepath.Join(dir, "sock"),
		logPath: filepath.Join(dir, "postgres.log"),
		runAs:   runAs,
	}
	if err := os.Mkdir(s.sockDir, 0o700); err != nil {
		return nil, err
	}
	if runAs != nil {
		for _, p := range []string{dir, s.sockDir} {
			if err := os.Chown(p, runAs.uid, runAs.gid); err != nil {
				return nil, fmt.Errorf("hand %s to user %s: %w", p, runAs.name, err)
			}
		}
	}
	if err := s.initdb(); err != nil {
		return nil, err
	}
	return s, nil
}

// initdb creates the cluster. Where the server supports it (PostgreSQL 15
// and later with ICU) the cluster's default collation is ICU en-US, not C,
// so that every test database sorts text unlike byte order and code that
// forgets COLLATE "C" fails its tests.
func (s *Server) initdb() error {
	base := []string{"-D", s.data, "-U", "postgres", "--auth=trust", "--no-sync", "--encoding=UTF8"}
	attempts := [][]string{
		append(slices.Clone(base), "--locale=C", "--locale-provider=icu", "--icu-locale=en-US"),
		append(slices.Clone(base), "--no-locale"),
	}
	var errs []error
	for _, args := range attempts {
		_ = os.RemoveAll(s.data)
		out, err := s.command(filepath.Join(s.bin, "initdb"), args...).CombinedOutput()
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("initdb %s: %w\n%s", strings.Join(args, " "), err, tail(out, 20)))
	}
	return errors.Join(errs...)
}

// command returns a command that runs as the cluster's user, in the
// cluster's directory (initdb refuses a working directory it cannot read).
func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = s.dir
	cmd.SysProcAttr = sysProcAttr(s.runAs, false)
	return cmd
}

// start starts the postmaster and waits until it accepts connections. The
// first start picks a free port; later ones reuse it.
func (s *Server) start() error {
	s.mu.Lock()
	running, pickPort := s.proc != nil, s.port == 0
	s.mu.Unlock()
	if running {
		return errors.New("server is already running")
	}
	var err error
	for range 5 {
		if pickPort {
			port, perr := freePort()
			if perr != nil {
				return perr
			}
			s.mu.Lock()
			s.port = port
			s.mu.Unlock()
		}
		if err = s.spawn(); err != nil {
			return err
		}
		if err = s.waitReady(); err == nil {
			return nil
		}
		// Another process took the port between freePort and bind: try
		// another one, unless the port is promised to stay the same.
		if !pickPort || !errors.Is(err, errPortInUse) {
			return err
		}
	}
	return err
}

var errPortInUse = errors.New("port in use")

// spawn starts the postmaster as a direct child with a parent-death
// signal. Go ties that signal to the OS thread that forked the child, so
// the fork happens on a goroutine locked to its thread for as long as
// the server runs.
func (s *Server) spawn() error {
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	port := s.Port()
	args := []string{
		"-D", s.data,
		"-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=" + s.sockDir,
		// Test data is disposable: no fsync (never do this in production).
		"-c", "fsync=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=200",
		"-c", "log_min_messages=warning",
	}
	started := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		lockThread()
		cmd := exec.Command(filepath.Join(s.bin, "postgres"), args...)
		cmd.Dir = s.dir
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = sysProcAttr(s.runAs, true)
		err := cmd.Start()
		_ = logf.Close() // the child holds its own descriptor
		if err != nil {
			started <- err
			close(done)
			return
		}
		s.mu.Lock()
		s.proc, s.done = cmd.Process, done
		s.mu.Unlock()
		started <- nil
		_ = cmd.Wait()
		s.mu.Lock()
		if s.proc == cmd.Process {
			s.proc, s.frozen = nil, false
		}
		s.mu.Unlock()
		close(done)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	return nil
}

// waitReady polls until the server accepts a connection, it exits, or
// readyTimeout passes.
func (s *Server) waitReady() error {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	deadline := time.Now().Add(readyTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, s.adminURL())
		cancel()
		if err == nil {
			_ = conn.Close(context.Background())
			return nil
		}
		select {
		case <-done:
			log := s.logTail()
			if strings.Contains(log, "could not bind") || strings.Contains(log, "already in use") {
				return fmt.Errorf("%w: %s", errPortInUse, log)
			}
			return fmt.Errorf("postgres exited during start; log:\n%s", log)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = s.stop()
			return fmt.Errorf("postgres did not accept connections within %v: %v; log:\n%s", readyTimeout, err, s.logTail())
		}
	}
}

// stop shuts the server down and waits for it: fast shutdown, then
// immediate, then kill.
func (s *Server) stop() error {
	if err := s.thaw(); err != nil {
		return err
	}
	s.mu.Lock()
	proc, done := s.proc, s.done
	s.mu.Unlock()
	if proc == nil {
		return nil
	}
	for _, sig := range stopSignals {
		if err := signalProcess(proc.Pid, sig); err != nil {
			return fmt.Errorf("signal postmaster: %w", err)
		}
		select {
		case <-done:
			return nil
		case <-time.After(stopTimeout):
		}
	}
	<-done
	return nil
}

// shutdown stops the server and removes its files.
func (s *Server) shutdown() error {
	err := s.stop()
	if rmErr := os.RemoveAll(s.dir); rmErr != nil {
		err = errors.Join(err, rmErr)
	}
	if err != nil {
		return fmt.Errorf("shut down cluster in %s: %w", s.dir, err)
	}
	return nil
}

func (s *Server) freeze() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return errors.New("server is not running")
	}
	if s.frozen {
		return nil
	}
	// The postmaster first, so that it forks no child after the listing.
	if err := suspend(s.proc.Pid, true); err != nil {
		return err
	}
	s.frozen = true
	return nil
}

func (s *Server) thaw() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil || !s.frozen {
		return nil
	}
	if err := suspend(s.proc.Pid, false); err != nil {
		return err
	}
	s.frozen = false
	return nil
}

// logTail returns the end of the server's log, for error messages.
func (s *Server) logTail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return tail(b, 30)
}

func tail(b []byte, lines int) string {
	ls := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return string(bytes.Join(ls, []byte("\n")))
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

var versionDir = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)

// findBinDir returns the directory holding initdb and postgres.
func findBinDir() (string, error) {
	has := func(dir string) bool {
		for _, name := range []string{"initdb", "postgres"} {
			if info, err := os.Stat(filepath.Join(dir, name)); err != nil || info.IsDir() {
				return false
			}
		}
		return true
	}
	if dir := os.Getenv(EnvBinDir); dir != "" {
		if !has(dir) {
			return "", fmt.Errorf("%w: %s=%s holds no initdb and postgres", errNoBinaries, EnvBinDir, dir)
		}
		return dir, nil
	}
	// Debian and Ubuntu: /usr/lib/postgresql/<major>/bin, newest first.
	entries, _ := os.ReadDir("/usr/lib/postgresql")
	var versions []string
	for _, e := range entries {
		if versionDir.MatchString(e.Name()) && has(filepath.Join("/usr/lib/postgresql", e.Name(), "bin")) {
			versions = append(versions, e.Name())
		}
	}
	if len(versions) > 0 {
		slices.SortFunc(versions, func(a, b string) int { return compareVersions(b, a) })
		return filepath.Join("/usr/lib/postgresql", versions[0], "bin"), nil
	}
	if initdb, err := exec.LookPath("initdb"); err == nil && has(filepath.Dir(initdb)) {
		return filepath.Dir(initdb), nil
	}
	return "", fmt.Errorf("%w: looked in $%s, /usr/lib/postgresql/*/bin and PATH for initdb and postgres", errNoBinaries, EnvBinDir)
}

// compareVersions orders "9.6" < "15" < "16.1" numerically.
func compareVersions(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(pa), len(pb)) {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			return x - y
		}
	}
	return 0
}
