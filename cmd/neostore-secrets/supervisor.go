//go:build unix

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// forwardedSignals are the signals `run` passes on to its child.
var forwardedSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGQUIT}

// supervisor runs one child process at a time, in run's own process group
// (so an interactive child keeps the terminal), forwards signals to it,
// replaces it on demand and reports how it ended. One goroutine, the
// caller of supervise, owns the child.
type supervisor struct {
	// command returns a new, unstarted command whose environment is env.
	command func(env []string) *exec.Cmd
	// grace is how long a child being replaced has between SIGTERM and SIGKILL.
	grace time.Duration
	// skip reports whether a received signal reached the child already and
	// must not be sent again (a terminal's Ctrl-C); nil forwards everything.
	skip func(os.Signal) bool
}

// reload is a request to the supervisor: restart the child with env, or,
// when signal is set, only send it signal (a child that reloads by itself).
type reload struct {
	env    []string
	signal os.Signal
}

// exited is how a child process ended.
type exited struct {
	state *os.ProcessState
	err   error
}

// supervise starts the child with env and supervises it until it ends on
// its own or of a signal that was not part of a restart. It returns the
// child's exit status: its exit code, or 128 + the signal that killed it.
// A child that cannot start is an error (exit code 127 when the program
// does not exist, 126 when it cannot be executed).
func (s *supervisor) supervise(env []string, signals <-chan os.Signal, reloads <-chan reload) (int, error) {
	cmd, done, err := s.start(env)
	if err != nil {
		return 0, err
	}
	var (
		restarting bool        // the child was sent SIGTERM to be replaced
		stopping   bool        // a stop signal came during a restart: do not start a new child
		nextEnv    []string    // the environment of the replacement
		kill       *time.Timer // SIGKILL after the grace period
		killC      <-chan time.Time
	)
	for {
		select {
		case sig := <-signals:
			if restarting && (sig == syscall.SIGINT || sig == syscall.SIGTERM || sig == syscall.SIGQUIT) {
				stopping = true
			}
			if s.skip == nil || !s.skip(sig) {
				cmd.Process.Signal(sig) // fails only when the child is gone; its exit arrives on done
			}
		case r := <-reloads:
			if r.signal != nil {
				cmd.Process.Signal(r.signal)
				continue
			}
			nextEnv = r.env
			if !restarting {
				restarting = true
				cmd.Process.Signal(syscall.SIGTERM)
				kill = time.NewTimer(s.grace)
				killC = kill.C
			}
		case <-killC:
			killC = nil
			cmd.Process.Kill()
		case e := <-done:
			if kill != nil {
				kill.Stop()
				kill, killC = nil, nil
			}
			if !restarting || stopping {
				return exitStatus(e)
			}
			restarting = false
			if cmd, done, err = s.start(nextEnv); err != nil {
				return 0, err
			}
		}
	}
}

// start starts a child with env; its end arrives on the returned channel.
func (s *supervisor) start(env []string) (*exec.Cmd, <-chan exited, error) {
	cmd := s.command(env)
	if err := cmd.Start(); err != nil {
		code := 1
		switch {
		case errors.Is(err, exec.ErrNotFound), errors.Is(err, fs.ErrNotExist):
			code = 127
		case errors.Is(err, fs.ErrPermission):
			code = 126
		}
		return nil, nil, &exitError{code: code, err: fmt.Errorf("run: start the command: %w", err)}
	}
	done := make(chan exited, 1)
	go func() {
		err := cmd.Wait()
		done <- exited{state: cmd.ProcessState, err: err}
	}()
	return cmd, done, nil
}

// exitStatus is the status a shell would report for the child: its exit
// code, or 128 + the number of the signal that killed it.
func exitStatus(e exited) (int, error) {
	if e.state == nil {
		return 0, fmt.Errorf("run: wait for the command: %w", e.err)
	}
	if ws, ok := e.state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return e.state.ExitCode(), nil
}

// terminalSentIt reports whether sig is one a terminal sends to its whole
// foreground process group (Ctrl-C, Ctrl-\) while run is in that group: the
// child, which shares run's group, got it from the terminal already, and
// forwarding it would deliver it twice. Other signals, and any signal when
// run has no terminal or runs in the background, are forwarded.
func terminalSentIt(sig os.Signal) bool {
	if sig != syscall.SIGINT && sig != syscall.SIGQUIT {
		return false
	}
	tty, err := os.Open("/dev/tty")
	if err != nil {
		return false // no controlling terminal
	}
	defer tty.Close()
	fg, err := unix.IoctlGetInt(int(tty.Fd()), unix.TIOCGPGRP)
	if err != nil {
		return false
	}
	own, err := unix.Getpgid(0)
	return err == nil && fg == own
}
