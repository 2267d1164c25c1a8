// Command crashtest kills a neostore-secrets server with SIGKILL at random
// moments under a write load, restarts it, and checks that nothing it
// acknowledged was lost: every acknowledged PUT is readable (or replaced by a
// later PUT or DELETE, acknowledged or cut off by the kill), every
// acknowledged DELETE stays deleted (unless such a later PUT revived it), the
// bbolt file passes bbolt's consistency check as the kill left it, and
// `audit verify` accepts the audit trail. It prints one line per cycle and a
// table of totals, and exits non-zero on any fault.
//
//	go run ./crashtest -cycles 100              # builds the binary itself
//	go run ./crashtest -bin ./neostore-secrets -duration 10m -seed 42
//	go run ./crashtest -cycles 30 -webhook        # and every event delivered (webhook.go)
//
// The seed (printed) fixes the kill moments and the writers' choices of key
// and operation; the interleaving with the server is still the machine's.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// config is the driver's command line.
type config struct {
	bin           string        // neostore-secrets binary; built into the work directory when empty
	cycles        int           // kill/restart cycles
	duration      time.Duration // start no cycle after this long (0: no limit)
	writers       int           // concurrent writers, each owning keysPerWriter keys
	keysPerWriter int
	deleteShare   float64       // share of operations that are DELETEs
	seed          uint64        // random seed; 0 picks one
	minKill       time.Duration // kill between minKill and maxKill after the writers start
	maxKill       time.Duration
	recoveryKills float64       // share of cycles that also kill the restarting server before it is ready
	freshKeys     int           // keys per writer in a tenant new in each cycle (0: none)
	readyTimeout  time.Duration // bound on a restart; past it the restart failed
	serveArgs     string        // extra serve flags, space-separated
	keep          bool          // keep the work directory (it is kept anyway on a fault)
	webhook       webhookConfig
}

func parseConfig(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("crashtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.bin, "bin", "", "neostore-secrets binary (default: go build ./cmd/neostore-secrets into the work directory)")
	fs.IntVar(&c.cycles, "cycles", 100, "kill/restart cycles")
	fs.DurationVar(&c.duration, "duration", 0, "start no new cycle after this long (0: run all cycles)")
	fs.IntVar(&c.writers, "writers", 4, "concurrent writers")
	fs.IntVar(&c.keysPerWriter, "keys", 32, "keys per writer (each key has one writer, so its operations are ordered)")
	fs.Float64Var(&c.deleteShare, "delete-share", 0.3, "share of operations that are DELETEs")
	fs.Uint64Var(&c.seed, "seed", 0, "random seed (0: from the clock); printed, so a run can be replayed")
	fs.DurationVar(&c.minKill, "min-kill", 50*time.Millisecond, "earliest kill after the writers start")
	fs.DurationVar(&c.maxKill, "max-kill", 1500*time.Millisecond, "latest kill after the writers start")
	fs.IntVar(&c.freshKeys, "fresh-keys", 2, "keys per writer in a new tenant each cycle, whose first writes create its data key (0: none)")
	fs.Float64Var(&c.recoveryKills, "recovery-kills", 0.2, "share of cycles that also kill the restarting server before it is ready")
	fs.DurationVar(&c.readyTimeout, "ready-timeout", 30*time.Second, "how long a restart may take before it counts as failed")
	fs.StringVar(&c.serveArgs, "serve-args", "", "extra serve flags, space-separated (e.g. \"--audit-durability group\")")
	fs.BoolVar(&c.keep, "keep", false, "keep the work directory (data, master key, server log)")
	fs.BoolVar(&c.webhook.on, "webhook", false, "subscribe a Standard Webhooks receiver to every tenant and check that every acknowledged change's event is delivered")
	fs.DurationVar(&c.webhook.drain, "webhook-drain", 90*time.Second, "-webhook: how long to wait after the last restart for the last deliveries (a dead process's leases must expire first)")
	fs.DurationVar(&c.webhook.lease, "webhook-lease", 25*time.Second, "-webhook: serve's --webhook-lease, how long a killed process's deliveries wait for the next (at least 20s)")
	fs.Float64Var(&c.webhook.busyShare, "webhook-busy", 0.05, "-webhook: share of first attempts the receiver answers 503 with Retry-After: 1")
	fs.DurationVar(&c.webhook.maxDelay, "webhook-delay", 20*time.Millisecond, "-webhook: the receiver answers after a random delay up to this long")
	fs.Float64Var(&c.webhook.quietShare, "webhook-quiet", 0.3, "-webhook: share of cycles whose writers stop halfway to the kill, so that it lands on deliveries alone")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	case c.cycles < 1 || c.writers < 1 || c.keysPerWriter < 1 || c.freshKeys < 0:
		return c, errors.New("-cycles, -writers and -keys must be at least 1, -fresh-keys at least 0")
	case c.minKill < 0 || c.maxKill < c.minKill:
		return c, errors.New("want 0 <= -min-kill <= -max-kill")
	case c.deleteShare < 0 || c.deleteShare > 1 || c.recoveryKills < 0 || c.recoveryKills > 1:
		return c, errors.New("-delete-share and -recovery-kills are shares between 0 and 1")
	case c.webhook.busyShare < 0 || c.webhook.busyShare > 1 || c.webhook.quietShare < 0 || c.webhook.quietShare > 1 || c.webhook.maxDelay < 0:
		return c, errors.New("-webhook-busy and -webhook-quiet are shares between 0 and 1, -webhook-delay at least 0")
	}
	if c.seed == 0 {
		c.seed = uint64(time.Now().UnixNano())
	}
	return c, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseConfig(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "crashtest:", err)
		}
		return 2
	}
	dir, err := os.MkdirTemp("", "crashtest-")
	if err != nil {
		fmt.Fprintln(stderr, "crashtest:", err)
		return 1
	}
	d := &driver{cfg: cfg, dir: dir, data: filepath.Join(dir, "data"), masterKey: filepath.Join(dir, "master.key"), out: stdout}
	fmt.Fprintf(stdout, "crashtest: seed %d (replay with -seed %d), %d writers x (%d keys + %d in a new tenant each cycle), kill after %s..%s, work directory %s\n",
		cfg.seed, cfg.seed, cfg.writers, cfg.keysPerWriter, cfg.freshKeys, cfg.minKill, cfg.maxKill, dir)
	started := time.Now()
	runErr := d.run(ctx)
	faulty := runErr != nil || d.t.faults() > 0 || (d.hooks != nil && d.hooks.result.faults() > 0)
	d.printTotals(time.Since(started))
	const shown = 30
	for i, f := range d.evidence {
		if i == shown {
			fmt.Fprintf(stdout, "  ... and %d more\n", len(d.evidence)-shown)
			break
		}
		fmt.Fprintln(stdout, "  evidence:", f)
	}
	if runErr != nil {
		fmt.Fprintln(stdout, "crashtest: FAILED:", runErr)
	}
	if faulty || cfg.keep {
		fmt.Fprintf(stdout, "crashtest: kept %s (server log: %s)\n", dir, filepath.Join(dir, "serve.log"))
	} else {
		os.RemoveAll(dir)
	}
	if faulty {
		fmt.Fprintf(stdout, "crashtest: FAILED (seed %d)\n", cfg.seed)
		return 1
	}
	fmt.Fprintln(stdout, "crashtest: PASS")
	return 0
}

// totals are the run's figures.
type totals struct {
	cycles         int
	puts, deletes  int // acknowledged
	inFlight       int // sent, not answered when the kill came
	errors         int // answered with anything but 204, or failed, before the kill
	verdicts       [4]int
	readErrors     int // checker GETs answered with anything but 200 or 404
	listMismatches int // key lists that disagree with the keys holding a value
	failedRestarts int
	recoveryKills  int
	boltFailures   int
	verify         [3]int
	restarts       []time.Duration // start to ready, every restart after a kill
	finalFailed    bool            // the files did not check out after the final, clean stop
}

// faults counts what makes the run fail.
func (t *totals) faults() int {
	return t.errors + t.verdicts[verdictLost] + t.verdicts[verdictRevived] + t.verdicts[verdictCorrupt] +
		t.readErrors + t.listMismatches + t.failedRestarts + t.boltFailures + t.verify[verifyFailed] + map[bool]int{true: 1}[t.finalFailed]
}

// driver runs the cycles against one data directory.
type driver struct {
	cfg                  config
	bin                  binary
	dir, data, masterKey string
	out                  io.Writer
	log                  *os.File
	apiKeys              map[string]string // tenant -> API key with both scopes
	keys                 []*keyModel       // every key ever written, each in its tenant
	mainKeys             []*keyModel       // the keys of the tenant every cycle writes
	srv                  *server
	t                    totals
	evidence             []string
	finalVerify          string
	hooks                *hooks // -webhook only
}

// mainTenant is the tenant every cycle writes; each cycle also writes a
// tenant of its own, crash-N, whose first PUTs create its data key.
const mainTenant = "crash"

func (d *driver) run(ctx context.Context) error {
	var err error
	if d.log, err = os.OpenFile(filepath.Join(d.dir, "serve.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		return err
	}
	defer d.log.Close()
	d.bin.path = d.cfg.bin
	if d.bin.path == "" {
		d.bin.path = filepath.Join(d.dir, "neostore-secrets")
		build := exec.CommandContext(ctx, "go", "build", "-o", d.bin.path, "github.com/neostore/neostore-secrets/cmd/neostore-secrets")
		build.Stdout, build.Stderr = d.out, d.out
		if err := build.Run(); err != nil {
			return fmt.Errorf("build neostore-secrets: %w", err)
		}
	}
	if _, stderr, code := d.bin.run(ctx, "keys", "init", "--out", d.masterKey); code != 0 {
		return fmt.Errorf("keys init: exit %d: %s", code, stderr)
	}
	d.apiKeys = map[string]string{}
	d.mainKeys = d.addKeys(mainTenant, d.cfg.writers*d.cfg.keysPerWriter)
	if err := d.restart(ctx); err != nil {
		return err
	}
	defer func() {
		if d.srv != nil {
			d.srv.kill()
		}
	}()
	if err := d.createAPIKey(ctx, mainTenant); err != nil {
		return err
	}
	if d.cfg.webhook.on {
		if err := d.subscribe(ctx); err != nil {
			return err
		}
		defer d.hooks.rcv.Close()
	}

	rng := rand.New(rand.NewPCG(d.cfg.seed, 0))
	started := time.Now()
	for n := 1; n <= d.cfg.cycles; n++ {
		if d.cfg.duration > 0 && time.Since(started) >= d.cfg.duration {
			fmt.Fprintf(d.out, "crashtest: -duration %s reached after %d cycles\n", d.cfg.duration, n-1)
			break
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := d.cycle(ctx, n, rng); err != nil {
			return err
		}
	}
	if d.hooks != nil {
		d.drainWebhooks(ctx)
		d.webhookEvidence(ctx)
	}
	return d.finish(ctx)
}

// addKeys adds n keys of tenant to the model and returns them.
func (d *driver) addKeys(tenant string, n int) []*keyModel {
	added := make([]*keyModel, n)
	for i := range added {
		added[i] = &keyModel{tenant: tenant, name: fmt.Sprintf("k-%04d", i)}
	}
	d.keys = append(d.keys, added...)
	return added
}

// createAPIKey issues an API key for tenant through the running server's
// admin socket.
func (d *driver) createAPIKey(ctx context.Context, tenant string) error {
	stdout, stderr, code := d.bin.run(ctx, "apikey", "create", "--data", d.data, "--tenant", tenant,
		"--scope", "Secret.Read", "--scope", "Secret.Write", "--name", "crashtest")
	if code != 0 {
		return fmt.Errorf("apikey create --tenant %s: exit %d: %s", tenant, code, stderr)
	}
	d.apiKeys[tenant], _, _ = strings.Cut(stdout, "\n")
	return nil
}

// cycle runs the writers, kills the server, checks the files it left,
// restarts it and checks every key.
func (d *driver) cycle(ctx context.Context, n int, rng *rand.Rand) error {
	d.t.cycles++
	killAt := d.cfg.minKill + time.Duration(rng.Int64N(int64(d.cfg.maxKill-d.cfg.minKill)+1))
	active := d.mainKeys
	if d.cfg.freshKeys > 0 {
		fresh := fmt.Sprintf("%s-%d", mainTenant, n)
		if err := d.createAPIKey(ctx, fresh); err != nil {
			return fmt.Errorf("cycle %d: %w", n, err)
		}
		active = append(slices.Clone(active), d.addKeys(fresh, d.cfg.writers*d.cfg.freshKeys)...)
	}
	stopAt := killAt
	if d.hooks != nil && rng.Float64() < d.cfg.webhook.quietShare {
		stopAt = killAt / 2 // the kill lands on deliveries alone
	}
	w := d.write(ctx, n, active, stopAt, killAt)
	d.t.puts += w.puts
	d.t.deletes += w.deletes
	d.t.inFlight += w.inFlight
	d.t.errors += w.errors

	boltResult := d.checkBolt(n)
	verify := d.verify(ctx, n)
	d.t.verify[verify]++

	recovery := ""
	if rng.Float64() < d.cfg.recoveryKills {
		// Kill the next start too, at a moment before it would be ready:
		// the repair of a torn audit line and the write-back of the
		// journal are what a crash can interrupt there.
		var bound time.Duration = 100 * time.Millisecond
		if len(d.t.restarts) > 0 {
			bound = d.t.restarts[len(d.t.restarts)-1]
		}
		after := time.Duration(rng.Int64N(int64(bound) + 1))
		if err := d.killDuringStart(after); err != nil {
			return err
		}
		d.t.recoveryKills++
		recovery = fmt.Sprintf(" killed again %s into the restart;", after.Round(time.Millisecond))
		if r := d.checkBolt(n); r != "ok" {
			boltResult = r
		}
	}

	start := time.Now()
	if err := d.restart(ctx); err != nil {
		d.t.failedRestarts++
		return fmt.Errorf("cycle %d: restart: %w", n, err)
	}
	took := time.Since(start)
	d.t.restarts = append(d.t.restarts, took)
	v, readErrs, mismatches := d.check(ctx, n)
	for i, c := range v {
		d.t.verdicts[i] += c
	}
	d.t.readErrors += readErrs
	d.t.listMismatches += mismatches

	webhooks := ""
	if d.hooks != nil {
		webhooks = d.hooks.progress()
		if stopAt < killAt {
			webhooks += " (writes stopped at " + stopAt.Round(time.Millisecond).String() + ")"
		}
	}
	fmt.Fprintf(d.out, "cycle %3d: kill at %6s: puts %4d deletes %4d in flight %d errors %d; bolt %s; verify %s;%s restart %s; keys ok %d lost %d revived %d corrupt %d read errors %d list mismatches %d%s\n",
		n, killAt.Round(time.Millisecond), w.puts, w.deletes, w.inFlight, w.errors, boltResult, verify, recovery,
		took.Round(time.Millisecond), v[verdictOK], v[verdictLost], v[verdictRevived], v[verdictCorrupt], readErrs, mismatches, webhooks)
	return nil
}

// serveArgs are the flags every start of the server gets: a port of the
// kernel's choosing (read from the start line), no metrics listener, and a
// fixed node id so that the audit chain does not depend on the host name.
func (d *driver) serveArgs() []string {
	args := []string{"serve", "--listen", "127.0.0.1:0", "--data", d.data, "--master-key-file", d.masterKey,
		"--metrics-listen", "off", "--node-id", "crashtest"}
	if d.cfg.webhook.on {
		args = append(args, webhookServeArgs...)
		args = append(args, "--webhook-lease", d.cfg.webhook.lease.String())
	}
	return append(args, strings.Fields(d.cfg.serveArgs)...)
}

// restart starts the server and waits until it is ready.
func (d *driver) restart(ctx context.Context) error {
	fmt.Fprintf(d.log, "crashtest: starting serve\n")
	srv, err := startServer(d.bin, d.serveArgs(), d.log)
	if err != nil {
		return err
	}
	if err := srv.ready(ctx, d.cfg.readyTimeout); err != nil {
		srv.kill()
		return err
	}
	d.srv = srv
	return nil
}

// killDuringStart starts the server and kills it after the given time,
// whether or not it is ready by then.
func (d *driver) killDuringStart(after time.Duration) error {
	fmt.Fprintf(d.log, "crashtest: starting serve, to kill it after %s\n", after)
	srv, err := startServer(d.bin, d.serveArgs(), d.log)
	if err != nil {
		return err
	}
	select {
	case <-time.After(after):
	case <-srv.exited:
	}
	srv.kill()
	fmt.Fprintf(d.log, "crashtest: killed serve during its start\n")
	return nil
}

// writeStats are one cycle's write figures.
type writeStats struct {
	puts, deletes, inFlight, errors int
}

// write runs the writers on keys until stopAt, kills the server with
// SIGKILL at killAt and returns when every writer has seen its last request
// fail. Writer w owns the keys whose index modulo the number of writers is w.
func (d *driver) write(ctx context.Context, cycle int, keys []*keyModel, stopAt, killAt time.Duration) writeStats {
	var killed, stopped atomic.Bool
	base := d.srv.base // d.srv goes at the kill, while writers still run
	transport := &http.Transport{MaxIdleConnsPerHost: d.cfg.writers}
	defer transport.CloseIdleConnections()
	client := &http.Client{Timeout: 30 * time.Second, Transport: transport}
	stats := make([]writeStats, d.cfg.writers)
	var mu sync.Mutex // guards d.evidence
	var wg sync.WaitGroup
	for w := range d.cfg.writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(d.cfg.seed, uint64(cycle)<<8|uint64(w)))
			st := &stats[w]
			var own []*keyModel
			for i := w; i < len(keys); i += d.cfg.writers {
				own = append(own, keys[i])
			}
			for !killed.Load() && !stopped.Load() && ctx.Err() == nil {
				m := own[rng.IntN(len(own))]
				del := rng.Float64() < d.cfg.deleteShare
				outcome := int64(absent)
				if !del {
					outcome = m.nextVersion()
				}
				m.send(outcome)
				status, err := d.change(ctx, client, base, m, del, outcome)
				switch {
				case err == nil && status == http.StatusNoContent:
					m.ack()
					if del {
						st.deletes++
					} else {
						st.puts++
					}
				case killed.Load():
					st.inFlight++
				default:
					st.errors++
					mu.Lock()
					d.evidence = append(d.evidence, fmt.Sprintf("cycle %d: %s %s/%s before the kill: status %d, %v", cycle, map[bool]string{false: "PUT", true: "DELETE"}[del], m.tenant, m.name, status, err))
					mu.Unlock()
				}
			}
		})
	}
	waited := time.Duration(0)
	if stopAt < killAt {
		select {
		case <-time.After(stopAt):
		case <-ctx.Done():
		}
		stopped.Store(true)
		waited = stopAt
	}
	select {
	case <-time.After(killAt - waited):
	case <-ctx.Done():
	}
	killed.Store(true)
	d.srv.kill()
	d.srv = nil
	wg.Wait()
	var sum writeStats
	for _, s := range stats {
		sum.puts += s.puts
		sum.deletes += s.deletes
		sum.inFlight += s.inFlight
		sum.errors += s.errors
	}
	return sum
}

// change sends one PUT of version ver, or one DELETE, and returns the status.
func (d *driver) change(ctx context.Context, client *http.Client, base string, m *keyModel, del bool, ver int64) (int, error) {
	url := base + "/api/" + m.tenant + "/secrets/" + m.name
	var req *http.Request
	var err error
	if del {
		req, err = http.NewRequestWithContext(ctx, http.MethodDelete, url, nil)
	} else {
		req, err = http.NewRequestWithContext(ctx, http.MethodPut, url, strings.NewReader(`{"value":"`+value(m.name, ver)+`"}`))
	}
	if err != nil {
		return 0, err
	}
	req.Header.Set("X-API-KEY", d.apiKeys[m.tenant])
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, err
	}
	return resp.StatusCode, nil
}

// check reads every key back from the restarted server, judges what it
// holds, settles the model on it, and compares each tenant's key list with
// the keys that hold a value. It returns the verdicts, the reads that
// failed and the lists that disagree.
func (d *driver) check(ctx context.Context, cycle int) ([4]int, int, int) {
	const readers = 4
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: readers}}
	defer client.CloseIdleConnections()
	var (
		mu       sync.Mutex
		verdicts [4]int
		readErrs int
		next     atomic.Int64
		wg       sync.WaitGroup
	)
	for range readers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(d.keys) {
					return
				}
				m := d.keys[i]
				observed, err := d.read(ctx, client, m)
				mu.Lock()
				if err != nil {
					readErrs++
					d.evidence = append(d.evidence, fmt.Sprintf("cycle %d: GET %s/%s after the restart: %v", cycle, m.tenant, m.name, err))
					mu.Unlock()
					continue
				}
				v := m.judge(observed)
				verdicts[v]++
				if v != verdictOK {
					unanswered := make([]string, len(m.inFlight))
					for i, o := range m.inFlight {
						unanswered[i] = describe(o)
					}
					d.evidence = append(d.evidence, fmt.Sprintf("cycle %d: %s/%s %s: holds %s; last acknowledged %s, unanswered after it [%s], highest sent v%d",
						cycle, m.tenant, m.name, v, describe(observed), describe(m.acked), strings.Join(unanswered, " "), m.issued))
				}
				m.settle(observed)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	// The key list must name exactly the keys that hold a value: a list
	// and the reads it points to disagreeing is a fault of its own.
	mismatches := 0
	for tenant := range d.apiKeys {
		listed, err := d.list(ctx, client, tenant)
		if err != nil {
			readErrs++
			d.evidence = append(d.evidence, fmt.Sprintf("cycle %d: GET the key list of %s after the restart: %v", cycle, tenant, err))
			continue
		}
		var holding []string
		for _, m := range d.keys {
			if m.tenant == tenant && m.acked != absent {
				holding = append(holding, m.name)
			}
		}
		slices.Sort(listed)
		slices.Sort(holding)
		if !slices.Equal(listed, holding) {
			mismatches++
			d.evidence = append(d.evidence, fmt.Sprintf("cycle %d: the key list of %s names %d keys, %d hold a value", cycle, tenant, len(listed), len(holding)))
		}
	}
	return verdicts, readErrs, mismatches
}

// list returns the key names the server lists for tenant.
func (d *driver) list(ctx context.Context, client *http.Client, tenant string) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.srv.base+"/api/"+tenant+"/secrets", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-API-KEY", d.apiKeys[tenant])
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	var names []string
	if err := json.NewDecoder(resp.Body).Decode(&names); err != nil {
		return nil, err
	}
	return names, nil
}

// describe names a key's state for the evidence lines.
func describe(ver int64) string {
	switch {
	case ver == absent:
		return "nothing"
	case ver < 0:
		return "a value the driver never wrote"
	}
	return fmt.Sprintf("v%d", ver)
}

// read returns the version a key holds (absent on 404, -1 for a value the
// driver did not write).
func (d *driver) read(ctx context.Context, client *http.Client, m *keyModel) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.srv.base+"/api/"+m.tenant+"/secrets/"+m.name, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("X-API-KEY", d.apiKeys[m.tenant])
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return parseValue(m.name, string(body)), nil
	case http.StatusNotFound:
		return absent, nil
	}
	return 0, fmt.Errorf("status %d", resp.StatusCode)
}

// checkBolt runs bbolt's consistency check on the stopped server's file.
func (d *driver) checkBolt(cycle int) string {
	if err := checkBolt(filepath.Join(d.data, "secrets.db")); err != nil {
		d.t.boltFailures++
		d.evidence = append(d.evidence, fmt.Sprintf("cycle %d: bbolt check: %v", cycle, err))
		return "FAILED"
	}
	return "ok"
}

// verify runs `audit verify` on the stopped server's trail.
func (d *driver) verify(ctx context.Context, cycle int) verifyResult {
	stdout, stderr, code := d.bin.run(ctx, "audit", "verify", "--file", filepath.Join(d.data, "audit.log"),
		"--data", d.data, "--master-key-file", d.masterKey)
	r := classifyVerify(code, stdout+stderr)
	if r != verifyOK {
		d.evidence = append(d.evidence, fmt.Sprintf("cycle %d: audit verify (%s, exit %d): %s", cycle, r, code, strings.TrimSpace(stdout+" "+stderr)))
	}
	return r
}

// finish stops the server cleanly and checks the files once more: after a
// clean stop the trail must verify without even a torn tail, since every
// start repairs one.
func (d *driver) finish(ctx context.Context) error {
	if err := d.srv.stop(d.cfg.readyTimeout); err != nil {
		d.evidence = append(d.evidence, fmt.Sprintf("final stop: %v", err))
	}
	d.srv = nil
	bolt := d.checkBolt(0)
	r := d.verify(ctx, 0)
	d.t.finalFailed = bolt != "ok" || r != verifyOK
	d.finalVerify = fmt.Sprintf("bolt %s, verify %s", bolt, r)
	return nil
}

func (d *driver) printTotals(took time.Duration) {
	t := &d.t
	row := func(name string, v any) { fmt.Fprintf(d.out, "| %-40s | %v |\n", name, v) }
	fmt.Fprintln(d.out)
	fmt.Fprintf(d.out, "| %-40s | %s |\n|%s|---|\n", "crash test", "", strings.Repeat("-", 42))
	row("cycles", t.cycles)
	row("acknowledged PUTs", t.puts)
	row("acknowledged DELETEs", t.deletes)
	row("in flight at kill", t.inFlight)
	row("errors before a kill", t.errors)
	row("keys checked ok", t.verdicts[verdictOK])
	row("lost", t.verdicts[verdictLost])
	row("revived", t.verdicts[verdictRevived])
	row("corrupt", t.verdicts[verdictCorrupt])
	row("read errors", t.readErrors)
	row("key lists disagreeing with reads", t.listMismatches)
	row("failed restarts", t.failedRestarts)
	row("kills during a restart", t.recoveryKills)
	row("bbolt check failures", t.boltFailures)
	row("audit verify after kill ok/torn/failed", fmt.Sprintf("%d/%d/%d", t.verify[verifyOK], t.verify[verifyTorn], t.verify[verifyFailed]))
	row("after a clean stop", d.finalVerify)
	if d.hooks != nil {
		d.printWebhookTotals(row)
	}
	if len(t.restarts) > 0 {
		s := slices.Clone(t.restarts)
		slices.Sort(s)
		row("restart to ready p50/max", fmt.Sprintf("%s/%s", s[len(s)/2].Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond)))
	}
	row("seed", d.cfg.seed)
	row("took", took.Round(time.Second))
}
