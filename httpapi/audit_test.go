package httpapi_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/audit"
	"github.com/neostore/neostore-secrets/httpapi"
)

// auditFixture is a fixture whose requests are audited to a real file.
type auditFixture struct {
	*fixture
	path  string
	trail *audit.Trail
}

func newAuditFixture(t *testing.T) *auditFixture {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	sink, err := audit.OpenFile(path, 1<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	trail, err := audit.Open(audit.Config{NodeID: "node-1", Key: bytes.Repeat([]byte{7}, 32), Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { trail.Close() })
	f := newFixture(t, func(c *httpapi.Config, _ *mapVerifier) { c.Auditor = trail })
	return &auditFixture{fixture: f, path: path, trail: trail}
}

// records returns every record written so far.
func (f *auditFixture) records(t *testing.T) []audit.Line {
	t.Helper()
	b, err := os.ReadFile(f.path)
	if err != nil {
		t.Fatal(err)
	}
	var lines []audit.Line
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l, err := audit.ParseLine(sc.Bytes())
		if err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		lines = append(lines, l)
	}
	return lines
}

func traceIDOf(t *testing.T, resp *http.Response, body string) string {
	t.Helper()
	if resp.StatusCode < 400 {
		return ""
	}
	var p struct{ TraceID string }
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatalf("problem body %q: %v", body, err)
	}
	return p.TraceID
}

// TestAudit_OneRecordPerRequest sends one request of every operation and
// outcome class and checks that each produced exactly one record, written
// before the response, with the right fields.
func TestAudit_OneRecordPerRequest(t *testing.T) {
	f := newAuditFixture(t)
	f.put(t, "existing", `{"value":"v"}`)
	rw := hdr("X-API-KEY", keyDemoRW)
	for _, tc := range []struct {
		name      string
		rq        request
		status    int
		op        string
		key       string
		errorCode string
		principal string // kind
	}{
		{"List200", request{method: "GET", target: "/api/demo/secrets", header: rw}, 200, neostore.OpSecretList, "", "", neostore.PrincipalAPIKey},
		{"Get200", request{method: "GET", target: "/api/demo/secrets/existing", header: rw}, 200, neostore.OpSecretGet, "existing", "", neostore.PrincipalAPIKey},
		{"Put204", request{method: "PUT", target: "/api/demo/secrets/new", body: `{"value":"v"}`, header: hdr("X-API-KEY", keyDemoRW, "Content-Type", "application/json")}, 204, neostore.OpSecretPut, "new", "", neostore.PrincipalAPIKey},
		{"Delete204", request{method: "DELETE", target: "/api/demo/secrets/new", header: rw}, 204, neostore.OpSecretDelete, "new", "", neostore.PrincipalAPIKey},
		{"Put400", request{method: "PUT", target: "/api/demo/secrets/k", body: `{"value":""}`, header: hdr("X-API-KEY", keyDemoRW, "Content-Type", "application/json")}, 400, neostore.OpSecretPut, "k", neostore.EINVALID, neostore.PrincipalAPIKey},
		{"Get401", request{method: "GET", target: "/api/demo/secrets/existing"}, 401, neostore.OpSecretGet, "existing", neostore.EUNAUTHENTICATED, "anonymous"},
		{"Get403", request{method: "GET", target: "/api/other/secrets/existing", header: rw}, 403, neostore.OpSecretGet, "existing", neostore.EFORBIDDEN, neostore.PrincipalAPIKey},
		{"Get404", request{method: "GET", target: "/api/demo/secrets/absent", header: rw}, 404, neostore.OpSecretGet, "absent", neostore.ENOTFOUND, neostore.PrincipalAPIKey},
		{"Put413", request{method: "PUT", target: "/api/demo/secrets/big", body: `{"value":"` + strings.Repeat("x", 70<<10) + `"}`, header: hdr("X-API-KEY", keyDemoRW, "Content-Type", "application/json")}, 413, neostore.OpSecretPut, "big", neostore.ETOOLARGE, neostore.PrincipalAPIKey},
		{"Put415", request{method: "PUT", target: "/api/demo/secrets/k", body: `{"value":"v"}`, header: hdr("X-API-KEY", keyDemoRW, "Content-Type", "text/plain"), offSpec: true}, 415, neostore.OpSecretPut, "k", neostore.EUNSUPPORTEDMEDIA, neostore.PrincipalAPIKey},
		{"Get500", request{method: "GET", target: "/api/demo/secrets/existing", header: hdr("X-API-KEY", "broken")}, 500, neostore.OpSecretGet, "existing", neostore.EINTERNAL, "anonymous"},
		{"Get503", request{method: "GET", target: "/api/demo/secrets/existing", header: hdr("X-API-KEY", "unavailable")}, 503, neostore.OpSecretGet, "existing", neostore.EUNAVAILABLE, "anonymous"},
		{"Patch405", request{method: "PATCH", target: "/api/demo/secrets/existing", header: rw}, 405, neostore.OpUnknownRoute, "", "method_not_allowed", "anonymous"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(f.records(t))
			resp := f.do(t, tc.rq)
			body := readBody(t, resp)
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d (%s)", resp.StatusCode, tc.status, body)
			}
			recs := f.records(t)[before:]
			if len(recs) != 1 {
				t.Fatalf("the request produced %d records, want exactly 1", len(recs))
			}
			r := recs[0].Record
			if r.Op != tc.op || r.Status != tc.status || r.ErrorCode != tc.errorCode || r.Principal.Kind != tc.principal || r.Key != tc.key {
				t.Errorf("record = op %q status %d errorCode %q principal %q key %q; want %q %d %q %q %q",
					r.Op, r.Status, r.ErrorCode, r.Principal.Kind, r.Key, tc.op, tc.status, tc.errorCode, tc.principal, tc.key)
			}
			if tc.op != neostore.OpUnknownRoute && r.Tenant == "" {
				t.Errorf("record has no tenant")
			}
			if want := traceIDOf(t, resp, body); want != "" && r.TraceID != want {
				t.Errorf("record traceId = %q, response traceId = %q", r.TraceID, want)
			}
			if r.ClientAddr == "" || r.Time.IsZero() || r.Duration < 0 {
				t.Errorf("record lacks client address, time or duration: %+v", r)
			}
			if tc.principal == neostore.PrincipalAPIKey && r.Principal.ID == "" {
				t.Errorf("record names no principal id")
			}
		})
	}
	if _, err := audit.Verify([]string{f.path}, bytes.Repeat([]byte{7}, 32), nil); err != nil {
		t.Errorf("the trail does not verify: %v", err)
	}
}

// TestAudit_FailClosed checks that a trail that cannot take records turns
// every request into a 503 and that writes change nothing.
func TestAudit_FailClosed(t *testing.T) {
	f := newAuditFixture(t)
	f.put(t, "kept", `{"value":"original"}`)
	f.trail.Close() // the trail now refuses every record

	for _, tc := range []request{
		{method: "PUT", target: "/api/demo/secrets/kept", body: `{"value":"changed"}`, header: hdr("X-API-KEY", keyDemoRW, "Content-Type", "application/json")},
		{method: "PUT", target: "/api/demo/secrets/added", body: `{"value":"new"}`, header: hdr("X-API-KEY", keyDemoRW, "Content-Type", "application/json")},
		{method: "DELETE", target: "/api/demo/secrets/kept", header: hdr("X-API-KEY", keyDemoRW)},
		{method: "GET", target: "/api/demo/secrets/kept", header: hdr("X-API-KEY", keyDemoRW)},
		{method: "GET", target: "/api/demo/secrets/kept"},
	} {
		resp := f.do(t, tc)
		body := readBody(t, resp)
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || strings.Contains(body, "original") {
			t.Errorf("%s %s with the trail down = %d %s (Retry-After %q), want 503 without the value",
				tc.method, tc.target, resp.StatusCode, body, resp.Header.Get("Retry-After"))
		}
	}

	// The same handler over the same store, without auditing, sees no change.
	plain := newFixtureOver(t, f.fixture)
	resp := plain.do(t, request{method: "GET", target: "/api/demo/secrets/kept", header: hdr("X-API-KEY", keyDemoRW)})
	if body := readBody(t, resp); resp.StatusCode != 200 || body != "original" {
		t.Errorf("after refused writes: GET kept = %d %q, want 200 \"original\"", resp.StatusCode, body)
	}
	resp = plain.do(t, request{method: "GET", target: "/api/demo/secrets/added", header: hdr("X-API-KEY", keyDemoRW)})
	if resp.StatusCode != 404 {
		t.Errorf("after a refused PUT: GET added = %d, want 404", resp.StatusCode)
	}
}

// TestAudit_WritesAreJournaledWithTheChange: with the trail's journal on the
// store (the default setup of serve), the record of a PUT or DELETE is
// committed by the store with the change, byte for byte the line in the
// audit file; a read's record is not.
func TestAudit_WritesAreJournaledWithTheChange(t *testing.T) {
	store := openStore(t)
	path := filepath.Join(t.TempDir(), "audit.log")
	sink, err := audit.OpenFile(path, 1<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	trail, err := audit.Open(audit.Config{NodeID: "node-1", Key: bytes.Repeat([]byte{7}, 32), Sink: sink,
		Durability: audit.WriteSync, Journal: store})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { trail.Close() })
	f := &auditFixture{fixture: newFixtureOn(t, store, func(c *httpapi.Config, _ *mapVerifier) { c.Auditor = trail }), path: path, trail: trail}

	f.put(t, "journaled", `{"value":"v"}`)
	if resp := f.do(t, request{method: "GET", target: "/api/demo/secrets/journaled", header: hdr("X-API-KEY", keyDemoRW)}); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET = %d", resp.StatusCode)
	}
	if resp := f.do(t, request{method: "DELETE", target: "/api/demo/secrets/journaled", header: hdr("X-API-KEY", keyDemoRW)}); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE = %d", resp.StatusCode)
	}
	var changes []string
	for _, l := range f.records(t) {
		if l.Record.Op != neostore.OpSecretGet {
			changes = append(changes, string(l.Raw))
		}
	}
	journaled, err := store.JournaledLines(t.Context(), "node-1", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range journaled {
		got = append(got, string(l))
	}
	if len(changes) != 2 || strings.Join(got, "\n") != strings.Join(changes, "\n") {
		t.Errorf("journal holds\n%s\nwant the PUT and DELETE lines of the file\n%s", strings.Join(got, "\n"), strings.Join(changes, "\n"))
	}
}
