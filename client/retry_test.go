package client

import (
	"context"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// script is a real HTTP server that answers each request with the next
// of its handlers, and the last one from then on.
type script struct {
	srv   *httptest.Server
	mu    sync.Mutex
	steps []http.HandlerFunc
	n     atomic.Int32 // requests served
	seen  chan *http.Request
}

func newScript(t *testing.T, steps ...http.HandlerFunc) *script {
	t.Helper()
	s := &script{steps: steps, seen: make(chan *http.Request, 100)}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(s.n.Add(1)) - 1
		s.mu.Lock()
		h := s.steps[min(i, len(s.steps)-1)]
		s.mu.Unlock()
		select {
		case s.seen <- r:
		default:
		}
		h(w, r)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func problem(status int, retryAfter string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(status)
		io.WriteString(w, `{"type":"t","title":"`+http.StatusText(status)+`","status":`+strconv.Itoa(status)+`,"traceId":"00-trace-00"}`)
	}
}

func value(v string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, v)
	}
}

func noContent(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }

// hangUp closes the connection without an answer: a connection failure.
func hangUp(w http.ResponseWriter, r *http.Request) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		conn.Close()
	}
}

func newClient(t *testing.T, base string, opts ...Option) *Client {
	t.Helper()
	c, err := New(base, append([]Option{WithAPIKey("nsk_test")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRetry_RetryAfterTwiceThenOK(t *testing.T) {
	s := newScript(t, problem(503, "1"), problem(503, "1"), value("v1"))
	c := newClient(t, s.srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	got, err := c.Get(ctx, "demo", "db-password")
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("Get = %v, want the value", err)
	}
	if string(got) != "v1" {
		t.Errorf("Get = %q, want %q", got, "v1")
	}
	if n := s.n.Load(); n != 3 {
		t.Errorf("server saw %d requests, want 3", n)
	}
	t.Logf("Get succeeded after %v and %d requests", elapsed, s.n.Load())
	if elapsed < 2*time.Second || elapsed > 5*time.Second {
		t.Errorf("Get took %v, want about 2s (two Retry-After: 1)", elapsed)
	}
}

func TestRetry_CancelStopsAtOnce(t *testing.T) {
	s := newScript(t, problem(503, "30"))
	c := newClient(t, s.srv.URL)
	waiting := make(chan time.Duration, 1)
	c.sleep = func(ctx context.Context, d time.Duration) bool {
		waiting <- d
		return sleep(ctx, d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.Get(ctx, "demo", "db-password")
		done <- err
	}()
	select {
	case d := <-waiting: // the first attempt got its 503; the client now waits 30s
		if d != 30*time.Second {
			t.Errorf("the client waits %v, want the Retry-After of 30s", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the client did not wait for a retry")
	}
	cancel()
	start := time.Now()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Get = %v, want context.Canceled", err)
		}
		d := time.Since(start)
		t.Logf("Get returned %v after the cancel", d)
		if d > time.Second {
			t.Errorf("Get returned %v after the cancel, want at once", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Get did not return after the context was cancelled")
	}
	if n := s.n.Load(); n != 1 {
		t.Errorf("server saw %d requests, want 1", n)
	}
}

func TestRetry_RetryAfterBeyondDeadlineFailsNow(t *testing.T) {
	s := newScript(t, problem(429, "30"))
	c := newClient(t, s.srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	_, err := c.Get(ctx, "demo", "k")
	if !errors.Is(err, ErrRateLimited) {
		t.Errorf("Get = %v, want ErrRateLimited", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Get took %v, want it to give up at once: the wait outlasts the deadline", d)
	}
}

func TestRetry_WhatIsRetried(t *testing.T) {
	tests := []struct {
		name     string
		steps    []http.HandlerFunc
		retries  int
		wantReqs int32
		wantErr  error
	}{
		{"connection failures", []http.HandlerFunc{hangUp, hangUp, value("v")}, 4, 3, nil},
		{"429", []http.HandlerFunc{problem(429, ""), value("v")}, 4, 2, nil},
		{"503 without Retry-After", []http.HandlerFunc{problem(503, ""), problem(503, ""), value("v")}, 4, 3, nil},
		{"the count is a bound", []http.HandlerFunc{problem(503, "")}, 2, 3, ErrUnavailable},
		{"no retries", []http.HandlerFunc{problem(503, "")}, 0, 1, ErrUnavailable},
		{"connection failures run out", []http.HandlerFunc{hangUp}, 1, 2, ErrUnavailable},
		{"404 is not", []http.HandlerFunc{problem(404, "")}, 4, 1, ErrNotFound},
		{"401 is not", []http.HandlerFunc{problem(401, "")}, 4, 1, ErrUnauthenticated},
		{"403 is not", []http.HandlerFunc{problem(403, "")}, 4, 1, ErrForbidden},
		{"400 is not", []http.HandlerFunc{problem(400, "")}, 4, 1, ErrInvalid},
		{"500 is not", []http.HandlerFunc{problem(500, "1")}, 4, 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newScript(t, tt.steps...)
			c := newClient(t, s.srv.URL, WithRetries(tt.retries))
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := c.Get(ctx, "demo", "k")
			if n := s.n.Load(); n != tt.wantReqs {
				t.Errorf("server saw %d requests, want %d", n, tt.wantReqs)
			}
			switch {
			case tt.name == "500 is not":
				var e *Error
				if !errors.As(err, &e) || e.Status != 500 {
					t.Errorf("Get = %v, want a 500 *Error", err)
				}
			case tt.wantErr == nil && err != nil:
				t.Errorf("Get = %v, want success", err)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Errorf("Get = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestRetry_PutResendsTheSameBody(t *testing.T) {
	var bodies []string
	var mu sync.Mutex
	record := func(next http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			bodies = append(bodies, string(b))
			mu.Unlock()
			next(w, r)
		}
	}
	s := newScript(t, record(problem(503, "")), record(noContent))
	c := newClient(t, s.srv.URL)
	err := c.Put(context.Background(), "demo", "k", []byte("v1"), Validity{ExpiresOn: time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatalf("Put = %v", err)
	}
	want := `{"value":"v1","options":{"expiresOn":"2099-01-01T00:00:00Z"}}`
	if len(bodies) != 2 || bodies[0] != want || bodies[1] != want {
		t.Errorf("bodies = %q, want twice %s", bodies, want)
	}
}

func TestRetryPolicy_BackoffIsJitteredAndBounded(t *testing.T) {
	p := retryPolicy{max: 100, base: 200 * time.Millisecond, cap: 10 * time.Second, now: time.Now}
	conn := &connError{op: "get", err: errors.New("refused")}
	for n := range 40 {
		bound := min(p.cap, p.base<<min(n, 30)) + time.Millisecond
		seen := map[time.Duration]bool{}
		for range 50 {
			d, ok := p.wait(n, conn)
			if !ok || d <= 0 || d > bound {
				t.Fatalf("wait(%d) = %v, %v; want in (0, %v]", n, d, ok, bound)
			}
			seen[d] = true
		}
		if len(seen) < 10 {
			t.Errorf("wait(%d) gave %d distinct waits in 50, want jitter", n, len(seen))
		}
	}
	if _, ok := p.wait(100, conn); ok {
		t.Error("wait past max retries = true, want false")
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"1", time.Second},
		{" 120 ", 2 * time.Minute},
		{"Thu, 01 Jan 2099 00:00:05 GMT", 5 * time.Second},
		{"Wed, 31 Dec 2098 23:59:00 GMT", 0}, // in the past
		{"-1", 0},
		{"soon", 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestRetry_CertificateErrorsAreNot: a server whose certificate is not
// trusted will not become trusted by asking again.
func TestRetry_CertificateErrorsAreNot(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(value("v")))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	c := newClient(t, srv.URL) // without the test server's CA
	_, err := c.Get(context.Background(), "demo", "k")
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Get = %v, want a certificate error", err)
	}
	if errors.Is(err, ErrUnavailable) || Temporary(err) {
		t.Errorf("a certificate error = %v, want neither ErrUnavailable nor temporary", err)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("the client connected %d times, want 1", n)
	}
	// With the CA it works.
	pemCA := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	c = newClient(t, srv.URL, WithCABundle(pemCA))
	if got, err := c.Get(context.Background(), "demo", "k"); err != nil || string(got) != "v" {
		t.Errorf("Get with WithCABundle = %q, %v", got, err)
	}
}
