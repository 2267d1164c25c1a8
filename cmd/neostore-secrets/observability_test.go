package main

import (
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// startServerWithMetrics starts serve with its metrics on a free port and
// returns the metrics URL, found in the server's log.
func startServerWithMetrics(t *testing.T, dataDir, masterKey string, extra ...string) (*server, string) {
	t.Helper()
	srv := startServer(t, dataDir, masterKey, extra...)
	m := regexp.MustCompile(`msg="serving metrics" addr=(\S+)`).FindStringSubmatch(srv.stderr.String())
	if m == nil {
		t.Fatalf("the server did not log its metrics address:\n%s", srv.stderr.String())
	}
	return srv, "http://" + m[1] + "/metrics"
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics = %d", resp.StatusCode)
	}
	return readAll(resp)
}

// metricValue returns the value of the sample with exactly these labels.
func metricValue(t *testing.T, text, name, labels string) float64 {
	t.Helper()
	prefix := name + "{" + labels + "} "
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return 0
}

func TestMetrics_ScrapeAfterMixedWorkload(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	srv, metricsURL := startServerWithMetrics(t, dataDir, newMasterKey(t))
	key := createKey(t, dataDir, "tenant-canary-7c1", "Secret.Read", "Secret.Write")
	const value = "VALUE-canary-5d2e"
	path := srv.base + "/api/tenant-canary-7c1/secrets/key-canary-9a4"
	for range 5 {
		do(t, "PUT", path, key, `{"value":"`+value+`"}`)
	}
	for range 7 {
		do(t, "GET", path, key, "")
	}
	for range 3 {
		do(t, "GET", path, "nsk_wrong", "")
	}
	do(t, "GET", srv.base+"/api/other-tenant/secrets", key, "")
	do(t, "GET", srv.base+"/api/tenant-canary-7c1/secrets/absent-canary-key", key, "")

	text := scrape(t, metricsURL)
	for _, c := range []struct {
		name, labels string
		want         float64
	}{
		{"neostore_http_requests_total", `method="PUT",route="PUT /api/{tenantId}/secrets/{key}",status="204"`, 5},
		{"neostore_http_requests_total", `method="GET",route="GET /api/{tenantId}/secrets/{key}",status="200"`, 7},
		{"neostore_http_requests_total", `method="GET",route="GET /api/{tenantId}/secrets/{key}",status="401"`, 3},
		{"neostore_http_requests_total", `method="GET",route="GET /api/{tenantId}/secrets/{key}",status="404"`, 1},
		{"neostore_http_requests_total", `method="GET",route="GET /api/{tenantId}/secrets",status="403"`, 1},
		{"neostore_auth_failures_total", `reason="invalid_api_key"`, 3},
		{"neostore_auth_failures_total", `reason="tenant_not_granted"`, 1},
		{"neostore_http_request_duration_seconds_count", `method="GET",route="GET /api/{tenantId}/secrets/{key}"`, 11},
		{"neostore_store_operation_duration_seconds_count", `operation="put_secret"`, 5},
	} {
		if got := metricValue(t, text, c.name, c.labels); got != c.want {
			t.Errorf("%s{%s} = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	for _, name := range []string{"neostore_build_info", "go_goroutines", "process_resident_memory_bytes"} {
		if !strings.Contains(text, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	for _, secret := range []string{"tenant-canary", "key-canary", "absent-canary", "other-tenant", value, key, "nsk_"} {
		if strings.Contains(text, secret) {
			t.Errorf("/metrics contains %q", secret)
		}
	}
	// The metrics listener is not the API listener.
	if status, _, _ := do(t, "GET", srv.base+"/metrics", key, ""); status != 404 {
		t.Errorf("GET /metrics on the API listener = %d, want 404", status)
	}
}

// TestRateLimit_RunawayClientDoesNotStarveOtherTenants runs one client
// flat out against its tenant and checks that it is held to its rate (429
// with Retry-After) while a client of another tenant is served every time.
func TestRateLimit_RunawayClientDoesNotStarveOtherTenants(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	srv, metricsURL := startServerWithMetrics(t, dataDir, newMasterKey(t), "--rate-limit-credential", "200", "--rate-limit-credential-burst", "50")
	noisy := createKey(t, dataDir, "noisy", "Secret.Read", "Secret.Write")
	quiet := createKey(t, dataDir, "quiet", "Secret.Read", "Secret.Write")
	do(t, "PUT", srv.base+"/api/noisy/secrets/k", noisy, `{"value":"v"}`)
	do(t, "PUT", srv.base+"/api/quiet/secrets/k", quiet, `{"value":"v"}`)

	var noisyOK, noisy429, badRetry atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("GET", srv.base+"/api/noisy/secrets/k", nil)
				req.Header.Set("X-API-KEY", noisy)
				resp, err := client.Do(req)
				if err != nil {
					continue
				}
				body := readAll(resp)
				resp.Body.Close()
				switch resp.StatusCode {
				case 200:
					noisyOK.Add(1)
				case 429:
					noisy429.Add(1)
					if resp.Header.Get("Retry-After") == "" || !strings.Contains(body, `"status":429`) {
						badRetry.Add(1)
					}
				}
			}
		})
	}
	start := time.Now()
	quietOK, quietAsked := 0, 0
	for time.Since(start) < 2*time.Second {
		quietAsked++
		if status, _, _ := do(t, "GET", srv.base+"/api/quiet/secrets/k", quiet, ""); status == 200 {
			quietOK++
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	elapsed := time.Since(start).Seconds()

	if quietOK != quietAsked {
		t.Errorf("the quiet tenant got %d of %d requests served, want all", quietOK, quietAsked)
	}
	if limit := 50 + 200*elapsed*1.1; float64(noisyOK.Load()) > limit {
		t.Errorf("the runaway got %d requests through in %.1fs, want at most %.0f", noisyOK.Load(), elapsed, limit)
	}
	if noisy429.Load() == 0 || badRetry.Load() > 0 {
		t.Errorf("runaway: %d answered 429, %d of them without Retry-After or a problem body", noisy429.Load(), badRetry.Load())
	}
	text := scrape(t, metricsURL)
	if got := metricValue(t, text, "neostore_rate_limited_total", `bucket="credential"`); got != float64(noisy429.Load()) {
		t.Errorf("neostore_rate_limited_total = %v, want %d", got, noisy429.Load())
	}
	t.Logf("in %.1fs: runaway %d served, %d refused with 429; quiet tenant %d of %d served", elapsed, noisyOK.Load(), noisy429.Load(), quietOK, quietAsked)
}
