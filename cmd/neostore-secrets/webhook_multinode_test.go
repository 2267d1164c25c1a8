package main

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets/pgtest"
	"github.com/neostore/neostore-secrets/webhooktest"
)

// procServer is serve as a child process of the test binary, so that a test
// can kill it with SIGKILL as a crash would.
type procServer struct {
	cmd    *exec.Cmd
	base   string
	stderr *syncBuffer
	exited chan struct{}
}

// startProcServer starts the program built by programBinary as `serve` on a
// port of the kernel's choosing, and waits until it is serving and ready.
func startProcServer(t *testing.T, dataDir, masterKey string, extra ...string) *procServer {
	t.Helper()
	args := append([]string{"serve", "--listen", "127.0.0.1:0", "--data", dataDir, "--master-key-file", masterKey, "--metrics-listen", "off"}, extra...)
	p := &procServer{cmd: exec.Command(programBinary(t), args...), stderr: &syncBuffer{}, exited: make(chan struct{})}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NEOSTORE_") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	p.cmd.Stdout, p.cmd.Stderr = p.stderr, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		err := p.cmd.Wait()
		done <- err
		close(p.exited)
	}()
	t.Cleanup(p.kill)
	p.base = "http://" + waitServing(t, done, p.stderr)
	waitReady(t, http.DefaultClient, p.base, done, p.stderr)
	return p
}

// kill sends SIGKILL and waits until the process is gone.
func (p *procServer) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// stop sends SIGTERM and waits (bounded) for the clean exit.
func (p *procServer) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		p.kill()
		t.Fatalf("serve did not stop within 30s of SIGTERM\n%s", p.stderr)
	}
}

// leaseFor is the nodes' --webhook-lease: how long a dead node's
// deliveries wait before another node takes them. Short, so that the test
// does not wait the 60 s default; it is still longer than an attempt's
// 10 s timeout twice over, which the handover below must wait out.
const leaseFor = 25 * time.Second

// TestWebhook_TwoNodesOnPostgres: two real serve processes share one
// PostgreSQL database and one subscription. Writes through both deliver
// every event once; a node killed with SIGKILL while it holds deliveries
// (four in flight at the receiver, the rest leased and waiting for a slot)
// leaves them to the other node, which sends them once their lease ends.
func TestWebhook_TwoNodesOnPostgres(t *testing.T) {
	url := pgtest.Start(t)
	masterKey := newMasterKey(t)
	aDir, bDir := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	// Debug: delivered attempts are logged at debug, and the test counts
	// each node's.
	flags := []string{"--store", "postgres", "--postgres-url", url, "--webhook-allow-private", "--webhook-allow-insecure", "--log-level", "debug", "--webhook-lease", leaseFor.String()}
	a := startProcServer(t, aDir, masterKey, append(flags, "--node-id", "node-a")...)
	b := startProcServer(t, bDir, masterKey, append(flags, "--node-id", "node-b")...)

	// The receiver answers 204, or holds its answer while hold is set.
	var mu sync.Mutex
	var hold chan struct{}
	rcv := startWebhookReceiver(t, func(webhooktest.Request, int) webhooktest.Response {
		mu.Lock()
		defer mu.Unlock()
		return webhooktest.Response{Hold: hold}
	})
	id, secret := subscribeURL(t, aDir, "acme", rcv.URL)
	if err := rcv.SetSecrets(secret); err != nil {
		t.Fatal(err)
	}
	key := createKey(t, aDir, "acme", "Secret.Read", "Secret.Write")
	put := func(base, k string) {
		t.Helper()
		if status, _, body := do(t, "PUT", base+"/api/acme/secrets/"+k, key, `{"value":"v"}`); status != 204 {
			t.Fatalf("PUT %s on %s = %d %s", k, base, status, body)
		}
	}

	const n = 40
	t.Run("WritesThroughBothNodesDeliverEveryEventOnce", func(t *testing.T) {
		for i := range n {
			put([]string{a.base, b.base}[i%2], "k-"+strconv.Itoa(i))
		}
		if err := rcv.WaitTimeout(60*time.Second, delivered(n)); err != nil {
			t.Fatalf("%v: %+v", err, webhooktest.Summarize(rcv.Requests()))
		}
		// Once the store says every delivery is delivered, no attempt of
		// them can still come: then count.
		waitDeliveries(t, aDir, id, false, 30*time.Second, func(ds []deliveryRecord) bool {
			for _, d := range ds {
				if d.State != "delivered" {
					return false
				}
			}
			return len(ds) == n
		})
		s := webhooktest.Summarize(rcv.Requests())
		if s.Attempts != n || s.Delivered != n || s.Duplicates != 0 || s.Invalid != 0 {
			t.Fatalf("receiver saw %+v, want %d events each delivered once", s, n)
		}
		// Each node logs an attempt just after it recorded it.
		var byA, byB int
		waitFor(t, 5*time.Second, func() bool {
			byA, byB = deliveredBy(a), deliveredBy(b)
			return byA+byB == n
		})
		if byA == 0 || byB == 0 {
			t.Errorf("node a delivered %d, node b %d; want both to share the %d", byA, byB, n)
		}
		t.Logf("%d events, each delivered once: %d by node a, %d by node b", n, byA, byB)
	})

	t.Run("KilledNodeHandsItsDeliveriesOverWithinTheLease", func(t *testing.T) {
		// Node b stops, so that every delivery of the next writes is node
		// a's; it comes back before a dies.
		b.stop(t)
		release := make(chan struct{})
		mu.Lock()
		hold = release
		mu.Unlock()
		const m = 8
		for i := range m {
			put(a.base, "held-"+strconv.Itoa(i))
		}
		isHeld := func(q webhooktest.Request) bool { return strings.HasPrefix(q.Key, "held-") }
		count := func(qs []webhooktest.Request, f func(webhooktest.Request) bool) int {
			c := 0
			for _, q := range qs {
				if isHeld(q) && f(q) {
					c++
				}
			}
			return c
		}
		inFlight := func(q webhooktest.Request) bool { return q.Status == 0 && !q.Gone }
		// Four attempts at once per endpoint: four in flight, four leased
		// and waiting for a slot.
		if err := rcv.WaitTimeout(30*time.Second, func(qs []webhooktest.Request) bool { return count(qs, inFlight) == 4 }); err != nil {
			t.Fatalf("node a has not 4 attempts in flight: %v", err)
		}
		b = startProcServer(t, bDir, masterKey, append(flags, "--node-id", "node-b")...)

		// Node a's 10 s timeout may have ended an attempt while b started;
		// those in flight now end with the kill.
		held := count(rcv.Requests(), inFlight)
		a.kill()
		killed := time.Now()
		if held == 0 {
			t.Fatal("node a had no attempt in flight at the kill")
		}
		if err := rcv.WaitTimeout(10*time.Second, func(qs []webhooktest.Request) bool {
			return count(qs, inFlight) == 0
		}); err != nil {
			t.Fatalf("node a's attempts in flight did not end with it: %v", err)
		}
		mu.Lock()
		hold = nil
		mu.Unlock()
		close(release)

		bound := leaseFor + 10*time.Second // the lease, b's poll (250 ms) and the attempts
		if err := rcv.WaitTimeout(bound, func(qs []webhooktest.Request) bool {
			return webhooktest.Summarize(qs).Delivered == n+m
		}); err != nil {
			t.Fatalf("node a's deliveries not delivered by node b within %v of the kill: %+v", bound, webhooktest.Summarize(rcv.Requests()))
		}
		took := time.Since(killed)
		s := webhooktest.Summarize(rcv.Requests())
		if s.Invalid != 0 || len(s.Conflicts) != 0 {
			t.Errorf("receiver saw %+v", s)
		}
		perID := map[string]int{}
		for _, q := range rcv.Requests() {
			if isHeld(q) && q.Delivered() {
				perID[q.ID]++
			}
		}
		for id, c := range perID {
			if c != 1 {
				t.Errorf("event %s delivered %d times after the handover, want once", id, c)
			}
		}
		waitFor(t, 5*time.Second, func() bool { return deliveredBy(b) == m })
		t.Logf("node a killed holding %d deliveries (%d in flight); node b delivered them %v after the kill (lease %v)", m, held, took.Round(time.Millisecond), leaseFor)
	})
}

// deliveredBy counts the deliveries a node logged ("webhook: attempt ...
// result=delivered").
func deliveredBy(p *procServer) int { return strings.Count(p.stderr.String(), "result=delivered") }

// waitFor polls cond every 20 ms until it holds, for at most limit.
func waitFor(t *testing.T, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
