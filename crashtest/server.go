package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// binary runs the neostore-secrets program with an environment free of
// NEOSTORE_* variables, so that the caller's shell cannot change its flags.
type binary struct {
	path string
}

func (b binary) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, b.path, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NEOSTORE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	return cmd
}

// run runs one command to its end and returns its stdout, stderr and exit
// code (-1 when it did not run or was killed).
func (b binary) run(ctx context.Context, args ...string) (string, string, int) {
	var stdout, stderr bytes.Buffer
	cmd := b.command(ctx, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		code = -1
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else {
			fmt.Fprintf(&stderr, "%v\n", err)
		}
	}
	return stdout.String(), stderr.String(), code
}

// server is one running `serve` process.
type server struct {
	cmd    *exec.Cmd
	addr   chan string   // receives the address from the start line
	base   string        // http://host:port of the API, once ready
	exited chan struct{} // closed when the process has exited
	err    error         // how it exited; read after exited is closed
}

// servingLine is serve's start line, logged once the API listens: its addr
// is the address the kernel gave --listen 127.0.0.1:0.
var servingLine = regexp.MustCompile(`msg=serving addr=(\S+)`)

// startServer starts serve with args; its stderr goes to log. Wait for it
// with ready.
func startServer(bin binary, args []string, log io.Writer) (*server, error) {
	addr := make(chan string, 1)
	cmd := bin.command(context.Background(), args...)
	cmd.Stdout = log
	cmd.Stderr = &lineWatcher{out: log, match: servingLine, found: addr}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, addr: addr, exited: make(chan struct{})}
	go func() {
		s.err = cmd.Wait()
		close(s.exited)
	}()
	return s, nil
}

// ready returns once the process has printed its start line and /readyz
// has answered 200, or an error when that takes longer than timeout or the
// process exits first.
func (s *server) ready(ctx context.Context, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	select {
	case a := <-s.addr:
		s.base = "http://" + a
	case <-s.exited:
		return fmt.Errorf("serve exited before it was serving: %v", s.err)
	case <-deadline.C:
		return fmt.Errorf("serve printed no start line within %s", timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
	// The start line comes once the listener is open and the handler built;
	// /readyz then says whether the store, key and audit trail answer.
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := client.Get(s.base + "/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-tick.C:
		case <-s.exited:
			return fmt.Errorf("serve exited before it was ready: %v", s.err)
		case <-deadline.C:
			return fmt.Errorf("serve was not ready within %s", timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (s *server) kill() {
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
}

// stop sends SIGTERM and waits up to timeout for a clean exit; past that it
// kills the process and says so.
func (s *server) stop(timeout time.Duration) error {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		return s.err
	case <-time.After(timeout):
		s.kill()
		return fmt.Errorf("serve did not stop within %s of SIGTERM; killed", timeout)
	}
}

// lineWatcher copies a process's output to out and sends the first
// submatch of match to found, once.
type lineWatcher struct {
	out   io.Writer
	match *regexp.Regexp
	found chan<- string

	mu   sync.Mutex
	buf  []byte
	done bool
}

func (w *lineWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, err := w.out.Write(p); err != nil {
		return 0, err
	}
	if w.done {
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := w.buf[:i]
		w.buf = w.buf[i+1:]
		if m := w.match.FindSubmatch(line); m != nil {
			w.found <- string(m[1])
			w.done, w.buf = true, nil
			return len(p), nil
		}
	}
}
