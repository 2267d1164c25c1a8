//go:build unix

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/neostore/neostore-secrets/client"
	"github.com/neostore/neostore-secrets/offline"
	"github.com/neostore/neostore-secrets/secretenv"
)

const runUsage = `usage: neostore-secrets run [flags] -- COMMAND [ARG]...

Reads secrets of a tenant and runs COMMAND with them as environment variables
(db-password becomes DB_PASSWORD). It prints no value, anywhere.

  --key K              read secret K (repeatable)
  --all                read every secret of the tenant
  --env NAME=K         put secret K in variable NAME instead of its default name (repeatable)
  --no-inherit-env     start COMMAND with only the secrets, not run's own environment
  --mount PATH         also write the secrets to PATH (mode 0600), removed on exit
  --format F           the file's format: dotenv (default) or json
  --mount-only         put the secrets only in the file, not in the environment
  --keep-mount         leave the file behind on exit
  --watch D            read the secrets again every D; on a change, rewrite the file
                       and restart COMMAND (SIGTERM, SIGKILL after --grace)
  --watch-signal SIG   on a change, only send SIG (e.g. HUP) to COMMAND; needs --mount
  --grace D            how long a restarted COMMAND has to exit (default 10s)
  --fallback FILE      the encrypted offline snapshot (default: under the user's cache directory)
  --fallback-max-age D the oldest snapshot used when the server is unreachable or answers 5xx (default 24h)
  --fallback-only      start from the snapshot without asking the server
  --no-fallback        neither write nor use a snapshot
  --concurrency N      secrets read at once (default 8)
  --fetch-timeout D    the bound on one read of all the secrets, retries included (default 15s)

Connection: --addr (NEOSTORE_ADDR, default ` + defaultAddr + `), --tenant (NEOSTORE_TENANT),
--cacert; the credential from NEOSTORE_API_KEY, NEOSTORE_TOKEN or --api-key-file.
run's own credential variables are not passed on to COMMAND.

Exit status: COMMAND's, or 128 + the signal that killed it. SIGINT, SIGTERM,
SIGHUP, SIGUSR1, SIGUSR2 and SIGQUIT are forwarded to COMMAND.
`

// errChildStatus marks the exit status of run's child, which main passes on
// without a message: the child has spoken for itself.
var errChildStatus = errors.New("the command ended with a failure status")

// runConfig is the command line of `run`.
type runConfig struct {
	remote       remoteConfig
	keys         stringList
	all          bool
	envs         stringList // NAME=key
	noInherit    bool
	mount        string
	format       string
	mountOnly    bool
	keepMount    bool
	watch        time.Duration
	watchSignal  string
	grace        time.Duration
	fallbackFile string
	fallbackAge  time.Duration
	fallbackOnly bool
	noFallback   bool
	concurrency  int
	fetchTimeout time.Duration
	command      []string
}

func parseRunArgs(args []string, getenv func(string) string, stderr io.Writer) (*runConfig, error) {
	var c runConfig
	fs := newFlagSet("run", stderr)
	fs.Usage = func() { fmt.Fprint(stderr, runUsage) }
	c.remote.register(fs)
	fs.Var(&c.keys, "key", "secret to read (repeatable)")
	fs.BoolVar(&c.all, "all", false, "read every secret of the tenant")
	fs.Var(&c.envs, "env", "NAME=key: put secret key in variable NAME (repeatable)")
	fs.BoolVar(&c.noInherit, "no-inherit-env", false, "do not pass run's environment on")
	fs.StringVar(&c.mount, "mount", "", "write the secrets to this file too")
	fs.StringVar(&c.format, "format", "dotenv", "format of --mount: dotenv or json")
	fs.BoolVar(&c.mountOnly, "mount-only", false, "put the secrets only in the --mount file")
	fs.BoolVar(&c.keepMount, "keep-mount", false, "leave the --mount file behind on exit")
	fs.DurationVar(&c.watch, "watch", 0, "read the secrets again this often (0: never)")
	fs.StringVar(&c.watchSignal, "watch-signal", "", "on a change, send this signal instead of restarting")
	fs.DurationVar(&c.grace, "grace", 10*time.Second, "time between SIGTERM and SIGKILL on a restart")
	fs.StringVar(&c.fallbackFile, "fallback", "", "the offline snapshot file")
	fs.DurationVar(&c.fallbackAge, "fallback-max-age", 24*time.Hour, "the oldest snapshot to start from")
	fs.BoolVar(&c.fallbackOnly, "fallback-only", false, "start from the snapshot, without the server")
	fs.BoolVar(&c.noFallback, "no-fallback", false, "neither write nor use a snapshot")
	fs.IntVar(&c.concurrency, "concurrency", 8, "secrets read at once")
	fs.DurationVar(&c.fetchTimeout, "fetch-timeout", 15*time.Second, "the bound on one read of all the secrets, retries included")
	// The flags end at "--" or at the first argument that is not one; the
	// rest is the command, whose own flags are not ours to parse.
	if _, err := parseArgs(fs, nil, getenv); err != nil {
		return nil, err
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError("run: %v", err)
	}
	c.command = fs.Args()
	switch {
	case len(c.command) == 0:
		return nil, usageError("run: no command: give it after --, e.g. run --all -- ./app")
	case len(c.keys) == 0 && len(c.envs) == 0 && !c.all:
		return nil, usageError("run: no secrets chosen: give --key, --env NAME=key or --all")
	case c.mountOnly && c.mount == "":
		return nil, usageError("run: --mount-only needs --mount")
	case c.watchSignal != "" && c.watch == 0:
		return nil, usageError("run: --watch-signal needs --watch")
	case c.watchSignal != "" && c.mount == "":
		return nil, usageError("run: --watch-signal needs --mount: a running process's environment cannot change, so it can only reload from the file")
	case c.watch < 0 || c.grace <= 0 || c.fallbackAge <= 0 || c.fetchTimeout <= 0:
		return nil, usageError("run: --watch, --grace, --fallback-max-age and --fetch-timeout must be positive")
	case c.fallbackOnly && c.noFallback:
		return nil, usageError("run: --fallback-only and --no-fallback exclude each other")
	case c.fallbackOnly && c.watch != 0:
		return nil, usageError("run: --watch needs the server; it cannot go with --fallback-only")
	case c.concurrency < 1:
		return nil, usageError("run: --concurrency must be at least 1")
	}
	if _, err := secretenv.ParseFormat(c.format); err != nil {
		return nil, usageError("run: --format: %v", err)
	}
	if c.watchSignal != "" {
		if _, err := parseSignal(c.watchSignal); err != nil {
			return nil, usageError("run: --watch-signal: %v", err)
		}
	}
	return &c, c.remote.needTenant("run")
}

// parseSignal reads a signal name: HUP, SIGHUP or hup, or a number.
func parseSignal(s string) (syscall.Signal, error) {
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}

// explicitNames parses the --env NAME=key flags into name → key.
func (c *runConfig) explicitNames() (map[string]string, error) {
	out := make(map[string]string, len(c.envs))
	for _, e := range c.envs {
		name, key, ok := strings.Cut(e, "=")
		if !ok || name == "" || key == "" {
			return nil, usageError("run: --env %q: want NAME=key", e)
		}
		if other, dup := out[name]; dup && other != key {
			return nil, usageError("run: --env names %s twice", name)
		}
		out[name] = key
	}
	return out, nil
}

// runRun is `neostore-secrets run`: it reads secrets and runs a command
// with them, supervising it until it ends. environ is run's own
// environment, which the command inherits.
func runRun(ctx context.Context, args []string, getenv func(string) string, environ []string, stdin io.Reader, stdout, stderr io.Writer) error {
	c, err := parseRunArgs(args, getenv, stderr)
	if err != nil {
		return err
	}
	explicit, err := c.explicitNames()
	if err != nil {
		return err
	}
	sel := selection{keys: append([]string(c.keys), slices.Collect(maps.Values(explicit))...), all: c.all}
	if !c.all {
		// Every name is known before anything is read: check them now.
		if _, err := secretenv.Plan(sel.keys, explicit); err != nil {
			return usageError("run: %v", err)
		}
	}
	cred, err := c.remote.credential(getenv)
	if err != nil {
		return err
	}
	cl, err := c.remote.client(cred, cliUserAgent)
	if err != nil {
		return err
	}
	var fb *fallback
	if !c.noFallback {
		path := c.fallbackFile
		binding := offline.Binding{Address: c.remote.Addr, Tenant: c.remote.Tenant}
		if path == "" {
			dir, err := os.UserCacheDir()
			if err != nil {
				return usageError("run: no cache directory for the offline snapshot (%v); give --fallback FILE or --no-fallback", err)
			}
			path = offline.DefaultPath(dir, binding, sel.String())
		}
		fb = &fallback{path: path, binding: binding, credential: []byte(cred.secret), maxAge: c.fallbackAge, now: time.Now}
	}
	r := &runner{c: c, client: cl, sel: sel, explicit: explicit, fallback: fb, stderr: stderr, now: time.Now}

	values, err := r.initial(ctx)
	if err != nil {
		return err
	}
	vars, err := secretenv.Plan(keysOf(values), explicit)
	if err != nil {
		return usageError("run: %v", err)
	}
	env, err := r.environ(environ, vars, values)
	if err != nil {
		return err
	}
	if c.mount != "" {
		if err := r.writeMount(vars, values); err != nil {
			return err
		}
		if !c.keepMount {
			defer os.Remove(c.mount)
		}
	}

	// From here on, run lives as long as the child: main's context ends on
	// SIGINT or SIGTERM, but those are the child's to act on.
	signals := make(chan os.Signal, 16)
	signal.Notify(signals, forwardedSignals...)
	defer signal.Stop(signals)
	if err := ctx.Err(); err != nil {
		return err
	}
	watchCtx, stopWatch := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWatch()
	reloads := make(chan reload)
	var wg sync.WaitGroup
	if c.watch > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.watch(watchCtx, values, environ, reloads)
		}()
	}
	sup := &supervisor{
		command: func(env []string) *exec.Cmd {
			cmd := exec.Command(c.command[0], c.command[1:]...)
			cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr = env, stdin, stdout, stderr
			return cmd
		},
		grace: c.grace,
		skip:  terminalSentIt,
	}
	status, err := sup.supervise(env, signals, reloads)
	stopWatch()
	wg.Wait()
	if err != nil {
		return err
	}
	if status != 0 {
		return &exitError{code: status, err: errChildStatus}
	}
	return nil
}

// runner holds what `run` works with after its flags are parsed.
type runner struct {
	c        *runConfig
	client   secretReader
	sel      selection
	explicit map[string]string
	fallback *fallback // nil with --no-fallback
	stderr   io.Writer
	now      func() time.Time
}

// fetch reads the selected secrets and, when it succeeds, writes the
// snapshot. A refused credential removes the snapshot.
func (r *runner) fetch(ctx context.Context) (map[string][]byte, error) {
	at := r.now()
	fctx, cancel := context.WithTimeout(ctx, r.c.fetchTimeout)
	defer cancel()
	values, skipped, err := fetchSecrets(fctx, r.client, r.c.remote.Tenant, r.sel, r.c.concurrency)
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			// The server took longer than --fetch-timeout: as good as unreachable.
			return nil, &unanswered{err: err, limit: r.c.fetchTimeout}
		}
		if r.fallback != nil && (errors.Is(err, client.ErrUnauthenticated) || errors.Is(err, client.ErrForbidden)) {
			r.fallback.forget()
		}
		return nil, err
	}
	if len(skipped) > 0 {
		fmt.Fprintf(r.stderr, "neostore-secrets run: left out %d listed secret(s) the server does not serve now (outside their validity window, or deleted): %s\n", len(skipped), strings.Join(skipped, ", "))
	}
	if r.fallback != nil {
		if err := r.fallback.store(values, at); err != nil {
			fmt.Fprintf(r.stderr, "neostore-secrets run: warning: could not write the offline snapshot: %v\n", err)
		}
	}
	return values, nil
}

// initial reads the secrets the child starts with: from the server, or,
// when the server cannot be reached or answers 5xx, from a snapshot young
// enough. 401 and 403 never fall back.
func (r *runner) initial(ctx context.Context) (map[string][]byte, error) {
	if r.c.fallbackOnly {
		values, at, err := r.fallback.load(r.sel)
		if err != nil {
			return nil, fmt.Errorf("run: --fallback-only: %w", err)
		}
		fmt.Fprintf(r.stderr, "neostore-secrets run: starting from the offline snapshot of %s (%s old)\n", at.UTC().Format(time.RFC3339), r.now().Sub(at).Round(time.Second))
		return values, nil
	}
	values, err := r.fetch(ctx)
	if err == nil {
		return values, nil
	}
	var slow *unanswered
	if r.fallback == nil || !(client.Temporary(err) || errors.As(err, &slow)) || ctx.Err() != nil {
		return nil, remoteError(err)
	}
	values, at, ferr := r.fallback.load(r.sel)
	if ferr != nil {
		return nil, remoteError(fmt.Errorf("%w; no offline fallback: %v", err, ferr))
	}
	fmt.Fprintf(r.stderr, "neostore-secrets run: warning: the server failed (%v); starting from the offline snapshot of %s (%s old)\n", err, at.UTC().Format(time.RFC3339), r.now().Sub(at).Round(time.Second))
	return values, nil
}

// environ is the child's environment: run's own (unless --no-inherit-env),
// without run's credential variables, with the secrets on top (unless
// --mount-only).
func (r *runner) environ(base []string, vars []secretenv.Var, values map[string][]byte) ([]string, error) {
	if r.c.noInherit {
		base = nil
	}
	var kept []string
	for _, kv := range base {
		name, _, _ := strings.Cut(kv, "=")
		if name != "NEOSTORE_API_KEY" && name != "NEOSTORE_TOKEN" {
			kept = append(kept, kv)
		}
	}
	if r.c.mountOnly {
		return kept, nil
	}
	secrets, err := secretenv.Environ(vars, values)
	if err != nil {
		return nil, fmt.Errorf("run: %w", err)
	}
	return secretenv.Merge(kept, secrets), nil
}

// writeMount renders the secrets into the --mount file: a temporary file
// of mode 0600 beside it, renamed over it.
func (r *runner) writeMount(vars []secretenv.Var, values map[string][]byte) error {
	format, _ := secretenv.ParseFormat(r.c.format)
	data, err := secretenv.Render(format, vars, values)
	if err != nil {
		return fmt.Errorf("run: --mount: %w", err)
	}
	defer clear(data)
	if err := os.MkdirAll(filepath.Dir(r.c.mount), 0o700); err != nil {
		return fmt.Errorf("run: --mount: %w", err)
	}
	_, err = writeFileAtomic(r.c.mount, func(w io.Writer) (int64, error) {
		n, err := w.Write(data)
		return int64(n), err
	})
	if err != nil {
		return fmt.Errorf("run: --mount: %w", err)
	}
	return nil
}

// watch reads the secrets every --watch interval until ctx ends. When a
// value changed it rewrites the mount and asks for a restart (or the
// --watch-signal); when a read fails it says so on stderr and the child
// keeps the values it has.
func (r *runner) watch(ctx context.Context, current map[string][]byte, environ []string, reloads chan<- reload) {
	var sig os.Signal
	if r.c.watchSignal != "" {
		sig, _ = parseSignal(r.c.watchSignal)
	}
	tick := time.NewTicker(r.c.watch)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		values, err := r.fetch(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			fmt.Fprintf(r.stderr, "neostore-secrets run: refresh failed, the command keeps running on the values it has: %v\n", remoteError(err))
			continue
		}
		if maps.EqualFunc(values, current, func(a, b []byte) bool { return string(a) == string(b) }) {
			continue
		}
		vars, err := secretenv.Plan(keysOf(values), r.explicit)
		if err == nil && r.c.mount != "" {
			err = r.writeMount(vars, values)
		}
		var env []string
		if err == nil && sig == nil {
			env, err = r.environ(environ, vars, values)
		}
		if err != nil {
			fmt.Fprintf(r.stderr, "neostore-secrets run: the secrets changed but cannot be applied, the command keeps running on the values it has: %v\n", err)
			continue
		}
		current = values
		rl := reload{env: env, signal: sig}
		what := "restarting the command"
		if sig != nil {
			what = "sending it " + r.c.watchSignal
		}
		fmt.Fprintf(r.stderr, "neostore-secrets run: the secrets changed; %s\n", what)
		select {
		case reloads <- rl:
		case <-ctx.Done():
			return
		}
	}
}

// unanswered is a read of the secrets that --fetch-timeout cut short.
type unanswered struct {
	err   error
	limit time.Duration
}

func (e *unanswered) Error() string {
	return fmt.Sprintf("no answer within --fetch-timeout %s: %v", e.limit, e.err)
}
func (e *unanswered) Unwrap() error { return e.err }

func keysOf(values map[string][]byte) []string {
	return slices.Collect(maps.Keys(values))
}
