// Command seed is the benchmark kit's helper (bench/run.sh): it fills a
// running server with secrets over the HTTP API, many requests at once, and
// carries the few other things the kit cannot do well in shell.
//
//	seed put      -url URL -tenant T -keys N [-key-prefix P] [-start S] [-concurrency C]
//	              writes keys P<S>..P<S+N-1>; API key in BENCH_API_KEY. Or,
//	              with -tenants M -data DIR, M tenants named T0..T(M-1), N keys
//	              each, one API key per tenant issued over DIR's admin socket
//	              and listed ("tenant key" lines) in -keys-out FILE (mode 0600).
//	seed wait     -url URL [-status N] [-timeout D] [-pid P]
//	              polls GET URL (API key in BENCH_API_KEY, if set) until it
//	              answers N (0: anything); gives up at once when process P
//	              has exited.
//	seed ready    -url URL [-log FILE] -- COMMAND ARGS...
//	              starts COMMAND, prints the milliseconds from its start to
//	              the first 200 on GET URL (API key in BENCH_API_KEY), stops it.
//	seed freeport prints a free TCP port on 127.0.0.1.
//	seed pgdb create URL | drop URL
//	              creates a database with a fresh name on URL's server and
//	              prints its URL; drops such a database.
//	seed receiver -secret-file FILE [-listen ADDR]
//	              a webhook endpoint at /hook that verifies (Standard Webhooks,
//	              package webhooktest), answers 204 and counts; GET /stats.
//	seed drain    -url STATS-URL -want N [-timeout D]
//	              waits until the receiver has N events and prints how many
//	              were pending at the first look and how long they took.
//
// Keys are named P0, P1, ... (no padding), which the kit's delete script
// relies on. Nothing here prints an API key.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/admin"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "seed:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("want a command: put, wait, ready, freeport, pgdb, receiver or drain")
	}
	switch args[0] {
	case "put":
		return runPut(ctx, args[1:], getenv, stdout, stderr)
	case "wait":
		return runWait(ctx, args[1:], getenv, stderr)
	case "ready":
		return runReady(ctx, args[1:], getenv, stdout, stderr)
	case "freeport":
		return runFreePort(stdout)
	case "pgdb":
		return runPGDB(ctx, args[1:], stdout)
	case "receiver":
		return runReceiver(ctx, args[1:], stdout, stderr)
	case "drain":
		return runDrain(ctx, args[1:], stdout, stderr)
	}
	return fmt.Errorf("unknown command %q", args[0])
}

// job is one secret to write.
type job struct {
	tenant int
	key    int
}

func runPut(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("put", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("url", "", "base URL of the server, e.g. http://127.0.0.1:8200")
	tenant := fs.String("tenant", "", "tenant id; with -tenants, the prefix of the tenant ids")
	tenants := fs.Int("tenants", 0, "number of tenants (0: just -tenant); needs -data")
	dataDir := fs.String("data", "", "the server's data directory, to issue one API key per tenant over its admin socket")
	keys := fs.Int("keys", 1000, "secrets per tenant")
	keyPrefix := fs.String("key-prefix", "k", "key names are this prefix followed by a number")
	first := fs.Int("start", 0, "number of the first key")
	keysOut := fs.String("keys-out", "", "with -tenants: file to list the issued API keys in")
	value := fs.String("value", "value-0123456789abcdefgh", "the value of every secret (24 bytes by default)")
	concurrency := fs.Int("concurrency", 64, "requests in flight")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *base == "" || *tenant == "" || *keys < 0 || *concurrency < 1 {
		return errors.New("put: -url and -tenant are required; -keys >= 0, -concurrency >= 1")
	}
	if *keys == 0 {
		return nil
	}

	// apiKeys[i] is the key for tenant i, names[i] its id.
	var names, apiKeys []string
	if *tenants == 0 {
		k := getenv("BENCH_API_KEY")
		if k == "" {
			return errors.New("put: set BENCH_API_KEY to an API key with Secret.Write on the tenant")
		}
		names, apiKeys = []string{*tenant}, []string{k}
	} else {
		if *dataDir == "" {
			return errors.New("put: -tenants needs -data to issue API keys")
		}
		names = make([]string, *tenants)
		for i := range names {
			names[i] = *tenant + strconv.Itoa(i)
		}
		var err error
		start := time.Now()
		if apiKeys, err = issueKeys(ctx, *dataDir, names, *concurrency); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "seed: issued %d API keys in %s\n", len(apiKeys), time.Since(start).Round(time.Millisecond))
		if *keysOut != "" {
			if err := writeKeys(*keysOut, names, apiKeys); err != nil {
				return err
			}
		}
	}

	client := &http.Client{
		Timeout:   60 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: *concurrency, MaxConnsPerHost: *concurrency},
	}
	body := `{"value":` + strconv.Quote(*value) + `}`
	total := len(names) * *keys
	jobs := make(chan job, *concurrency)
	var done, failed atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for range *concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				u := *base + "/api/" + names[j.tenant] + "/secrets/" + *keyPrefix + strconv.Itoa(*first+j.key)
				if err := put(ctx, client, u, apiKeys[j.tenant], body); err != nil {
					failed.Add(1)
					once.Do(func() { firstErr = err })
					continue
				}
				done.Add(1)
			}
		}()
	}
	progress := time.NewTicker(10 * time.Second)
	defer progress.Stop()
feed:
	for t := range names {
		for k := range *keys {
			select {
			case jobs <- job{t, k}:
			case <-progress.C:
				fmt.Fprintf(stderr, "seed: %d/%d written\n", done.Load(), total)
				jobs <- job{t, k}
			case <-ctx.Done():
				break feed
			}
			if failed.Load() > 0 {
				break feed
			}
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return fmt.Errorf("put: %d of %d writes failed; first: %w", failed.Load(), total, firstErr)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	d := time.Since(start)
	fmt.Fprintf(stdout, "seeded %d secrets in %d tenant(s) in %s (%.0f/s)\n", done.Load(), len(names), d.Round(time.Millisecond), float64(done.Load())/d.Seconds())
	return nil
}

// writeKeys lists tenant and API key per line, for the kit's getrand script.
func writeKeys(path string, tenants, keys []string) error {
	var b strings.Builder
	for i, t := range tenants {
		b.WriteString(t + " " + keys[i] + "\n")
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

// put writes one secret and wants 204.
func put(ctx context.Context, client *http.Client, u, apiKey, body string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("X-API-KEY", apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("PUT %s: status %d", u, resp.StatusCode)
	}
	return nil
}

// adminConcurrency bounds the API-key requests in flight on the admin socket.
const adminConcurrency = 16

// issueKeys issues one read-write API key per tenant over the admin socket.
func issueKeys(ctx context.Context, dataDir string, tenants []string, concurrency int) ([]string, error) {
	// The admin socket serves 64 connections at most (serve's
	// maxAdminConnections) and the client keeps 2 idle ones (net/http's
	// default), so 64 workers close and reopen connections, a new one can
	// arrive before the server has counted an old one's close, and the
	// server refuses it: SECRETS_FOR_RSS=1000000 (1,000 tenants) failed so
	// at the default concurrency of 64 ("connection reset by peer").
	concurrency = min(concurrency, adminConcurrency)
	client, err := admin.Dial(dataDir)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	keys := make([]string, len(tenants))
	idx := make(chan int)
	errc := make(chan error, concurrency)
	var wg sync.WaitGroup
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range idx {
				k, _, err := client.Create(ctx, neostore.NewAPIKey{Tenant: tenants[i], Scopes: neostore.ScopeRead | neostore.ScopeWrite, Name: "bench-seed"})
				if err != nil {
					errc <- fmt.Errorf("issue API key for tenant %s: %w", tenants[i], err)
					return
				}
				keys[i] = k
			}
		}()
	}
	var firstErr error
send:
	for i := range tenants {
		select {
		case idx <- i:
		case firstErr = <-errc:
			break send
		case <-ctx.Done():
			firstErr = ctx.Err()
			break send
		}
	}
	close(idx)
	wg.Wait()
	if firstErr == nil {
		select {
		case firstErr = <-errc:
		default:
		}
	}
	return keys, firstErr
}

func runWait(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet("wait", flag.ContinueOnError)
	fs.SetOutput(stderr)
	target := fs.String("url", "", "URL to GET")
	want := fs.Int("status", 0, "status to wait for (0: any response)")
	timeout := fs.Duration("timeout", time.Minute, "give up after this long")
	pid := fs.Int("pid", 0, "give up when this process has exited (0: do not watch)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *target, nil)
	if err != nil {
		return err
	}
	if k := getenv("BENCH_API_KEY"); k != "" {
		req.Header.Set("X-API-KEY", k)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(*timeout)
	last := "no answer"
	for {
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if *want == 0 || resp.StatusCode == *want {
				return nil
			}
			last = resp.Status
		}
		if *pid != 0 && !alive(*pid) {
			return fmt.Errorf("wait: process %d exited before GET %s answered", *pid, *target)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("wait: GET %s: no answer with status %d (0: any) within %s, last: %s", *target, *want, *timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func runReady(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ready", flag.ContinueOnError)
	fs.SetOutput(stderr)
	target := fs.String("url", "", "URL to GET until it answers 200")
	logFile := fs.String("log", "", "file for the command's stdout and stderr (default: discard)")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *target == "" || fs.NArg() == 0 {
		return errors.New("ready: want -url URL -- COMMAND [ARGS]")
	}
	apiKey := getenv("BENCH_API_KEY")
	cmd := exec.Command(fs.Arg(0), fs.Args()[1:]...)
	// The server dies with us, whatever kills us.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if *logFile != "" {
		f, err := os.OpenFile(*logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f
	}
	client := &http.Client{Timeout: time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *target, nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-API-KEY", apiKey)

	exited := make(chan error, 1)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { exited <- cmd.Wait() }()
	stopServer := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(time.Minute):
			cmd.Process.Kill()
			<-exited
		}
	}
	for {
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				elapsed := time.Since(start)
				fmt.Fprintf(stdout, "%.1f\n", float64(elapsed.Microseconds())/1000)
				stopServer()
				return nil
			}
		}
		select {
		case err := <-exited:
			return fmt.Errorf("ready: the server exited before it answered 200: %v", err)
		case <-ctx.Done():
			stopServer()
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
		if time.Since(start) > *timeout {
			stopServer()
			return fmt.Errorf("ready: no 200 within %s", *timeout)
		}
	}
}

func runFreePort(stdout io.Writer) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Fprintln(stdout, ln.Addr().(*net.TCPAddr).Port)
	return nil
}

// runPGDB creates or drops a throwaway database, so every PostgreSQL run
// starts as empty as a fresh data directory (a new master key would be
// refused by a database that has seen another).
func runPGDB(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) != 2 || (args[0] != "create" && args[0] != "drop") {
		return errors.New("pgdb: want create URL or drop URL")
	}
	u, err := url.Parse(args[1])
	if err != nil {
		return errors.New("pgdb: the URL does not parse")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	switch args[0] {
	case "create":
		var b [6]byte
		rand.Read(b[:])
		name := "neostore_bench_" + hex.EncodeToString(b[:])
		conn, err := pgx.Connect(ctx, u.String())
		if err != nil {
			return fmt.Errorf("pgdb: connect: %w", err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
			return fmt.Errorf("pgdb: create database (the role needs CREATEDB): %w", err)
		}
		u.Path = "/" + name
		fmt.Fprintln(stdout, u.String())
	case "drop":
		name := strings.TrimPrefix(u.Path, "/")
		if !strings.HasPrefix(name, "neostore_bench_") {
			return fmt.Errorf("pgdb: refusing to drop %q: not a database this kit created", name)
		}
		u.Path = "/postgres"
		conn, err := pgx.Connect(ctx, u.String())
		if err != nil {
			return fmt.Errorf("pgdb: connect: %w", err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("pgdb: drop database: %w", err)
		}
	}
	return nil
}
