//go:build unix

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/neostore/neostore-secrets/offline"
	"github.com/neostore/neostore-secrets/secretenv"
)

// runServer starts a real server with an API key (read and write) for
// tenant acme.
func runServer(t *testing.T) (srv *server, dataDir, key string) {
	t.Helper()
	dataDir = filepath.Join(t.TempDir(), "data")
	// No metrics listener: its port 0 can be handed the very port freeAddr
	// picked for the API before serve binds it (seen once in 20 runs).
	srv = startServer(t, dataDir, newMasterKey(t), "--metrics-listen", "off")
	return srv, dataDir, createKey(t, dataDir, "acme", "Secret.Read", "Secret.Write")
}

// putSecret stores value under name in tenant acme.
func putSecret(t *testing.T, srv *server, key, name, value string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"value": value})
	if status, _, resp := do(t, "PUT", srv.base+"/api/acme/secrets/"+name, key, string(body)); status != 204 {
		t.Fatalf("PUT %s = %d %s", name, status, resp)
	}
}

// runEnv is the environment of a run process: a PATH, a home and cache of
// its own, the server's address, tenant acme and the API key.
func runEnv(t *testing.T, srv *server, key string, extra ...string) []string {
	t.Helper()
	return append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(),
		"XDG_CACHE_HOME=" + t.TempDir(),
		"NEOSTORE_ADDR=" + srv.base,
		"NEOSTORE_TENANT=acme",
		"NEOSTORE_API_KEY=" + key,
	}, extra...)
}

// runProc is `neostore-secrets run` running as a real process, in a
// process group of its own (so a test's terminal, if any, sends it nothing).
type runProc struct {
	cmd    *exec.Cmd
	lines  chan string // the stdout lines of run and its child
	seen   []string    // the lines read so far
	stderr *syncBuffer
	done   chan struct{}
	code   int
}

func startRun(t *testing.T, env []string, args ...string) *runProc {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	// stderr is a pipe of our own too: given a Writer, exec's Wait would
	// wait for the pipe to close, which a grandchild left behind can delay.
	er, ew, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &runProc{lines: make(chan string, 256), stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(programBinary(t), append([]string{"run"}, args...)...)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = w, ew
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	ew.Close()
	stderrDone := make(chan struct{})
	go func() {
		io.Copy(p.stderr, er)
		er.Close()
		close(stderrDone)
	}()
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		r.Close()
	}()
	go func() {
		p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
		// What the child left behind (a shell's background job) goes with
		// run, so that the pipes close.
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-stderrDone
		close(p.done)
	}()
	t.Cleanup(func() {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) // run, its child and anything the child left
		<-p.done
	})
	return p
}

// waitLine returns the first stdout line from now on that starts with
// prefix, and fails when none comes within limit.
func (p *runProc) waitLine(t *testing.T, prefix string, limit time.Duration) string {
	t.Helper()
	timeout := time.After(limit)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				t.Fatalf("stdout ended without a line starting %q; lines %q\nstderr:\n%s", prefix, p.seen, p.stderr)
			}
			p.seen = append(p.seen, line)
			if strings.HasPrefix(line, prefix) {
				return line
			}
		case <-timeout:
			t.Fatalf("no line starting %q within %v; lines %q\nstderr:\n%s", prefix, limit, p.seen, p.stderr)
		}
	}
}

// wait returns run's exit code, failing when it does not exit within limit.
func (p *runProc) wait(t *testing.T, limit time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(limit):
		t.Fatalf("run did not exit within %v\nstderr:\n%s", limit, p.stderr)
		return 0
	}
}

// output waits for run to exit and returns its exit code and every stdout line.
func (p *runProc) output(t *testing.T, limit time.Duration) (int, []string) {
	t.Helper()
	code := p.wait(t, limit)
	timeout := time.After(limit)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				return code, p.seen
			}
			p.seen = append(p.seen, line)
		case <-timeout:
			t.Fatalf("stdout not closed within %v after exit", limit)
		}
	}
}

func (p *runProc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// waitStderr waits until run's stderr contains s.
func (p *runProc) waitStderr(t *testing.T, s string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !strings.Contains(p.stderr.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("stderr does not say %q within %v:\n%s", s, limit, p.stderr)
		}
		select {
		case <-p.done:
			t.Fatalf("run exited (%d) before stderr said %q:\n%s", p.code, s, p.stderr)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// noValues fails when text holds one of the values.
func noValues(t *testing.T, where, text string, values ...string) {
	t.Helper()
	for _, v := range values {
		if strings.Contains(text, v) {
			t.Errorf("%s holds the value %q:\n%s", where, v, text)
		}
	}
}

const limit = 30 * time.Second

func TestRun_Environment(t *testing.T) {
	srv, _, key := runServer(t)
	const pw, api = "PLANTED-env-pw-3b1e", "PLANTED-env-api-77c0"
	putSecret(t, srv, key, "db-password", pw)
	putSecret(t, srv, key, "api-key", api)
	script := `echo "env PG=$PGPASSWORD API=$API_KEY DB=${DB_PASSWORD-unset} CRED=${NEOSTORE_API_KEY-unset} INH=${INHERITED-unset}"`

	t.Run("AllWithRename", func(t *testing.T) {
		p := startRun(t, runEnv(t, srv, key, "INHERITED=yes"), "--all", "--env", "PGPASSWORD=db-password", "--", "sh", "-c", script)
		line := p.waitLine(t, "env ", limit)
		if want := "env PG=" + pw + " API=" + api + " DB=unset CRED=unset INH=yes"; line != want {
			t.Errorf("child saw %q, want %q", line, want)
		}
		if code := p.wait(t, limit); code != 0 {
			t.Errorf("exit code %d, want 0\n%s", code, p.stderr)
		}
		noValues(t, "run's stderr", p.stderr.String(), pw, api, key)
	})
	t.Run("NoInheritEnv", func(t *testing.T) {
		p := startRun(t, runEnv(t, srv, key, "INHERITED=yes"), "--no-inherit-env", "--key", "api-key", "--env", "PGPASSWORD=db-password", "--", "sh", "-c", script)
		if line, want := p.waitLine(t, "env ", limit), "env PG="+pw+" API="+api+" DB=unset CRED=unset INH=unset"; line != want {
			t.Errorf("child saw %q, want %q", line, want)
		}
		p.wait(t, limit)
	})
	t.Run("MissingKey", func(t *testing.T) {
		p := startRun(t, runEnv(t, srv, key), "--key", "absent", "--", "sh", "-c", "echo started")
		code, lines := p.output(t, limit)
		if code != exitNotFound || len(lines) != 0 {
			t.Errorf("run with an absent key = exit %d, lines %q; want %d and no child", code, lines, exitNotFound)
		}
	})
}

func TestRun_Mount(t *testing.T) {
	srv, _, key := runServer(t)
	values := map[string]string{
		"db-password": "PLANTED-mount-1 it's \"quoted\"\nand $HOME \\ multi-line",
		"api-key":     "PLANTED-mount-2",
	}
	for k, v := range values {
		putSecret(t, srv, key, k, v)
	}
	want := map[string]string{"DB_PASSWORD": values["db-password"], "API_KEY": values["api-key"]}
	// The child reports the file's mode, copies it out, and reports whether
	// the secret is in its environment too.
	script := `echo "mode $(stat -c %a "$1")"; cp "$1" "$2"; echo "env ${API_KEY-unset}"`

	for _, tc := range []struct {
		name  string
		flags []string
		parse func([]byte) (map[string]string, error)
	}{
		{"Dotenv", []string{"--format", "dotenv"}, secretenv.ParseDotenv},
		{"JSON", []string{"--format", "json", "--mount-only"}, func(b []byte) (map[string]string, error) {
			var m map[string]string
			return m, json.Unmarshal(b, &m)
		}},
		{"Kept", []string{"--keep-mount"}, secretenv.ParseDotenv},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			mount, copied := filepath.Join(dir, "sub", "app.secrets"), filepath.Join(dir, "copy")
			args := append([]string{"--all", "--mount", mount}, tc.flags...)
			p := startRun(t, runEnv(t, srv, key), append(args, "--", "sh", "-c", script, "sh", mount, copied)...)
			if line := p.waitLine(t, "mode ", limit); line != "mode 600" {
				t.Errorf("the mounted file has %q, want mode 600", line)
			}
			envLine := p.waitLine(t, "env ", limit)
			if code := p.wait(t, limit); code != 0 {
				t.Fatalf("exit code %d\n%s", code, p.stderr)
			}
			mountOnly := strings.Contains(strings.Join(tc.flags, " "), "--mount-only")
			if wantEnv := map[bool]string{true: "env unset", false: "env " + values["api-key"]}[mountOnly]; envLine != wantEnv {
				t.Errorf("child's environment: %q, want %q", envLine, wantEnv)
			}
			data, err := os.ReadFile(copied)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tc.parse(data)
			if err != nil {
				t.Fatalf("the mounted file does not parse: %v\n%s", err, data)
			}
			if len(got) != len(want) || got["DB_PASSWORD"] != want["DB_PASSWORD"] || got["API_KEY"] != want["API_KEY"] {
				t.Errorf("the mounted file holds %q, want %q", got, want)
			}
			_, err = os.Stat(mount)
			if kept := tc.name == "Kept"; kept != (err == nil) {
				t.Errorf("after exit, stat of the mount = %v; want it kept only with --keep-mount", err)
			}
			if info, err := os.Stat(filepath.Dir(mount)); err != nil || info.Mode().Perm() != 0o700 {
				t.Errorf("the mount's new directory: %v %v, want mode 0700", info.Mode(), err)
			}
			entries, _ := os.ReadDir(filepath.Dir(mount))
			for _, e := range entries {
				if e.Name() != "app.secrets" {
					t.Errorf("a temporary file is left beside the mount: %s", e.Name())
				}
			}
			noValues(t, "run's stderr", p.stderr.String(), values["api-key"], "PLANTED")
		})
	}
}

func TestRun_ExitStatus(t *testing.T) {
	srv, _, key := runServer(t)
	putSecret(t, srv, key, "s", "v")
	for _, tc := range []struct {
		name   string
		script string
		want   int
	}{
		{"Success", "true", 0},
		{"Failure", "exit 7", 7},
		{"KilledBySIGKILL", "kill -KILL $$", 128 + 9},
		{"KilledBySIGTERM", "kill -TERM $$", 128 + 15},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startRun(t, runEnv(t, srv, key), "--key", "s", "--", "sh", "-c", tc.script)
			if code := p.wait(t, limit); code != tc.want {
				t.Errorf("exit code %d, want %d\n%s", code, tc.want, p.stderr)
			}
			if s := p.stderr.String(); strings.Contains(s, "neostore-secrets:") {
				t.Errorf("run added a message to its child's status: %s", s)
			}
		})
	}
	t.Run("NoSuchCommand", func(t *testing.T) {
		p := startRun(t, runEnv(t, srv, key), "--key", "s", "--", "/nonexistent/program")
		if code := p.wait(t, limit); code != 127 || !strings.Contains(p.stderr.String(), "start the command") {
			t.Errorf("exit code %d, want 127 with a message\n%s", code, p.stderr)
		}
	})
}

func TestRun_Signals(t *testing.T) {
	srv, _, key := runServer(t)
	putSecret(t, srv, key, "s", "v")
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGQUIT} {
		name := strings.TrimPrefix(unixSignalName(sig), "SIG")
		t.Run("Forwarded"+name, func(t *testing.T) {
			// The child traps the signal and exits with a code of its own.
			script := fmt.Sprintf(`trap 'echo "got %[1]s"; kill $p; exit 42' %[1]s; sleep 1000 & p=$!; echo ready; wait $p`, name)
			p := startRun(t, runEnv(t, srv, key), "--key", "s", "--", "sh", "-c", script)
			p.waitLine(t, "ready", limit)
			p.signal(t, sig)
			p.waitLine(t, "got "+name, limit)
			if code := p.wait(t, limit); code != 42 {
				t.Errorf("exit code %d, want the child's 42\n%s", code, p.stderr)
			}
		})
	}
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run("ChildDiesOf"+unixSignalName(sig), func(t *testing.T) {
			p := startRun(t, runEnv(t, srv, key), "--key", "s", "--", "sh", "-c", "echo ready; exec sleep 1000")
			p.waitLine(t, "ready", limit)
			p.signal(t, sig)
			if code := p.wait(t, limit); code != 128+int(sig) {
				t.Errorf("exit code %d, want %d\n%s", code, 128+int(sig), p.stderr)
			}
		})
	}
}

func unixSignalName(sig syscall.Signal) string {
	return map[syscall.Signal]string{
		syscall.SIGINT: "SIGINT", syscall.SIGTERM: "SIGTERM", syscall.SIGHUP: "SIGHUP",
		syscall.SIGUSR1: "SIGUSR1", syscall.SIGUSR2: "SIGUSR2", syscall.SIGQUIT: "SIGQUIT",
	}[sig]
}

func TestRun_Watch(t *testing.T) {
	srv, _, key := runServer(t)
	const interval = 300 * time.Millisecond

	t.Run("RestartsOnChange", func(t *testing.T) {
		putSecret(t, srv, key, "w-restart", "PLANTED-w1")
		p := startRun(t, runEnv(t, srv, key), "--key", "w-restart", "--watch", interval.String(), "--", "sh", "-c", `echo "start $W_RESTART"; exec sleep 1000`)
		p.waitLine(t, "start PLANTED-w1", limit)
		changed := time.Now()
		putSecret(t, srv, key, "w-restart", "PLANTED-w2")
		p.waitLine(t, "start PLANTED-w2", limit)
		took := time.Since(changed)
		t.Logf("restarted %v after the change (interval %v)", took, interval)
		if took > interval+2*time.Second {
			t.Errorf("restart took %v after the change, want within one interval (%v) plus the restart", took, interval)
		}
		p.signal(t, syscall.SIGTERM)
		if code := p.wait(t, limit); code != 128+15 {
			t.Errorf("exit code %d, want 143", code)
		}
		noValues(t, "run's stderr", p.stderr.String(), "PLANTED")
	})

	t.Run("SignalsInsteadOfRestart", func(t *testing.T) {
		putSecret(t, srv, key, "w-signal", "PLANTED-s1")
		mount := filepath.Join(t.TempDir(), "app.env")
		script := `trap 'echo "reload $(cat "$1")"' HUP; echo "start $(cat "$1")"; while :; do sleep 1000 & p=$!; wait $p; kill $p 2>/dev/null; done`
		p := startRun(t, runEnv(t, srv, key), "--key", "w-signal", "--watch", interval.String(), "--watch-signal", "HUP", "--mount", mount, "--", "sh", "-c", script, "sh", mount)
		p.waitLine(t, "start W_SIGNAL='PLANTED-s1'", limit)
		putSecret(t, srv, key, "w-signal", "PLANTED-s2")
		p.waitLine(t, "reload W_SIGNAL='PLANTED-s2'", limit)
		p.signal(t, syscall.SIGTERM)
		_, lines := p.output(t, limit)
		starts := 0
		for _, l := range lines {
			if strings.HasPrefix(l, "start ") {
				starts++
			}
		}
		if starts != 1 {
			t.Errorf("the child started %d times, want once (only signalled): %q", starts, lines)
		}
	})

	t.Run("KillsAfterGrace", func(t *testing.T) {
		putSecret(t, srv, key, "w-grace", "PLANTED-g1")
		const grace = 500 * time.Millisecond
		p := startRun(t, runEnv(t, srv, key), "--key", "w-grace", "--watch", interval.String(), "--grace", grace.String(), "--", "sh", "-c", `trap '' TERM; echo "start $W_GRACE"; while :; do sleep 0.1; done`)
		p.waitLine(t, "start PLANTED-g1", limit)
		changed := time.Now()
		putSecret(t, srv, key, "w-grace", "PLANTED-g2")
		p.waitLine(t, "start PLANTED-g2", limit)
		if took := time.Since(changed); took < grace {
			t.Errorf("a child that ignores SIGTERM was replaced after %v, before the grace of %v", took, grace)
		}
	})

	t.Run("FailedRefreshKeepsChild", func(t *testing.T) {
		const value = "PLANTED-fail-9d2c"
		putSecret(t, srv, key, "w-fail", value)
		p := startRun(t, runEnv(t, srv, key), "--key", "w-fail", "--watch", interval.String(), "--", "sh", "-c", `echo "start $W_FAIL"; exec sleep 1000`)
		p.waitLine(t, "start "+value, limit)
		if err := srv.stop(); err != nil {
			t.Fatal(err)
		}
		p.waitStderr(t, "refresh failed, the command keeps running", limit)
		select {
		case <-p.done:
			t.Fatalf("run exited after a failed refresh:\n%s", p.stderr)
		default:
		}
		p.signal(t, syscall.SIGTERM)
		code, lines := p.output(t, limit)
		if code != 128+15 || len(lines) != 1 {
			t.Errorf("exit code %d, lines %q; want 143 and the one start", code, lines)
		}
		noValues(t, "run's stderr", p.stderr.String(), value, "PLANTED", key)
	})
}

func TestRun_Fallback(t *testing.T) {
	srv, dataDir, key := runServer(t)
	other := createKey(t, dataDir, "acme", "Secret.Read", "Secret.Write")
	const value = "PLANTED-fallback-5a6f"
	putSecret(t, srv, key, "fb-a", value)
	snapshot := filepath.Join(t.TempDir(), "cache", "snap")
	script := `echo "got $FB_A"`
	runFB := func(t *testing.T, env []string, extra ...string) (int, []string, string) {
		t.Helper()
		args := append([]string{"--key", "fb-a", "--fallback", snapshot}, extra...)
		p := startRun(t, env, append(args, "--", "sh", "-c", script)...)
		code, lines := p.output(t, limit)
		noValues(t, "run's stderr", p.stderr.String(), value, key)
		return code, lines, p.stderr.String()
	}

	// Online: the snapshot is written, 0600 in a new 0700 directory, sealed.
	if code, lines, stderr := runFB(t, runEnv(t, srv, key)); code != 0 || len(lines) != 1 || lines[0] != "got "+value {
		t.Fatalf("online run = %d %q\n%s", code, lines, stderr)
	}
	info, err := os.Stat(snapshot)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("snapshot: %v (mode %v), want mode 0600", err, info.Mode())
	}
	if dir, _ := os.Stat(filepath.Dir(snapshot)); dir.Mode().Perm() != 0o700 {
		t.Errorf("snapshot directory mode %v, want 0700", dir.Mode().Perm())
	}
	data, _ := os.ReadFile(snapshot)
	noValues(t, "the snapshot file", string(data), value, "PLANTED", "fb-a", key)

	t.Run("DefaultPathUnderCache", func(t *testing.T) {
		cache := t.TempDir()
		env := append(runEnv(t, srv, key), "XDG_CACHE_HOME="+cache)
		p := startRun(t, env, "--key", "fb-a", "--", "true")
		if code := p.wait(t, limit); code != 0 {
			t.Fatalf("exit %d\n%s", code, p.stderr)
		}
		files, _ := filepath.Glob(filepath.Join(cache, "neostore-secrets", "run", "*.snapshot"))
		if len(files) != 1 {
			t.Errorf("snapshots under the cache directory: %q, want one", files)
		}
	})

	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}
	t.Run("ServerDownStartsFromSnapshot", func(t *testing.T) {
		code, lines, stderr := runFB(t, runEnv(t, srv, key))
		if code != 0 || len(lines) != 1 || lines[0] != "got "+value {
			t.Errorf("run with the server down = %d %q\n%s", code, lines, stderr)
		}
		if !strings.Contains(stderr, "warning") || !strings.Contains(stderr, "offline snapshot") {
			t.Errorf("no warning on stderr:\n%s", stderr)
		}
	})
	t.Run("FallbackOnly", func(t *testing.T) {
		if code, lines, stderr := runFB(t, runEnv(t, srv, key), "--fallback-only"); code != 0 || len(lines) != 1 {
			t.Errorf("--fallback-only = %d %q\n%s", code, lines, stderr)
		}
	})
	t.Run("TooOld", func(t *testing.T) {
		code, lines, stderr := runFB(t, runEnv(t, srv, key), "--fallback-max-age", "1ms")
		if code == 0 || len(lines) != 0 || !strings.Contains(stderr, "older than --fallback-max-age") {
			t.Errorf("run with an old snapshot = %d %q, want a refusal\n%s", code, lines, stderr)
		}
	})
	t.Run("OtherCredential", func(t *testing.T) {
		code, lines, stderr := runFB(t, runEnv(t, srv, other))
		if code == 0 || len(lines) != 0 || !strings.Contains(stderr, "does not open with this credential") {
			t.Errorf("run with another credential = %d %q, want a refusal\n%s", code, lines, stderr)
		}
	})
	t.Run("NoFallback", func(t *testing.T) {
		code, lines, stderr := runFB(t, runEnv(t, srv, key), "--no-fallback")
		if code == 0 || len(lines) != 0 || !strings.Contains(stderr, "unreachable") {
			t.Errorf("run --no-fallback with the server down = %d %q, want a failure\n%s", code, lines, stderr)
		}
	})
	t.Run("ServerAnswers500", func(t *testing.T) {
		ln, err := net.Listen("tcp", strings.TrimPrefix(srv.base, "http://"))
		if err != nil {
			t.Skipf("the server's port was taken meanwhile: %v", err)
		}
		failing := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusInternalServerError)
		})}
		go failing.Serve(ln)
		defer failing.Close()
		code, lines, stderr := runFB(t, runEnv(t, srv, key))
		if code != 0 || len(lines) != 1 || !strings.Contains(stderr, "500") {
			t.Errorf("run against a server answering 500 = %d %q, want a start from the snapshot\n%s", code, lines, stderr)
		}
	})
	t.Run("HangingServer", func(t *testing.T) {
		// Something on the server's address accepts connections and never answers.
		ln, err := net.Listen("tcp", strings.TrimPrefix(srv.base, "http://"))
		if err != nil {
			t.Skipf("the server's port was taken meanwhile: %v", err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
			}
		}()
		start := time.Now()
		code, lines, stderr := runFB(t, runEnv(t, srv, key), "--fetch-timeout", "1s")
		if code != 0 || len(lines) != 1 || !strings.Contains(stderr, "no answer within --fetch-timeout 1s") {
			t.Errorf("run against a hanging server = %d %q, want a start from the snapshot\n%s", code, lines, stderr)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("the fallback took %v with --fetch-timeout 1s", took)
		}
	})
}

func TestRun_RevokedKeyGetsNoFallback(t *testing.T) {
	srv, dataDir, key := runServer(t)
	putSecret(t, srv, key, "rv", "PLANTED-revoked-0e4b")
	readOnly := createKey(t, dataDir, "acme", "Secret.Read")
	snapshot := filepath.Join(t.TempDir(), "snap")
	args := []string{"--key", "rv", "--fallback", snapshot, "--", "sh", "-c", `echo "got $RV"`}
	if code, lines := startRun(t, runEnv(t, srv, readOnly), args...).output(t, limit); code != 0 || len(lines) != 1 {
		t.Fatalf("run = %d %q", code, lines)
	}
	if _, err := os.Stat(snapshot); err != nil {
		t.Fatalf("no snapshot written: %v", err)
	}
	stdout, _, err := cli(t, "apikey", "list", "--data", dataDir, "--tenant", "acme", "--json")
	if err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := cli(t, "apikey", "revoke", "--data", dataDir, readOnlyKeyID(t, stdout)); err != nil {
		t.Fatalf("apikey revoke: %v\n%s", err, stderr)
	}
	p := startRun(t, runEnv(t, srv, readOnly), args...)
	code, lines := p.output(t, limit)
	if code != exitRefused || len(lines) != 0 || !strings.Contains(p.stderr.String(), "401") {
		t.Errorf("run with a revoked key = %d %q, want %d and no child\n%s", code, lines, exitRefused, p.stderr)
	}
	if _, err := os.Stat(snapshot); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the revoked key's snapshot is still there: %v", err)
	}

	t.Run("Forbidden", func(t *testing.T) {
		// A key without Secret.Read gets 403; a snapshot sealed with it
		// (planted: the key could never have read one) is not used, and goes.
		writeOnly := createKey(t, dataDir, "acme", "Secret.Write")
		planted := filepath.Join(t.TempDir(), "snap")
		data, err := offline.Seal([]byte(writeOnly), offline.Binding{Address: srv.base, Tenant: "acme"}, offline.Contents{
			FetchedAt: time.Now(), Values: map[string][]byte{"rv": []byte("PLANTED-forbidden")},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(planted, data, 0o600); err != nil {
			t.Fatal(err)
		}
		p := startRun(t, runEnv(t, srv, writeOnly), "--key", "rv", "--fallback", planted, "--", "sh", "-c", `echo "got $RV"`)
		code, lines := p.output(t, limit)
		if code != exitRefused || len(lines) != 0 || !strings.Contains(p.stderr.String(), "403") {
			t.Errorf("run with a key that may not read = %d %q, want %d and no child\n%s", code, lines, exitRefused, p.stderr)
		}
		if _, err := os.Stat(planted); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the snapshot is still there after a 403: %v", err)
		}
	})
}

func TestRun_Refusals(t *testing.T) {
	srv, _, key := runServer(t)
	putSecret(t, srv, key, "dup-name", "PLANTED-dup-1")
	putSecret(t, srv, key, "DUP-NAME", "PLANTED-dup-2")
	putSecret(t, srv, key, "9lives", "PLANTED-nine")
	child := []string{"--", "sh", "-c", "echo started"}
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		code int
		want string
	}{
		{"Collision", append([]string{"--all"}, child...), nil, exitUsage, "both map to DUP_NAME"},
		{"InvalidName", append([]string{"--key", "9lives"}, child...), nil, exitUsage, "not a valid variable name"},
		{"InvalidEnvName", append([]string{"--env", "A-B=9lives"}, child...), nil, exitUsage, "not a valid variable name"},
		{"NoCommand", []string{"--all"}, nil, exitUsage, "no command"},
		{"NoSelection", child, nil, exitUsage, "no secrets chosen"},
		{"WatchSignalWithoutMount", append([]string{"--all", "--watch", "1s", "--watch-signal", "HUP"}, child...), nil, exitUsage, "needs --mount"},
		{"UnknownSignal", append([]string{"--all", "--watch", "1s", "--mount", "x", "--watch-signal", "NOPE"}, child...), nil, exitUsage, "unknown signal"},
		{"BadFormat", append([]string{"--all", "--mount", "x", "--format", "yaml"}, child...), nil, exitUsage, "unknown format"},
		{"NoCredential", append([]string{"--all"}, child...), []string{"NEOSTORE_API_KEY="}, exitUsage, "no credential"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startRun(t, append(runEnv(t, srv, key), tc.env...), tc.args...)
			code, lines := p.output(t, limit)
			if code != tc.code || len(lines) != 0 || !strings.Contains(p.stderr.String(), tc.want) {
				t.Errorf("exit %d, lines %q, want %d, no child, and stderr saying %q:\n%s", code, lines, tc.code, tc.want, p.stderr)
			}
			noValues(t, "run's stderr", p.stderr.String(), "PLANTED")
		})
	}
}

// BenchmarkRun_50Secrets measures the time from starting `run --all` to its
// child's start (and end: the child is `true`) with 50 secrets on a real
// server, read with bounded parallelism; and, for comparison, one at a time.
func BenchmarkRun_50Secrets(b *testing.B) {
	base, key := benchServer(b)
	for i := range 50 {
		body := fmt.Sprintf(`{"value":"value-%02d-%s"}`, i, strings.Repeat("x", 32))
		req, _ := http.NewRequest("PUT", fmt.Sprintf("%s/api/acme/secrets/secret-%02d", base, i), strings.NewReader(body))
		req.Header.Set("X-API-KEY", key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 204 {
			b.Fatalf("PUT = %v %v", resp, err)
		}
		resp.Body.Close()
	}
	bin := programBinary(b)
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + b.TempDir(), "XDG_CACHE_HOME=" + b.TempDir(),
		"NEOSTORE_ADDR=" + base, "NEOSTORE_TENANT=acme", "NEOSTORE_API_KEY=" + key}
	for _, bc := range []struct {
		name  string
		flags []string
	}{
		{"Concurrency8", nil},
		{"Concurrency8NoFallback", []string{"--no-fallback"}},
		{"Concurrency1", []string{"--concurrency", "1"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			args := append(append([]string{"run", "--all"}, bc.flags...), "--", "true")
			for b.Loop() {
				cmd := exec.Command(bin, args...)
				cmd.Env = env
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("run: %v\n%s", err, out)
				}
			}
		})
	}
}

// benchServer runs serve in-process for a benchmark (the test helpers take
// a *testing.T) and returns its base URL and an API key for tenant acme.
func benchServer(b *testing.B) (base, key string) {
	b.Helper()
	dir := b.TempDir()
	dataDir, masterKey := filepath.Join(dir, "data"), filepath.Join(dir, "master.key")
	do := func(args ...string) string {
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), append([]string{"neostore-secrets"}, args...), env(nil), strings.NewReader(""), &stdout, &stderr); err != nil {
			b.Fatalf("%v: %v\n%s", args, err, stderr.String())
		}
		return stdout.String()
	}
	do("keys", "init", "--out", masterKey)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"neostore-secrets", "serve", "--listen", addr, "--data", dataDir, "--master-key-file", masterKey, "--metrics-listen", "off", "--no-access-log"}, env(nil), strings.NewReader(""), io.Discard, io.Discard)
	}()
	b.Cleanup(func() { cancel(); <-done })
	base = "http://" + addr
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/openapi.json")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			b.Fatal("server not ready after 20s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	key = strings.TrimSpace(do("apikey", "create", "--data", dataDir, "--tenant", "acme", "--scope", "Secret.Read", "--scope", "Secret.Write"))
	return base, key
}

// TestRun_TerminalCtrlCNotDoubled runs run as the foreground process group
// of a terminal (a pty of the test's own): a Ctrl-C typed there reaches
// run and its child at once, and run must not forward it a second time,
// while a signal sent to run alone is still forwarded.
func TestRun_TerminalCtrlCNotDoubled(t *testing.T) {
	srv, _, key := runServer(t)
	putSecret(t, srv, key, "s", "v")
	master, tty := openPTY(t)
	script := `trap 'n=$((n+1)); echo "INT $n"' INT; trap 'echo "USR1 after $n INT"; exit 5' USR1; echo ready; while :; do sleep 1000 & wait $!; done`
	cmd := exec.Command(programBinary(t), "run", "--key", "s", "--", "sh", "-c", script)
	cmd.Env = runEnv(t, srv, key)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0} // the pty is stdin, fd 0 in the child
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); <-done })
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(master)
		for sc.Scan() {
			// The terminal echoes the Ctrl-C as ^C before the child's output.
			lines <- strings.TrimPrefix(strings.TrimRight(sc.Text(), "\r"), "^C")
		}
	}()
	var seen []string
	waitFor := func(want string) {
		t.Helper()
		timeout := time.After(limit)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("the terminal closed before %q; lines %q", want, seen)
				}
				seen = append(seen, l)
				if strings.HasPrefix(l, "USR1") && want != l {
					t.Fatalf("got %q, want %q (lines %q)", l, want, seen)
				}
				if l == want {
					return
				}
			case <-timeout:
				t.Fatalf("no %q within %v; lines %q", want, limit, seen)
			}
		}
	}
	waitFor("ready")
	if _, err := master.Write([]byte{0x03}); err != nil { // Ctrl-C
		t.Fatal(err)
	}
	waitFor("INT 1")
	if err := cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	waitFor("USR1 after 1 INT")
	select {
	case <-done:
	case <-time.After(limit):
		t.Fatalf("run did not exit")
	}
	if code := cmd.ProcessState.ExitCode(); code != 5 {
		t.Errorf("exit code %d, want the child's 5", code)
	}
}

// openPTY opens a new pseudo-terminal and returns its master and its tty.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Skipf("pty number: %v", err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open tty: %v", err)
	}
	return master, tty
}
