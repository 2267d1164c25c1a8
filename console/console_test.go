package console_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets/console"
)

func newConsole(t *testing.T, cfg console.Config) http.Handler {
	t.Helper()
	h, err := console.Handler(cfg)
	if err != nil {
		t.Fatalf("Handler: %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+console.Prefix, h)
	return mux
}

func get(h http.Handler, method, path string) *http.Response {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec.Result()
}

// Every response carries the strict policy and no-store; the page and its
// modules have their media types; unknown files are 404.
func TestHandler_ServesAssetsWithHeaders(t *testing.T) {
	h := newConsole(t, console.Config{Issuer: "https://auth.example.com/", ClientID: "console", Audience: "https://app.neostore.cloud/api/"})
	wantCSP := "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self' https://auth.example.com; frame-ancestors 'none'; form-action 'none'; base-uri 'none'"
	for _, tc := range []struct {
		path, contentType string
		status            int
	}{
		{"/ui/", "text/html; charset=utf-8", 200},
		{"/ui/callback", "text/html; charset=utf-8", 200},
		{"/ui/app.js", "text/javascript; charset=utf-8", 200},
		{"/ui/api.js", "text/javascript; charset=utf-8", 200},
		{"/ui/oauth.js", "text/javascript; charset=utf-8", 200},
		{"/ui/console.css", "text/css; charset=utf-8", 200},
		{"/ui/favicon.svg", "image/svg+xml", 200},
		{"/ui/config.json", "application/json; charset=utf-8", 200},
		{"/ui/nothing.js", "text/plain; charset=utf-8", 404},
		{"/ui/assets/app.js", "text/plain; charset=utf-8", 404},
	} {
		for _, method := range []string{"GET", "HEAD"} {
			resp := get(h, method, tc.path)
			if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != tc.contentType {
				t.Errorf("%s %s = %d %q, want %d %q", method, tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), tc.status, tc.contentType)
			}
			for name, want := range map[string]string{
				"Content-Security-Policy": wantCSP,
				"Referrer-Policy":         "no-referrer",
				"Cache-Control":           "no-store",
				"X-Content-Type-Options":  "nosniff",
				"X-Frame-Options":         "DENY",
			} {
				if got := resp.Header.Get(name); got != want {
					t.Errorf("%s %s: %s = %q, want %q", method, tc.path, name, got, want)
				}
			}
		}
	}
}

// The page has no inline script or style: the policy would block them.
func TestHandler_NoInlineScriptOrStyle(t *testing.T) {
	h := newConsole(t, console.Config{})
	body, _ := io.ReadAll(get(h, "GET", "/ui/").Body)
	page := string(body)
	for _, bad := range []string{"<script>", "<style", " style=", "onclick=", "onload=", "javascript:"} {
		if strings.Contains(page, bad) {
			t.Errorf("index.html contains %q", bad)
		}
	}
	if !strings.Contains(page, `<script type="module" src="app.js"></script>`) {
		t.Errorf("index.html does not load app.js as a module")
	}
}

// config.json tells the page how to sign in; OAuth2 needs both issuer and
// client id, and the idle timeout defaults to 15 minutes.
func TestHandler_Config(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  console.Config
		want map[string]any
	}{
		{"APIKeysOnly", console.Config{Issuer: "https://auth.example.com/"}, map[string]any{
			"issuer": "", "clientId": "", "audience": "", "idleTimeoutMs": float64(15 * 60 * 1000), "revealMs": float64(30000)}},
		{"OAuth", console.Config{Issuer: "https://auth.example.com/", ClientID: "c1", Audience: "aud", IdleTimeout: 2 * time.Second, RevealFor: time.Second}, map[string]any{
			"issuer": "https://auth.example.com/", "clientId": "c1", "audience": "aud", "idleTimeoutMs": float64(2000), "revealMs": float64(1000)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got map[string]any
			if err := json.NewDecoder(get(newConsole(t, tc.cfg), "GET", "/ui/config.json").Body).Decode(&got); err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("config %s = %v, want %v", k, got[k], v)
				}
			}
		})
	}
	if _, err := console.Handler(console.Config{Issuer: "auth.example.com"}); err == nil {
		t.Error("Handler accepted an issuer that is not a URL")
	}
	csp := get(newConsole(t, console.Config{}), "GET", "/ui/").Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "connect-src 'self';") {
		t.Errorf("without an issuer the policy is %q, want connect-src 'self' only", csp)
	}
}
