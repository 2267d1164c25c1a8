package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const (
	secretValue = "s3cr3t-VALUE-do-not-print"
	apiKey      = "nsk_SECRET-API-KEY-do-not-print"
	bearer      = "eyJ-SECRET-TOKEN-do-not-print"
)

// TestError_NoValueOrCredential provokes every kind of failure with a
// value and a credential in flight, and checks neither is in the error.
func TestError_NoValueOrCredential(t *testing.T) {
	validation := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(400)
		io.WriteString(w, `{"type":"t","title":"One or more validation errors occurred.","status":400,"errors":{"options.expiresOn":["The validity window is invalid."]},"traceId":"00-abc-00"}`)
	}
	html := func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(502)
		io.WriteString(w, "<html>bad gateway</html>")
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	handlers := map[string]http.HandlerFunc{
		"400 fields": validation, "401": problem(401, ""), "403": problem(403, ""),
		"404": problem(404, ""), "413": problem(413, ""), "429": problem(429, "1"),
		"500": problem(500, ""), "502 html": html, "503": problem(503, "1"), "hang up": hangUp,
		"redirect": func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, closed.URL, http.StatusFound) },
	}
	type op struct {
		name string
		call func(*Client) error
	}
	ops := []op{
		{"get", func(c *Client) error { _, err := c.Get(context.Background(), "demo", "k"); return err }},
		{"put", func(c *Client) error {
			return c.Put(context.Background(), "demo", "k", []byte(secretValue), Validity{})
		}},
		{"delete", func(c *Client) error { return c.Delete(context.Background(), "demo", "k") }},
		{"list", func(c *Client) error { _, err := c.List(context.Background(), "demo"); return err }},
	}
	creds := map[string]Option{
		"api key": WithAPIKey(apiKey),
		"token":   WithTokenSource(func(context.Context) (string, error) { return bearer, nil }),
	}
	check := func(t *testing.T, err error) {
		t.Helper()
		if err == nil {
			t.Fatal("no error")
		}
		msg := err.Error() + fmt.Sprintf(" %v %+v %#v", err, err, err)
		for _, s := range []string{secretValue, apiKey, bearer} {
			if strings.Contains(msg, s) {
				t.Errorf("error %q contains %q", msg, s)
			}
		}
	}
	for name, h := range handlers {
		for credName, cred := range creds {
			for _, o := range ops {
				t.Run(name+"/"+credName+"/"+o.name, func(t *testing.T) {
					s := newScript(t, h)
					c, err := New(s.srv.URL, cred, WithRetries(0))
					if err != nil {
						t.Fatal(err)
					}
					check(t, o.call(c))
				})
			}
		}
	}
	t.Run("unreachable", func(t *testing.T) {
		c, _ := New(closed.URL, WithAPIKey(apiKey), WithRetries(0))
		check(t, c.Put(context.Background(), "demo", "k", []byte(secretValue), Validity{}))
	})
	t.Run("timeout", func(t *testing.T) {
		block := make(chan struct{})
		s := newScript(t, func(w http.ResponseWriter, r *http.Request) { <-block })
		defer close(block)
		c, _ := New(s.srv.URL, WithAPIKey(apiKey), WithRetries(0), WithTimeout(50*time.Millisecond))
		err := c.Put(context.Background(), "demo", "k", []byte(secretValue), Validity{})
		check(t, err)
		if !errors.Is(err, ErrUnavailable) || !Temporary(err) {
			t.Errorf("timeout = %v, want a temporary ErrUnavailable", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		s := newScript(t, problem(503, "5"))
		c, _ := New(s.srv.URL, WithAPIKey(apiKey))
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		check(t, c.Put(ctx, "demo", "k", []byte(secretValue), Validity{}))
	})
	t.Run("not UTF-8", func(t *testing.T) {
		c, _ := New("http://127.0.0.1:1", WithAPIKey(apiKey))
		err := c.Put(context.Background(), "demo", "k", []byte(secretValue+"\xff"), Validity{})
		check(t, err)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("Put of invalid UTF-8 = %v, want ErrInvalid", err)
		}
	})
	t.Run("token source fails", func(t *testing.T) {
		s := newScript(t, value("v"))
		c, _ := New(s.srv.URL, WithTokenSource(func(context.Context) (string, error) { return "", errors.New("refresh failed") }))
		_, err := c.Get(context.Background(), "demo", "k")
		check(t, err)
		if n := s.n.Load(); n != 0 {
			t.Errorf("server saw %d requests without a token, want 0", n)
		}
	})
	t.Run("user info in the URL", func(t *testing.T) {
		_, err := New("http://user:"+apiKey+"@127.0.0.1:1", WithRetries(0))
		check(t, err)
	})
}

func TestError_Fields(t *testing.T) {
	s := newScript(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(400)
		io.WriteString(w, `{"type":"t","title":"One or more validation errors occurred.","status":400,"errors":{"key":["The key must be 1 to 127 ASCII letters, digits or hyphens."]},"traceId":"00-4da3-00"}`)
	})
	c := newClient(t, s.srv.URL)
	err := c.Put(context.Background(), "demo", "bad_key", []byte("v"), Validity{})
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Put = %v, want an *Error", err)
	}
	if e.Status != 400 || e.Title != "One or more validation errors occurred." || e.TraceID != "00-4da3-00" || e.Op != "put" {
		t.Errorf("Error = %+v", e)
	}
	if got := e.Errors["key"]; len(got) != 1 || !strings.HasPrefix(got[0], "The key must") {
		t.Errorf("Errors = %v, want the key's message", e.Errors)
	}
	if want := "neostore: put: 400 One or more validation errors occurred. (traceId 00-4da3-00)"; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
}

func TestError_Sentinels(t *testing.T) {
	all := []error{ErrNotFound, ErrUnauthenticated, ErrForbidden, ErrInvalid, ErrRateLimited, ErrUnavailable}
	tests := []struct {
		status    int
		want      error
		temporary bool
	}{
		{400, ErrInvalid, false}, {401, ErrUnauthenticated, false}, {403, ErrForbidden, false},
		{404, ErrNotFound, false}, {413, ErrInvalid, false}, {415, ErrInvalid, false},
		{429, ErrRateLimited, false}, {500, nil, true}, {502, nil, true}, {503, ErrUnavailable, true},
	}
	for _, tt := range tests {
		err := fmt.Errorf("wrapped: %w", &Error{Status: tt.status})
		for _, s := range all {
			if got := errors.Is(err, s); got != (s == tt.want) {
				t.Errorf("errors.Is(%d, %v) = %v, want %v", tt.status, s, got, s == tt.want)
			}
		}
		if got := Temporary(err); got != tt.temporary {
			t.Errorf("Temporary(%d) = %v, want %v", tt.status, got, tt.temporary)
		}
	}
	conn := &connError{op: "get", err: &net.OpError{Op: "dial", Err: errors.New("refused")}}
	if !errors.Is(conn, ErrUnavailable) || !Temporary(conn) {
		t.Error("a connection failure is not a temporary ErrUnavailable")
	}
	cancelled := &canceledError{op: "get", cause: context.Canceled, last: conn}
	if Temporary(cancelled) || !errors.Is(cancelled, context.Canceled) {
		t.Error("a cancelled call is temporary, or not context.Canceled")
	}
}

// TestNew_RedirectsAreNotFollowed: a redirect would carry X-API-KEY to
// whatever host it names.
func TestNew_RedirectsAreNotFollowed(t *testing.T) {
	other := newScript(t, value("v"))
	s := newScript(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.srv.URL+r.URL.Path, http.StatusTemporaryRedirect)
	})
	c := newClient(t, s.srv.URL)
	_, err := c.Get(context.Background(), "demo", "k")
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusTemporaryRedirect {
		t.Errorf("Get = %v, want the 307 as an error", err)
	}
	if n := other.n.Load(); n != 0 {
		t.Errorf("the redirect's target saw %d requests, want 0", n)
	}
}

func TestNew_Headers(t *testing.T) {
	s := newScript(t, value("v"))
	c, err := New(s.srv.URL+"/", WithTokenSource(func(context.Context) (string, error) { return "tok", nil }), WithUserAgent("app/2"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(context.Background(), "demo", "db-password"); err != nil {
		t.Fatal(err)
	}
	r := <-s.seen
	if got := r.Header.Get("Authorization"); got != "Bearer tok" {
		t.Errorf("Authorization = %q", got)
	}
	if got := r.Header.Get("Accept"); got != "text/plain" {
		t.Errorf("Accept = %q, want text/plain", got)
	}
	if got := r.Header.Get("User-Agent"); got != "app/2" {
		t.Errorf("User-Agent = %q", got)
	}
	if r.URL.Path != "/api/demo/secrets/db-password" {
		t.Errorf("path = %q", r.URL.Path)
	}
}

func TestNew_RefusesBadSettings(t *testing.T) {
	tests := map[string][]Option{
		"both credentials":    {WithAPIKey("k"), WithTokenSource(func(context.Context) (string, error) { return "t", nil })},
		"CA bundle not PEM":   {WithCABundle([]byte("nope"))},
		"http client and TLS": {WithHTTPClient(http.DefaultClient), WithCABundle([]byte("x"))},
		"zero timeout":        {WithTimeout(0)},
		"negative retries":    {WithRetries(-1)},
	}
	for name, opts := range tests {
		if _, err := New("http://127.0.0.1:8200", opts...); err == nil {
			t.Errorf("%s: New = nil error", name)
		}
	}
	for _, base := range []string{"", "127.0.0.1:8200", "ftp://h", "http://", "http://h/?q=1"} {
		if _, err := New(base); err == nil {
			t.Errorf("New(%q) = nil error", base)
		}
	}
}
