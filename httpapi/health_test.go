package httpapi_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/neostore/neostore-secrets/httpapi"
)

func withReadiness(checks map[string]httpapi.ReadinessCheck) fixtureOption {
	return func(c *httpapi.Config, _ *mapVerifier) { c.Readiness = checks }
}

func TestHealthz(t *testing.T) {
	f := newFixture(t)
	resp := f.do(t, request{method: "GET", target: "/healthz"})
	if body := readBody(t, resp); resp.StatusCode != 200 || body != `{"status":"alive"}` {
		t.Errorf("GET /healthz = %d %s, want 200 alive", resp.StatusCode, body)
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", resp.Header.Get("Cache-Control"))
	}
	if resp := f.do(t, request{method: "POST", target: "/healthz"}); resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET" {
		t.Errorf("POST /healthz = %d (Allow %q), want 405 GET", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

func TestReadyz(t *testing.T) {
	var storeErr error
	f := newFixture(t, withReadiness(map[string]httpapi.ReadinessCheck{
		"store":     func(context.Context) error { return storeErr },
		"masterKey": func(context.Context) error { return nil },
	}))
	resp := f.do(t, request{method: "GET", target: "/readyz"})
	if body := readBody(t, resp); resp.StatusCode != 200 || body != `{"status":"ready","checks":{"masterKey":"ok","store":"ok"}}` {
		t.Errorf("ready: GET /readyz = %d %s", resp.StatusCode, body)
	}

	storeErr = errors.New("dial tcp 10.0.0.1:5432: connection refused (password=hunter2)")
	resp = f.do(t, request{method: "GET", target: "/readyz"})
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusServiceUnavailable || body != `{"status":"not ready","checks":{"masterKey":"ok","store":"failing"}}` {
		t.Errorf("store down: GET /readyz = %d %s, want 503 naming the store", resp.StatusCode, body)
	}
	if !strings.Contains(f.logs.String(), "readiness check failing") {
		t.Errorf("the failing check was not logged")
	}

	t.Run("HungCheckIsBounded", func(t *testing.T) {
		f := newFixture(t, withReadiness(map[string]httpapi.ReadinessCheck{
			"store": func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() },
		}))
		if resp := f.do(t, request{method: "GET", target: "/readyz"}); resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("hung check: status = %d, want 503", resp.StatusCode)
		}
	})
}
