package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets/apikey"
	"github.com/neostore/neostore-secrets/pgtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	removeProgramBinary()
	pgtest.Shutdown()
	os.Exit(code)
}

// startPostgresNode runs serve on the PostgreSQL store at url with its own
// data directory (for its admin socket).
func startPostgresNode(t *testing.T, url, masterKey string, extra ...string) (*server, string) {
	t.Helper()
	dataDir := filepath.Join(t.TempDir(), "node")
	args := append([]string{"--store", "postgres", "--postgres-url", url}, extra...)
	return startServer(t, dataDir, masterKey, args...), dataDir
}

func TestMultiNode(t *testing.T) {
	url := pgtest.Start(t)
	masterKey := newMasterKey(t)
	a, aDir := startPostgresNode(t, url, masterKey, "--apikey-reload-interval", "1s", "--audit-sink", "database", "--node-id", "node-a")
	b, _ := startPostgresNode(t, url, masterKey, "--apikey-reload-interval", "1s", "--audit-sink", "database", "--node-id", "node-b")

	// A key issued on A is used on B once B has reloaded (within the bound).
	key := createKey(t, aDir, "acme", "Secret.Read", "Secret.Write")
	waitStatus(t, b.base+"/api/acme/secrets", key, 200, 5*time.Second)

	t.Run("PutOnAReadOnB", func(t *testing.T) {
		for i := range 20 {
			v := fmt.Sprintf("value-%d", i)
			if status, _, body := do(t, "PUT", a.base+"/api/acme/secrets/shared", key, `{"value":"`+v+`"}`); status != 204 {
				t.Fatalf("PUT on A = %d %s", status, body)
			}
			if status, _, body := do(t, "GET", b.base+"/api/acme/secrets/shared", key, ""); status != 200 || body != v {
				t.Fatalf("GET on B right after PUT on A = %d %q, want 200 %q", status, body, v)
			}
		}
	})
	t.Run("DeleteOnAIs404OnB", func(t *testing.T) {
		if status, _, _ := do(t, "DELETE", a.base+"/api/acme/secrets/shared", key, ""); status != 204 {
			t.Fatalf("DELETE on A = %d", status)
		}
		if status, _, _ := do(t, "GET", b.base+"/api/acme/secrets/shared", key, ""); status != 404 {
			t.Fatalf("GET on B right after DELETE on A = %d, want 404", status)
		}
	})
	t.Run("RevokeOnARefusedOnBWithinBound", func(t *testing.T) {
		doomed := createKey(t, aDir, "acme", "Secret.Read")
		waitStatus(t, b.base+"/api/acme/secrets", doomed, 200, 5*time.Second)
		stdout, _, err := cli(t, "apikey", "list", "--data", aDir, "--tenant", "acme", "--json")
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := cli(t, "apikey", "revoke", "--data", aDir, readOnlyKeyID(t, stdout)); err != nil {
			t.Fatal(err)
		}
		revoked := time.Now()
		if status, _, _ := do(t, "GET", a.base+"/api/acme/secrets", doomed, ""); status != 401 {
			t.Errorf("GET on A right after revoke = %d, want 401", status)
		}
		waitStatus(t, b.base+"/api/acme/secrets", doomed, 401, 5*time.Second)
		t.Logf("revocation on A took effect on B after %v (bound: --apikey-reload-interval 1s + one query; documented at most 5s)", time.Since(revoked).Round(time.Millisecond))
	})
	t.Run("ConcurrentPutAndDeleteNeverTornOrResurrected", func(t *testing.T) {
		checkHistory(t, []string{a.base, b.base}, key)
	})
	t.Run("BothNodesAuditToOneVerifiableTable", func(t *testing.T) {
		a.stop()
		b.stop()
		out, _, err := cli(t, "audit", "verify", "--database", "--store", "postgres", "--postgres-url", url, "--master-key-file", masterKey)
		if err != nil || !strings.Contains(out, "node node-a") || !strings.Contains(out, "node node-b") {
			t.Fatalf("audit verify --database = %v\n%s", err, out)
		}
		t.Logf("%s", out)
	})
}

// TestMultiNode_KeyIssuedOnAWorksOnBAtOnce: behind a load balancer, a new
// key's first request may land on a node that has not reloaded; it looks the
// key up instead of refusing it, and random keys cannot make it hammer the
// database.
func TestMultiNode_KeyIssuedOnAWorksOnBAtOnce(t *testing.T) {
	url := pgtest.Start(t)
	masterKey := newMasterKey(t)
	// Reloads an hour apart: nothing below can pass by a reload.
	_, aDir := startPostgresNode(t, url, masterKey, "--apikey-reload-interval", "1h")
	b, _ := startPostgresNode(t, url, masterKey, "--apikey-reload-interval", "1h")
	m := regexp.MustCompile(`msg="serving metrics" addr=(\S+)`).FindStringSubmatch(b.stderr.String())
	if m == nil {
		t.Fatalf("node b did not log its metrics address:\n%s", b.stderr.String())
	}
	metricsURL := "http://" + m[1] + "/metrics"
	lookups := func() float64 {
		return metricValue(t, scrape(t, metricsURL), "neostore_store_operation_duration_seconds_count", `operation="api_key_by_hash"`)
	}

	key := createKey(t, aDir, "acme", "Secret.Read")
	if status, _, body := do(t, "GET", b.base+"/api/acme/secrets", key, ""); status != 200 {
		t.Fatalf("first GET on B with a key just issued on A = %d %s, want 200", status, body)
	}
	if status, _, _ := do(t, "GET", b.base+"/api/acme/secrets", key, ""); status != 200 {
		t.Fatalf("second GET on B = %d, want 200", status)
	}
	if got := lookups(); got != 1 {
		t.Errorf("store look-ups on B after two requests with one new key = %v, want 1", got)
	}

	const flood = 300
	start := time.Now()
	for range flood {
		random, _ := apikey.Generate()
		if status, _, _ := do(t, "GET", b.base+"/api/acme/secrets", random, ""); status != 401 {
			t.Fatalf("GET on B with a random well-formed key = %d, want 401", status)
		}
	}
	elapsed := time.Since(start)
	limit := float64(apikey.LookupBurst) + float64(apikey.LookupRate)*elapsed.Seconds() + 1
	got := lookups() - 1
	if got > limit {
		t.Errorf("store look-ups for %d random keys in %v = %v, want at most %.0f", flood, elapsed.Round(time.Millisecond), got, limit)
	}
	t.Logf("%d random well-formed keys in %v: %v store look-ups (bound %.0f)", flood, elapsed.Round(time.Millisecond), got, limit)
}

// waitStatus polls GET url until it answers want, failing after limit.
func waitStatus(t *testing.T, url, key string, want int, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		status, _, _ := do(t, "GET", url, key, "")
		if status == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s = %d after %v, want %d", url, status, limit, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// op is one request of the recorded history.
type op struct {
	kind       string // put, delete, get
	value      string // put: the value written; get: the value read ("" for 404)
	start, end time.Time
	ok         bool // acknowledged (204, or 200/404 for get)
}

// checkHistory runs concurrent PUT, DELETE and GET of one key on every node,
// records the history, and checks every read: a value must have been written
// by a PUT that began before the read ended, with no acknowledged PUT or
// DELETE wholly between that PUT's acknowledgement and the read's start;
// a 404 must be explained by a DELETE that began before the read ended and
// was not wholly followed by an acknowledged PUT before the read began, or
// by no acknowledged PUT before the read at all.
func checkHistory(t *testing.T, bases []string, key string) {
	var (
		mu      sync.Mutex
		history []op
		seq     atomic.Int64
	)
	record := func(o op) { mu.Lock(); history = append(history, o); mu.Unlock() }
	path := "/api/acme/secrets/contended"
	client := &http.Client{Timeout: 10 * time.Second}
	send := func(method, url, body string) (int, string) {
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		req.Header.Set("X-API-KEY", key)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, ""
		}
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = fmt.Fprint(&b, readAll(resp))
		return resp.StatusCode, b.String()
	}
	var wg sync.WaitGroup
	for w := range 6 {
		base := bases[w%len(bases)]
		wg.Go(func() {
			for i := range 40 {
				switch (w + i) % 3 {
				case 0:
					v := fmt.Sprintf("v%d", seq.Add(1))
					o := op{kind: "put", value: v, start: time.Now()}
					status, _ := send("PUT", base+path, `{"value":"`+v+`"}`)
					o.end, o.ok = time.Now(), status == 204
					record(o)
				case 1:
					o := op{kind: "delete", start: time.Now()}
					status, _ := send("DELETE", base+path, "")
					o.end, o.ok = time.Now(), status == 204
					record(o)
				default:
					o := op{kind: "get", start: time.Now()}
					status, body := send("GET", base+path, "")
					o.end, o.ok = time.Now(), status == 200 || status == 404
					if status == 200 {
						o.value = body
					}
					record(o)
				}
			}
		})
	}
	wg.Wait()

	writes := map[string]op{}
	var reads, values, notFound int
	for _, o := range history {
		if o.kind == "put" {
			writes[o.value] = o
		}
	}
	// between reports an acknowledged write or delete wholly inside (after, before).
	between := func(after, before time.Time) bool {
		for _, x := range history {
			if x.kind != "get" && x.ok && x.start.After(after) && x.end.Before(before) {
				return true
			}
		}
		return false
	}
	for _, r := range history {
		if r.kind != "get" {
			continue
		}
		if !r.ok {
			t.Errorf("a read failed: %+v", r)
			continue
		}
		reads++
		if r.value != "" {
			values++
			w, found := writes[r.value]
			switch {
			case !found:
				t.Errorf("read %q, which no PUT wrote (torn or foreign value)", r.value)
			case !w.start.Before(r.end):
				t.Errorf("read %q before its PUT began", r.value)
			case between(w.end, r.start):
				t.Errorf("read %q although a later acknowledged PUT or DELETE finished before the read began (stale or resurrected)", r.value)
			}
			continue
		}
		notFound++
		explained := true
		for _, w := range writes {
			if w.ok && w.end.Before(r.start) {
				explained = false
				break
			}
		}
		for _, d := range history {
			if explained {
				break
			}
			if d.kind == "delete" && d.start.Before(r.end) {
				// The delete may take effect after every PUT that did not
				// wholly follow it.
				resurrected := false
				for _, w := range writes {
					if w.ok && w.start.After(d.end) && w.end.Before(r.start) {
						resurrected = true
					}
				}
				explained = !resurrected
			}
		}
		if !explained {
			t.Errorf("read 404 at %v with no DELETE that could explain it", r.start)
		}
	}
	t.Logf("history: %d operations, %d reads (%d values, %d not found), all consistent", len(history), reads, values, notFound)
	if values == 0 || notFound == 0 {
		t.Logf("note: the history saw no %s; the interleaving was one-sided", map[bool]string{true: "404", false: "value"}[notFound == 0])
	}
}

func readAll(resp *http.Response) string {
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

// TestMigrateStore moves a populated embedded store to PostgreSQL with one
// command and serves the same values, keys and API keys from there.
func TestMigrateStore(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	masterKey := newMasterKey(t)
	srv := startServer(t, dataDir, masterKey)
	key := createKey(t, dataDir, "acme", "Secret.Read", "Secret.Write")
	other := createKey(t, dataDir, "globex", "Secret.Read", "Secret.Write")
	for i := range 25 {
		do(t, "PUT", fmt.Sprintf("%s/api/acme/secrets/k%02d", srv.base, i), key, fmt.Sprintf(`{"value":"acme-%d"}`, i))
		do(t, "PUT", fmt.Sprintf("%s/api/globex/secrets/k%02d", srv.base, i), other, fmt.Sprintf(`{"value":"globex-%d","options":{"expiresOn":"2999-01-01T00:00:00Z"}}`, i))
	}
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}

	url := pgtest.Start(t)
	for run := range 2 { // safe to re-run
		stdout, stderr, err := cli(t, "migrate-store", "--from", "bolt:"+dataDir, "--to", "postgres:"+url)
		if err != nil {
			t.Fatalf("migrate-store run %d: %v\n%s", run+1, err, stderr)
		}
		if !strings.Contains(stdout, "verified: 2 tenants, 50 secrets, 2 API keys identical") {
			t.Errorf("migrate-store run %d output lacks the verification:\n%s", run+1, stdout)
		}
		if strings.Contains(stdout+stderr, url) {
			t.Errorf("migrate-store printed the connection URL")
		}
		t.Logf("migrate-store run %d:\n%s", run+1, stdout)
	}

	node, _ := startPostgresNode(t, url, masterKey)
	for i := range 25 {
		if status, _, body := do(t, "GET", fmt.Sprintf("%s/api/globex/secrets/k%02d", node.base, i), other, ""); status != 200 || body != fmt.Sprintf("globex-%d", i) {
			t.Fatalf("GET from PostgreSQL after migrate-store = %d %q", status, body)
		}
	}
	if status, _, body := do(t, "GET", node.base+"/api/acme/secrets", key, ""); status != 200 || !strings.HasPrefix(body, `["k00","k01",`) {
		t.Errorf("list from PostgreSQL = %d %s", status, body)
	}
}
