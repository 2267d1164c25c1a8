package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/httpapi"
)

// The attributes of a tenant whose keys are expired, not yet valid,
// expiring soon and open: each window and time, in the key list's order,
// null where unset, and no value anywhere in the body.
func TestAttributes_ListsWindowsAndTimes(t *testing.T) {
	f := newAuditFixture(t)
	t0 := f.clock.Now() // 2025-06-01T12:00:00Z
	f.put(t, "expired", `{"value":"value-expired","options":{"expiresOn":"2025-05-01T00:00:00Z"}}`)
	f.clock.Set(t0.Add(time.Second + 5*time.Nanosecond))
	f.put(t, "future", `{"value":"value-future","options":{"notBefore":"2099-01-01T00:00:00Z"}}`)
	f.put(t, "expiring", `{"value":"value-expiring","options":{"notBefore":"2025-01-01T00:00:00Z","expiresOn":"2025-06-05T00:00:00Z"}}`)
	f.put(t, "Open", `{"value":"value-open"}`)
	// A second put keeps createdOn and moves updatedOn.
	f.clock.Set(t0.Add(time.Hour))
	f.put(t, "expired", `{"value":"value-expired-2","options":{"expiresOn":"2025-05-01T00:00:00Z"}}`)

	resp := f.do(t, request{method: "GET", target: "/api/demo/secret-attributes", header: hdr("X-API-KEY", keyDemoRead)})
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", resp.StatusCode, body)
	}
	want := `[` +
		`{"key":"Open","notBefore":null,"expiresOn":null,"createdOn":"2025-06-01T12:00:01.000000005Z","updatedOn":"2025-06-01T12:00:01.000000005Z"},` +
		`{"key":"expired","notBefore":null,"expiresOn":"2025-05-01T00:00:00Z","createdOn":"2025-06-01T12:00:00Z","updatedOn":"2025-06-01T13:00:00Z"},` +
		`{"key":"expiring","notBefore":"2025-01-01T00:00:00Z","expiresOn":"2025-06-05T00:00:00Z","createdOn":"2025-06-01T12:00:01.000000005Z","updatedOn":"2025-06-01T12:00:01.000000005Z"},` +
		`{"key":"future","notBefore":"2099-01-01T00:00:00Z","expiresOn":null,"createdOn":"2025-06-01T12:00:01.000000005Z","updatedOn":"2025-06-01T12:00:01.000000005Z"}` +
		`]`
	if body != want {
		t.Errorf("body =\n%s\nwant\n%s", body, want)
	}
	if strings.Contains(body, "value-") {
		t.Errorf("the attributes hold a value: %s", body)
	}
	if got := resp.Header.Get("Content-Type"); got != "application/json; charset=utf-8" {
		t.Errorf("Content-Type = %q", got)
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}

	// The list of key names is in the same order.
	resp = f.do(t, request{method: "GET", target: "/api/demo/secrets", header: hdr("X-API-KEY", keyDemoRead)})
	if got := readBody(t, resp); got != `["Open","expired","expiring","future"]` {
		t.Errorf("GET secrets = %s, want the attributes' order", got)
	}

	// A delete and a put start the key anew.
	f.clock.Set(t0.Add(2 * time.Hour))
	if resp := f.do(t, request{method: "DELETE", target: "/api/demo/secrets/Open", header: authRW()}); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %d", resp.StatusCode)
	}
	f.put(t, "Open", `{"value":"again"}`)
	resp = f.do(t, request{method: "GET", target: "/api/demo/secret-attributes", header: authRW()})
	var attrs []struct{ Key, CreatedOn, UpdatedOn string }
	if err := json.Unmarshal([]byte(readBody(t, resp)), &attrs); err != nil {
		t.Fatal(err)
	}
	if attrs[0].Key != "Open" || attrs[0].CreatedOn != "2025-06-01T14:00:00Z" || attrs[0].UpdatedOn != "2025-06-01T14:00:00Z" {
		t.Errorf("after delete and put, Open = %+v, want created and updated 14:00", attrs[0])
	}

	// Each request is audited as secret.attributes with its tenant and no key.
	var ops []string
	for _, l := range f.records(t) {
		if l.Record.Op == neostore.OpSecretAttrs {
			ops = append(ops, l.Record.Tenant+"/"+l.Record.Key+"/"+l.Record.Principal.ID)
			if l.Record.Status != http.StatusOK {
				t.Errorf("record status = %d, want 200", l.Record.Status)
			}
		}
	}
	if strings.Join(ops, " ") != "demo//k2 demo//k1" {
		t.Errorf("secret.attributes records = %v, want two of tenant demo, by k2 then k1", ops)
	}
}

// The attributes need Secret.Read on the tenant, like the key list.
func TestAttributes_Authorization(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name   string
		target string
		header http.Header
		want   int
	}{
		{"NoCredential", "/api/demo/secret-attributes", nil, http.StatusUnauthorized},
		{"OtherTenant", "/api/demo/secret-attributes", hdr("X-API-KEY", keyOtherRW), http.StatusForbidden},
		{"WriteOnly", "/api/demo/secret-attributes", hdr("X-API-KEY", keyDemoWrite), http.StatusForbidden},
		{"AllTenantsToken", "/api/anyone/secret-attributes", hdr("Authorization", "Bearer "+tokenAllTenants), http.StatusOK},
		{"InvalidTenant", "/api/bad.tenant/secret-attributes", hdr("Authorization", "Bearer "+tokenAllTenants), http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := f.do(t, request{method: "GET", target: tc.target, header: tc.header})
			if resp.StatusCode != tc.want {
				t.Errorf("status = %d, want %d; body %s", resp.StatusCode, tc.want, readBody(t, resp))
			}
		})
	}
	if resp := f.do(t, request{method: "POST", target: "/api/demo/secret-attributes", header: authRW()}); resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET" {
		t.Errorf("POST = %d Allow %q, want 405 Allow GET", resp.StatusCode, resp.Header.Get("Allow"))
	}
	if got := readBody(t, f.do(t, request{method: "GET", target: "/api/anyone/secret-attributes", header: hdr("Authorization", "Bearer "+tokenAllTenants)})); got != "[]" {
		t.Errorf("attributes of an empty tenant = %s, want []", got)
	}
}

// GET /api/me names the caller, its tenants and scopes, for any valid
// credential, and is audited as "me".
func TestMe(t *testing.T) {
	f := newAuditFixture(t)
	for _, tc := range []struct {
		name   string
		header http.Header
		want   int
		body   string
	}{
		{"APIKey", hdr("X-API-KEY", keyDemoWrite), http.StatusOK, `{"kind":"apikey","id":"k3","tenants":["demo"],"scopes":["Secret.Write"]}`},
		{"AllTenantsToken", hdr("Authorization", "Bearer "+tokenAllTenants), http.StatusOK, `{"kind":"token","id":"all","sub":"all","tenants":["*"],"scopes":["Secret.Read","Secret.Write"]}`},
		{"NoCredential", nil, http.StatusUnauthorized, ""},
		{"UnknownKey", hdr("X-API-KEY", "nsk_nobody"), http.StatusUnauthorized, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := f.do(t, request{method: "GET", target: "/api/me", header: tc.header})
			body := readBody(t, resp)
			if resp.StatusCode != tc.want || (tc.body != "" && body != tc.body) {
				t.Errorf("GET /api/me = %d %s, want %d %s", resp.StatusCode, body, tc.want, tc.body)
			}
		})
	}
	var got []string
	for _, l := range f.records(t) {
		if l.Record.Op == neostore.OpMe {
			got = append(got, l.Record.Principal.Kind+":"+l.Record.Principal.ID)
		}
	}
	if strings.Join(got, " ") != "apikey:k3 token:all anonymous: anonymous:" {
		t.Errorf("me records = %v, want one per request", got)
	}
}

// The console is mounted under /ui/ when configured, and absent otherwise;
// it never sees /api/ requests.
func TestConsoleMount(t *testing.T) {
	console := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Console", r.URL.Path)
	})
	f := newFixture(t, func(c *httpapi.Config, _ *mapVerifier) { c.Console = console })
	for _, tc := range []struct {
		target string
		status int
		seen   string
	}{
		{"/ui/", 200, "/ui/"},
		{"/ui/app.js", 200, "/ui/app.js"},
		{"/ui", http.StatusFound, ""},
		{"/api/me", http.StatusUnauthorized, ""},
	} {
		resp := f.do(t, request{method: "GET", target: tc.target})
		if resp.StatusCode != tc.status || resp.Header.Get("X-Console") != tc.seen {
			t.Errorf("GET %s = %d, console saw %q; want %d, %q", tc.target, resp.StatusCode, resp.Header.Get("X-Console"), tc.status, tc.seen)
		}
	}
	off := newFixture(t)
	if resp := off.do(t, request{method: "GET", target: "/ui/"}); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /ui/ without a console = %d, want 404", resp.StatusCode)
	}
}

// A rate-limited request to either extension gets the documented 429.
func TestExtensions_RateLimited(t *testing.T) {
	f := newFixture(t, withLimiter(refuseAll{}))
	for _, target := range []string{"/api/demo/secret-attributes", "/api/me"} {
		resp := f.do(t, request{method: "GET", target: target, header: authRW()})
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "2" {
			t.Errorf("GET %s = %d Retry-After %q, want 429 after 2 s", target, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
}
