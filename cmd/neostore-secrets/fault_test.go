package main

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets/pgtest"
)

// TestFault_DatabaseStoppedMidLoad stops PostgreSQL under a write load, checks
// that the node answers 503 problem details with Retry-After within a bound
// and reports not ready, restarts the database, and checks that the node
// recovers without a restart and that every acknowledged write is intact.
func TestFault_DatabaseStoppedMidLoad(t *testing.T) {
	db := pgtest.StartServer(t)
	url := db.NewDatabase(t)
	node, dataDir := startPostgresNode(t, url, newMasterKey(t),
		"--postgres-connect-timeout", "1s", "--postgres-statement-timeout", "1s")
	key := createKey(t, dataDir, "acme", "Secret.Read", "Secret.Write")

	const bound = 5 * time.Second // connect + statement timeout, with margin
	var (
		mu        sync.Mutex
		acked     = map[string]string{} // key -> value of acknowledged PUTs
		n503      atomic.Int64
		nOther    atomic.Int64
		slowest   atomic.Int64
		badBodies atomic.Int64
		seq       atomic.Int64
	)
	stop := make(chan struct{})
	client := &http.Client{Timeout: 30 * time.Second}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := seq.Add(1)
				name, value := fmt.Sprintf("k-%d", i), fmt.Sprintf("v-%d", i)
				req, _ := http.NewRequest("PUT", node.base+"/api/acme/secrets/"+name, strings.NewReader(`{"value":"`+value+`"}`))
				req.Header.Set("X-API-KEY", key)
				req.Header.Set("Content-Type", "application/json")
				start := time.Now()
				resp, err := client.Do(req)
				took := time.Since(start)
				if int64(took) > slowest.Load() {
					slowest.Store(int64(took))
				}
				if err != nil {
					nOther.Add(1)
					continue
				}
				body := readAll(resp)
				resp.Body.Close()
				switch resp.StatusCode {
				case 204:
					mu.Lock()
					acked[name] = value
					mu.Unlock()
				case 503:
					n503.Add(1)
					if resp.Header.Get("Retry-After") == "" || !strings.Contains(body, `"status":503`) ||
						resp.Header.Get("Content-Type") != "application/problem+json; charset=utf-8" || strings.Contains(body, "pgx") || strings.Contains(body, "dial") {
						badBodies.Add(1)
					}
				default:
					nOther.Add(1)
				}
			}
		})
	}
	loadFor := func(d time.Duration) { time.Sleep(d) }

	loadStart := time.Now()
	loadFor(500 * time.Millisecond)
	db.Stop(t)
	stopped := time.Now()
	loadFor(2 * time.Second)
	if status, _, body := do(t, "GET", node.base+"/readyz", "", ""); status != 503 || !strings.Contains(body, `"store":"failing"`) {
		t.Errorf("/readyz with the database stopped = %d %s, want 503 naming the store", status, body)
	}
	start := time.Now()
	if status, hdr, _ := do(t, "GET", node.base+"/api/acme/secrets/k-1", key, ""); status != 503 || hdr.Get("Retry-After") == "" {
		t.Errorf("GET with the database stopped = %d (Retry-After %q), want 503 with Retry-After", status, hdr.Get("Retry-After"))
	} else if took := time.Since(start); took > bound {
		t.Errorf("GET with the database stopped took %v, want under %v", took, bound)
	}

	db.Start(t)
	restarted := time.Now()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if status, _, _ := do(t, "GET", node.base+"/readyz", "", ""); status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node did not become ready within 30s of the database's return")
		}
		time.Sleep(100 * time.Millisecond)
	}
	recovered := time.Since(restarted)
	loadFor(500 * time.Millisecond)
	close(stop)
	wg.Wait()

	if n503.Load() == 0 {
		t.Errorf("no request was answered 503 while the database was down (the load did not reach the outage)")
	}
	if badBodies.Load() > 0 {
		t.Errorf("%d 503 responses lacked Retry-After or a problem body, or leaked detail", badBodies.Load())
	}
	if nOther.Load() > 0 {
		t.Errorf("%d requests got neither 204 nor 503 (500s, hangs or connection errors)", nOther.Load())
	}
	if s := time.Duration(slowest.Load()); s > bound {
		t.Errorf("the slowest request took %v, want under %v", s, bound)
	}
	lost := 0
	for name, value := range acked {
		if status, _, body := do(t, "GET", node.base+"/api/acme/secrets/"+name, key, ""); status != 200 || body != value {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged writes are missing or wrong after recovery", lost, len(acked))
	}
	t.Logf("database stopped %v after load start; %d PUTs acknowledged, %d answered 503, 0 other; slowest request %v; ready again %v after the database restarted; %d acknowledged writes verified, %d lost",
		stopped.Sub(loadStart).Round(time.Millisecond), len(acked), n503.Load(), time.Duration(slowest.Load()).Round(time.Millisecond), recovered.Round(time.Millisecond), len(acked), lost)
}
