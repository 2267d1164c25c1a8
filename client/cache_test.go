package client

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a settable clock for the cache's TTL.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newClock() *clock { return &clock{t: time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)} }

// staleReports records OnStale calls.
type staleReports struct {
	mu   sync.Mutex
	errs []error
	keys []string
}

func (s *staleReports) hook(tenant, key string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = append(s.keys, tenant+"/"+key)
	s.errs = append(s.errs, err)
}

func mustGet(t *testing.T, c *Client, key, want string) {
	t.Helper()
	got, err := c.Get(context.Background(), "demo", key)
	if err != nil || string(got) != want {
		t.Fatalf("Get(%s) = %q, %v; want %q", key, got, err, want)
	}
}

func TestCache_ServesFreshValueWithoutAsking(t *testing.T) {
	s := newScript(t, value("v1"), value("v2"))
	clk := newClock()
	c := newClient(t, s.srv.URL, WithClock(clk.now), WithCache(CacheConfig{TTL: time.Minute}))
	mustGet(t, c, "k", "v1")
	clk.advance(59 * time.Second)
	mustGet(t, c, "k", "v1")
	if n := s.n.Load(); n != 1 {
		t.Errorf("server saw %d requests within the TTL, want 1", n)
	}
	clk.advance(time.Second)
	mustGet(t, c, "k", "v2")
	if n := s.n.Load(); n != 2 {
		t.Errorf("server saw %d requests after the TTL, want 2", n)
	}
}

func TestCache_StaleIfErrorWhileServerIsDown(t *testing.T) {
	s := newScript(t, value("v1"))
	clk := newClock()
	var reports staleReports
	c := newClient(t, s.srv.URL, WithRetries(0), WithClock(clk.now),
		WithCache(CacheConfig{TTL: time.Minute, OnStale: reports.hook}))
	mustGet(t, c, "k", "v1")
	s.srv.Close() // the server is down: connections are refused
	clk.advance(2 * time.Minute)
	mustGet(t, c, "k", "v1")
	mustGet(t, c, "k", "v1")
	if len(reports.errs) != 2 {
		t.Fatalf("OnStale called %d times, want 2 (once per stale answer)", len(reports.errs))
	}
	if reports.keys[0] != "demo/k" {
		t.Errorf("OnStale got %s, want demo/k", reports.keys[0])
	}
	if err := reports.errs[0]; !errors.Is(err, ErrUnavailable) || !Temporary(err) {
		t.Errorf("OnStale error = %v, want a temporary ErrUnavailable", err)
	}
	// A key never fetched has nothing to fall back on.
	if _, err := c.Get(context.Background(), "demo", "other"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Get(other) = %v, want ErrUnavailable", err)
	}
}

func TestCache_StaleIfErrorOn5xx(t *testing.T) {
	for _, status := range []int{500, 502, 503} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			s := newScript(t, value("v1"), problem(status, ""))
			clk := newClock()
			var reports staleReports
			c := newClient(t, s.srv.URL, WithRetries(0), WithClock(clk.now),
				WithCache(CacheConfig{TTL: time.Minute, OnStale: reports.hook}))
			mustGet(t, c, "k", "v1")
			clk.advance(time.Minute)
			mustGet(t, c, "k", "v1")
			var e *Error
			if len(reports.errs) != 1 || !errors.As(reports.errs[0], &e) || e.Status != status {
				t.Errorf("OnStale errors = %v, want one %d", reports.errs, status)
			}
		})
	}
}

func TestCache_RefusalsDropTheValue(t *testing.T) {
	for _, status := range []int{404, 401, 403} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			s := newScript(t, value("v1"), problem(status, ""), problem(503, ""))
			clk := newClock()
			var reports staleReports
			c := newClient(t, s.srv.URL, WithRetries(0), WithClock(clk.now),
				WithCache(CacheConfig{TTL: time.Minute, OnStale: reports.hook}))
			mustGet(t, c, "k", "v1")
			clk.advance(time.Minute)
			if _, err := c.Get(context.Background(), "demo", "k"); err == nil {
				t.Fatalf("Get after a %d = nil error, want the refusal", status)
			}
			// The value is gone: a later outage has nothing stale to serve.
			if v, err := c.Get(context.Background(), "demo", "k"); err == nil {
				t.Errorf("Get during an outage after a %d = %q, want an error", status, v)
			}
			if len(reports.errs) != 0 {
				t.Errorf("OnStale called %d times, want 0", len(reports.errs))
			}
		})
	}
}

func TestCache_PutAndDeleteDropTheValue(t *testing.T) {
	var gets atomic.Int32
	s := newScript(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			noContent(w, r)
			return
		}
		value("v"+string(rune('0'+gets.Add(1))))(w, r)
	})
	c := newClient(t, s.srv.URL, WithCache(CacheConfig{TTL: time.Hour}))
	mustGet(t, c, "k", "v1")
	if err := c.Put(context.Background(), "demo", "k", []byte("new"), Validity{}); err != nil {
		t.Fatal(err)
	}
	mustGet(t, c, "k", "v2")
	if err := c.Delete(context.Background(), "demo", "k"); err != nil {
		t.Fatal(err)
	}
	mustGet(t, c, "k", "v3")
}

func TestCache_BoundedLeastRecentlyUsedFirst(t *testing.T) {
	s := newScript(t, func(w http.ResponseWriter, r *http.Request) { value(r.URL.Path)(w, r) })
	c := newClient(t, s.srv.URL, WithCache(CacheConfig{TTL: time.Hour, MaxEntries: 2}))
	mustGet(t, c, "a", "/api/demo/secrets/a")
	mustGet(t, c, "b", "/api/demo/secrets/b")
	mustGet(t, c, "a", "/api/demo/secrets/a") // a is now the most recent
	mustGet(t, c, "c", "/api/demo/secrets/c") // evicts b
	if n := s.n.Load(); n != 3 {
		t.Fatalf("server saw %d requests, want 3", n)
	}
	mustGet(t, c, "a", "/api/demo/secrets/a")
	mustGet(t, c, "c", "/api/demo/secrets/c")
	if n := s.n.Load(); n != 3 {
		t.Errorf("a and c were asked again (%d requests), want them cached", n)
	}
	mustGet(t, c, "b", "/api/demo/secrets/b")
	if n := s.n.Load(); n != 4 {
		t.Errorf("b was not asked again (%d requests), want it evicted", n)
	}
}

func TestCache_ReturnsTheCallersOwnCopy(t *testing.T) {
	s := newScript(t, value("v1"))
	c := newClient(t, s.srv.URL, WithCache(CacheConfig{TTL: time.Hour}))
	got, _ := c.Get(context.Background(), "demo", "k")
	clear(got) // a caller wiping its copy must not wipe the cache's
	mustGet(t, c, "k", "v1")
}

func TestCache_ConcurrentUse(t *testing.T) {
	s := newScript(t, func(w http.ResponseWriter, r *http.Request) { value(r.URL.Path)(w, r) })
	clk := newClock()
	c := newClient(t, s.srv.URL, WithClock(clk.now), WithCache(CacheConfig{TTL: time.Second, MaxEntries: 3}))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				key := string(rune('a' + (i+j)%5))
				got, err := c.Get(context.Background(), "demo", key)
				if err != nil || string(got) != "/api/demo/secrets/"+key {
					t.Errorf("Get(%s) = %q, %v", key, got, err)
					return
				}
				if j%10 == 0 {
					clk.advance(time.Second)
					c.Delete(context.Background(), "demo", key)
				}
			}
		})
	}
	wg.Wait()
}

// TestCache_StaleIfErrorWhenTheServerHangs: a server that accepts but never
// answers ends the caller's deadline; that is an outage too.
func TestCache_StaleIfErrorWhenTheServerHangs(t *testing.T) {
	hang := make(chan struct{})
	s := newScript(t, value("v1"), func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	})
	defer close(hang)
	clk := newClock()
	var reports staleReports
	c := newClient(t, s.srv.URL, WithClock(clk.now), WithCache(CacheConfig{TTL: time.Minute, OnStale: reports.hook}))
	mustGet(t, c, "k", "v1")
	clk.advance(time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	got, err := c.Get(ctx, "demo", "k")
	if err != nil || string(got) != "v1" {
		t.Fatalf("Get while the server hangs = %q, %v; want the stale v1", got, err)
	}
	if len(reports.errs) != 1 || !errors.Is(reports.errs[0], context.DeadlineExceeded) {
		t.Errorf("OnStale errors = %v, want one deadline exceeded", reports.errs)
	}
}

// TestCache_CancelKeepsTheValue: a caller giving up says nothing about the
// secret, so the value stays for the next caller.
func TestCache_CancelKeepsTheValue(t *testing.T) {
	s := newScript(t, value("v1"), problem(503, ""))
	clk := newClock()
	c := newClient(t, s.srv.URL, WithRetries(0), WithClock(clk.now), WithCache(CacheConfig{TTL: time.Minute}))
	mustGet(t, c, "k", "v1")
	clk.advance(time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Get(ctx, "demo", "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("Get with a cancelled context = %v, want context.Canceled", err)
	}
	mustGet(t, c, "k", "v1") // the 503 now: the stale value is still there
}

// TestCache_ConcurrentMissesAskOnce: callers that miss the same key at once
// share one request instead of stampeding the server when a TTL runs out.
func TestCache_ConcurrentMissesAskOnce(t *testing.T) {
	release := make(chan struct{})
	s := newScript(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		value("v1")(w, r)
	})
	c := newClient(t, s.srv.URL, WithCache(CacheConfig{TTL: time.Hour}))
	const callers = 10
	var started, done sync.WaitGroup
	started.Add(callers)
	results := make(chan string, callers)
	for range callers {
		done.Go(func() {
			started.Done()
			v, err := c.Get(context.Background(), "demo", "k")
			if err != nil {
				t.Errorf("Get = %v", err)
			}
			results <- string(v)
		})
	}
	started.Wait()
	select {
	case <-s.seen:
	case <-time.After(10 * time.Second):
		t.Fatal("no request reached the server")
	}
	// Give the other callers every chance to send their own request.
	for range 100 {
		runtime.Gosched()
	}
	close(release)
	done.Wait()
	close(results)
	for v := range results {
		if v != "v1" {
			t.Errorf("a caller got %q, want v1", v)
		}
	}
	if n := s.n.Load(); n != 1 {
		t.Errorf("server saw %d requests for one key, want 1", n)
	}
}

// TestCache_ALeaderGivingUpDoesNotFailTheOthers: the caller whose request
// the others wait for cancels; they ask for themselves.
func TestCache_ALeaderGivingUpDoesNotFailTheOthers(t *testing.T) {
	s := newScript(t, func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // the leader's request hangs until it gives up
	}, value("v1"))
	c := newClient(t, s.srv.URL, WithCache(CacheConfig{TTL: time.Hour}))
	ctx, cancel := context.WithCancel(context.Background())
	leader := make(chan error, 1)
	go func() { _, err := c.Get(ctx, "demo", "k"); leader <- err }()
	<-s.seen
	follower := make(chan string, 1)
	go func() {
		v, err := c.Get(context.Background(), "demo", "k")
		if err != nil {
			t.Errorf("follower Get = %v", err)
		}
		follower <- string(v)
	}()
	cancel()
	if err := <-leader; !errors.Is(err, context.Canceled) {
		t.Errorf("leader Get = %v, want context.Canceled", err)
	}
	select {
	case v := <-follower:
		if v != "v1" {
			t.Errorf("follower got %q, want v1", v)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the follower did not return")
	}
}
