package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets/bolt"
	"github.com/neostore/neostore-secrets/httpapi"
)

// loadJSON decodes a JSON document into generic values.
func loadJSON(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return doc
}

// contractDocuments returns the four one-operation OpenAPI documents of the
// contract, testdata/secret-api.md (a verbatim copy of the spec).
func contractDocuments(t *testing.T) []map[string]any {
	t.Helper()
	md, err := os.ReadFile("testdata/secret-api.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```json\n(.*?)\n```").FindAllSubmatch(md, -1)
	if len(blocks) != 4 {
		t.Fatalf("the contract has %d JSON documents, want 4", len(blocks))
	}
	var docs []map[string]any
	for _, b := range blocks {
		docs = append(docs, loadJSON(t, b[1]))
	}
	return docs
}

// contained reports where want is not part of got: every object member of
// want must be in got with a contained value, arrays must match element by
// element, scalars must be equal. got may add members anywhere. The
// content of an error response (4xx, 5xx) is the one deliberate change:
// the contract's text/plain, application/json and text/json become the
// application/problem+json the server really sends.
func contained(want, got any, at string) []string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{at + ": not an object"}
		}
		if isErrorContent(at) {
			if _, ok := g["application/problem+json"]; !ok || len(g) != 1 {
				return []string{at + ": want only application/problem+json"}
			}
			return nil
		}
		var diffs []string
		for k, wv := range w {
			gv, ok := g[k]
			if !ok {
				diffs = append(diffs, at+"/"+k+": missing")
				continue
			}
			diffs = append(diffs, contained(wv, gv, at+"/"+k)...)
		}
		return diffs
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return []string{fmt.Sprintf("%s: %v, want %v", at, got, want)}
		}
		var diffs []string
		for i := range w {
			diffs = append(diffs, contained(w[i], g[i], fmt.Sprintf("%s/%d", at, i))...)
		}
		return diffs
	default:
		if !reflect.DeepEqual(want, got) {
			return []string{fmt.Sprintf("%s: %v, want %v", at, got, want)}
		}
		return nil
	}
}

var errorContent = regexp.MustCompile(`^/paths/[^/]+/[a-z]+/responses/[45][0-9][0-9]/content$`)

func isErrorContent(at string) bool { return errorContent.MatchString(at) }

// TestOpenAPI_KeepsTheContract checks that the served document contains each
// of the contract's four documents: the same operations, parameters,
// descriptions, schemas, security and success bodies. Generated clients
// built from either agree on the wire.
func TestOpenAPI_KeepsTheContract(t *testing.T) {
	served, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	doc := loadJSON(t, served)
	for i, c := range contractDocuments(t) {
		// Path names contain slashes: compare each operation on its own.
		paths := c["paths"].(map[string]any)
		delete(c, "paths")
		for _, d := range contained(c, doc, "") {
			t.Errorf("contract document %d: %s", i+1, d)
		}
		for p, ops := range paths {
			got, ok := doc["paths"].(map[string]any)[p]
			if !ok {
				t.Errorf("path %s missing", p)
				continue
			}
			for _, d := range contained(ops, got, "/paths/"+strings.ReplaceAll(p, "/", "~1")) {
				t.Errorf("%s", d)
			}
		}
	}
}

// TestOpenAPI_KeepsTheContract_NoticesAChange proves the comparison above can
// fail: a renamed parameter, a changed schema and a dropped media type of a
// success response each differ.
func TestOpenAPI_KeepsTheContract_NoticesAChange(t *testing.T) {
	served, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	c := contractDocuments(t)[2] // PUT
	changes := map[string]func(doc map[string]any){
		"RenamedParameter": func(doc map[string]any) {
			op(doc, "/api/{tenantId}/secrets/{key}", "put")["parameters"].([]any)[0].(map[string]any)["name"] = "name"
		},
		"ValueNoLongerAString": func(doc map[string]any) {
			schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
			schemas["SetRequest"].(map[string]any)["properties"].(map[string]any)["value"].(map[string]any)["type"] = "object"
		},
		"TextJSONBodyDropped": func(doc map[string]any) {
			delete(op(doc, "/api/{tenantId}/secrets/{key}", "put")["requestBody"].(map[string]any)["content"].(map[string]any), "text/json")
		},
	}
	for name, change := range changes {
		t.Run(name, func(t *testing.T) {
			doc := loadJSON(t, served)
			change(doc)
			diffs := contained(c["components"], doc["components"], "/components")
			diffs = append(diffs, contained(c["paths"].(map[string]any)["/api/{tenantId}/secrets/{key}"],
				doc["paths"].(map[string]any)["/api/{tenantId}/secrets/{key}"], "/paths/x")...)
			if len(diffs) == 0 {
				t.Errorf("no difference found")
			}
		})
	}
}

func op(doc map[string]any, path, method string) map[string]any {
	return doc["paths"].(map[string]any)[path].(map[string]any)[method].(map[string]any)
}

// TestOpenAPI_ForGeneratedClients checks what client generators build on:
// an operationId per operation, a required PUT body, and every error answer
// the server gives documented as application/problem+json.
func TestOpenAPI_ForGeneratedClients(t *testing.T) {
	served, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	doc := loadJSON(t, served)
	tests := []struct {
		path, method, id string
		errors           []string
	}{
		{"/api/{tenantId}/secrets", "get", "listSecretKeys", []string{"400", "401", "403", "429", "500", "503"}},
		{"/api/{tenantId}/secrets/{key}", "get", "getSecret", []string{"400", "401", "403", "404", "429", "500", "503"}},
		{"/api/{tenantId}/secrets/{key}", "put", "putSecret", []string{"400", "401", "403", "413", "415", "429", "500", "503"}},
		{"/api/{tenantId}/secrets/{key}", "delete", "deleteSecret", []string{"400", "401", "403", "429", "500", "503"}},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			o := op(doc, tt.path, tt.method)
			if got := o["operationId"]; got != tt.id {
				t.Errorf("operationId = %v, want %s", got, tt.id)
			}
			if rb, ok := o["requestBody"].(map[string]any); ok && rb["required"] != true {
				t.Errorf("requestBody.required = %v, want true", rb["required"])
			}
			if tt.method == "put" && o["requestBody"] == nil {
				t.Errorf("no requestBody")
			}
			responses := o["responses"].(map[string]any)
			for _, status := range tt.errors {
				r, ok := responses[status].(map[string]any)
				if !ok {
					t.Errorf("%s not documented", status)
					continue
				}
				if status == "500" {
					continue // the contract's 500 has no content
				}
				if _, ok := r["content"].(map[string]any)["application/problem+json"]; !ok {
					t.Errorf("%s: no application/problem+json content", status)
				}
			}
		})
	}
	ids := map[any]bool{}
	for p, ops := range doc["paths"].(map[string]any) {
		for m, o := range ops.(map[string]any) {
			id := o.(map[string]any)["operationId"]
			if id == nil || ids[id] {
				t.Errorf("%s %s: operationId %v missing or not unique", m, p, id)
			}
			ids[id] = true
		}
	}
}

// refuseAll is a Limiter that refuses every request for 1.5 s.
type refuseAll struct{}

func (refuseAll) Allow(_, _ string) (bool, string, time.Duration) {
	return false, "credential", 1500 * time.Millisecond
}

func withLimiter(l httpapi.Limiter) fixtureOption {
	return func(c *httpapi.Config, _ *mapVerifier) { c.Limiter = l }
}

// TestContract_EveryAnswerIsDocumented provokes each status the server
// answers for each operation; the contract recorder then validates every
// one of these exchanges (status, headers, body) against openapi.json.
func TestContract_EveryAnswerIsDocumented(t *testing.T) {
	f := newFixture(t)
	limited := newFixture(t, withLimiter(refuseAll{}))
	f.put(t, "db-password", `{"value":"s3cr3t"}`)
	json := func(kv ...string) http.Header {
		return authRW(append([]string{"Content-Type", "application/json"}, kv...)...)
	}
	body := `{"value":"x"}`
	bearerAll := hdr("Authorization", "Bearer "+tokenAllTenants) // only a token for every tenant gets past 403 to a bad tenant id
	big := `{"value":"` + strings.Repeat("x", 64<<10+1) + `"}`

	type answer struct {
		status int
		rq     request
	}
	ops := map[string][]answer{
		"listSecretKeys": {
			{200, request{method: "GET", target: "/api/demo/secrets", header: authRW()}},
			{400, request{method: "GET", target: "/api/de.mo/secrets", header: bearerAll}},
			{401, request{method: "GET", target: "/api/demo/secrets"}},
			{403, request{method: "GET", target: "/api/other/secrets", header: authRW()}},
			{500, request{method: "GET", target: "/api/demo/secrets", header: hdr("X-API-KEY", "broken")}},
			{503, request{method: "GET", target: "/api/demo/secrets", header: hdr("X-API-KEY", "unavailable")}},
		},
		"getSecret": {
			{200, request{method: "GET", target: "/api/demo/secrets/db-password", header: authRW()}},
			{400, request{method: "GET", target: "/api/de.mo/secrets/db-password", header: bearerAll}},
			{401, request{method: "GET", target: "/api/demo/secrets/db-password"}},
			{403, request{method: "GET", target: "/api/other/secrets/db-password", header: authRW()}},
			{404, request{method: "GET", target: "/api/demo/secrets/nothing-here", header: authRW()}},
			{500, request{method: "GET", target: "/api/demo/secrets/db-password", header: hdr("X-API-KEY", "broken")}},
			{503, request{method: "GET", target: "/api/demo/secrets/db-password", header: hdr("X-API-KEY", "unavailable")}},
		},
		"putSecret": {
			{204, request{method: "PUT", target: "/api/demo/secrets/other-password", body: body, header: json()}},
			{400, request{method: "PUT", target: "/api/demo/secrets/db.password", body: body, header: json()}},
			{401, request{method: "PUT", target: "/api/demo/secrets/db-password", body: body, header: hdr("Content-Type", "application/json")}},
			{403, request{method: "PUT", target: "/api/demo/secrets/db-password", body: body, header: hdr("X-API-KEY", keyDemoRead, "Content-Type", "application/json")}},
			{413, request{method: "PUT", target: "/api/demo/secrets/db-password", body: big, header: json()}},
			{415, request{method: "PUT", target: "/api/demo/secrets/db-password", body: body, header: authRW("Content-Type", "text/plain")}},
			{500, request{method: "PUT", target: "/api/demo/secrets/db-password", body: body, header: hdr("X-API-KEY", "broken", "Content-Type", "application/json")}},
			{503, request{method: "PUT", target: "/api/demo/secrets/db-password", body: body, header: hdr("X-API-KEY", "unavailable", "Content-Type", "application/json")}},
		},
		"deleteSecret": {
			{204, request{method: "DELETE", target: "/api/demo/secrets/other-password", header: authRW()}},
			{400, request{method: "DELETE", target: "/api/demo/secrets/db.password", header: authRW()}},
			{401, request{method: "DELETE", target: "/api/demo/secrets/db-password"}},
			{403, request{method: "DELETE", target: "/api/demo/secrets/db-password", header: hdr("X-API-KEY", keyDemoRead)}},
			{500, request{method: "DELETE", target: "/api/demo/secrets/db-password", header: hdr("X-API-KEY", "broken")}},
			{503, request{method: "DELETE", target: "/api/demo/secrets/db-password", header: hdr("X-API-KEY", "unavailable")}},
		},
	}
	for id, answers := range ops {
		t.Run(id, func(t *testing.T) {
			for _, a := range answers {
				resp := f.do(t, a.rq)
				if resp.StatusCode != a.status {
					t.Errorf("%s %s = %d, want %d; body %s", a.rq.method, a.rq.target, resp.StatusCode, a.status, readBody(t, resp))
				}
			}
			// The same first request against a limiter that refuses it.
			rq := answers[0].rq
			resp := limited.do(t, rq)
			if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "2" {
				t.Errorf("%s %s with the limiter refusing = %d (Retry-After %q), want 429 with Retry-After 2",
					rq.method, rq.target, resp.StatusCode, resp.Header.Get("Retry-After"))
			}
			if err := validateExchange(exchange{rq: rq, status: resp.StatusCode, header: resp.Header, body: []byte(readBody(t, resp))}); err != nil {
				t.Errorf("429 not documented: %v", err)
			}
		})
	}
	t.Run("putSecretOverTheQuota", func(t *testing.T) {
		store, err := bolt.Open(filepath.Join(t.TempDir(), "neostore.db"), bolt.Options{MaxKeysPerTenant: 1})
		if err != nil {
			t.Fatalf("bolt.Open: %v", err)
		}
		t.Cleanup(func() { _ = store.Close() })
		full := newFixtureOn(t, store)
		full.put(t, "db-password", body)
		rq := request{method: "PUT", target: "/api/demo/secrets/other-password", body: body, header: json()}
		resp := full.do(t, rq)
		got := readBody(t, resp)
		if resp.StatusCode != http.StatusConflict {
			t.Fatalf("PUT of a second key under a quota of 1 = %d, want 409; body %s", resp.StatusCode, got)
		}
		if err := validateExchange(exchange{rq: rq, status: resp.StatusCode, header: resp.Header, body: []byte(got)}); err != nil {
			t.Errorf("409 not documented: %v", err)
		}
	})
}
