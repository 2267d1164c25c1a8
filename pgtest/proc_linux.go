package pgtest

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// stopSignals are PostgreSQL's fast, immediate and kill shutdowns, tried
// in turn.
var stopSignals = []syscall.Signal{syscall.SIGINT, syscall.SIGQUIT, syscall.SIGKILL}

// lockThread pins the calling goroutine to its OS thread for good: the
// kernel sends the parent-death signal when the forking thread ends, and a
// locked goroutine's thread ends only when that goroutine returns.
func lockThread() { runtime.LockOSThread() }

// sysProcAttr runs a child as runAs (when set). A server child also gets
// SIGQUIT, PostgreSQL's immediate shutdown, when the test binary dies, and
// its own process group, so that a terminal's Ctrl-C reaches the test
// binary, which then stops the server in order.
func sysProcAttr(runAs *account, server bool) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{}
	if runAs != nil {
		// No supplementary groups: root's must not leak into the server.
		attr.Credential = &syscall.Credential{Uid: uint32(runAs.uid), Gid: uint32(runAs.gid)}
	}
	if server {
		attr.Pdeathsig = syscall.SIGQUIT
		attr.Setpgid = true
	}
	return attr
}

func signalProcess(pid int, sig syscall.Signal) error {
	err := syscall.Kill(pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil // already gone
	}
	return err
}

// runAsAccount returns the account to run PostgreSQL as: nil for a
// non-root test binary, the postgres user for root, which PostgreSQL
// refuses to run as.
func runAsAccount() (*account, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, which PostgreSQL refuses, and there is no postgres user to run it as (the postgresql package creates one): %w", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("user postgres: %w", err)
	}
	return &account{name: u.Username, uid: uid, gid: gid}, nil
}

// suspend stops (SIGSTOP) or continues (SIGCONT) the postmaster pid and
// all its children. PostgreSQL puts each backend in a process group of its
// own, so the children are found through /proc.
func suspend(pid int, stop bool) error {
	sig := syscall.SIGCONT
	if stop {
		sig = syscall.SIGSTOP
	}
	if stop {
		if err := signalProcess(pid, sig); err != nil {
			return err
		}
	}
	kids, err := children(pid)
	if err != nil {
		return err
	}
	for _, kid := range kids {
		if err := signalProcess(kid, sig); err != nil {
			return err
		}
	}
	if !stop {
		return signalProcess(pid, sig)
	}
	return nil
}

// children returns the pids whose parent is pid.
func children(pid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var kids []int
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
		fields := strings.Fields(rest)
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			kids = append(kids, p)
		}
	}
	return kids, nil
}

// sweepOrphans removes cluster directories left by test binaries that no
// longer run (killed before they could clean up; their servers died with
// them through the parent-death signal).
func sweepOrphans() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, dir := range dirs {
		rest := strings.TrimPrefix(filepath.Base(dir), dirPrefix)
		pidStr, _, ok := strings.Cut(rest, "-")
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.RemoveAll(dir)
		}
	}
}
