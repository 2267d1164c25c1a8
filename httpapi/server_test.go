package httpapi_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

var traceIDPattern = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$`)

// problemBody is a problem details body as the API writes it.
type problemBody struct {
	Type    string              `json:"type"`
	Title   string              `json:"title"`
	Status  int                 `json:"status"`
	Detail  string              `json:"detail"`
	Errors  map[string][]string `json:"errors"`
	TraceID string              `json:"traceId"`
}

// decodeProblem checks that resp is a problem with the given status and
// returns it.
func decodeProblem(t *testing.T, resp *http.Response, status int) problemBody {
	t.Helper()
	body := readBody(t, resp)
	if resp.StatusCode != status {
		t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, status, body)
	}
	if got, want := resp.Header.Get("Content-Type"), "application/problem+json; charset=utf-8"; got != want {
		t.Errorf("Content-Type = %q, want %q", got, want)
	}
	var p problemBody
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("body %s is not a problem: %v", body, err)
	}
	if p.Status != status {
		t.Errorf("problem status = %d, want %d", p.Status, status)
	}
	if !traceIDPattern.MatchString(p.TraceID) {
		t.Errorf("traceId = %q, want 00-<32 hex>-<16 hex>-<2 hex>", p.TraceID)
	}
	return p
}

func TestServer_Routing(t *testing.T) {
	tests := []struct {
		name   string
		method string
		target string
		status int
		allow  string
	}{
		{"UnknownPath", "GET", "/nope", 404, ""},
		{"Root", "GET", "/", 404, ""},
		{"APIPrefixOnly", "GET", "/api/demo", 404, ""},
		{"TrailingSlashOnList", "GET", "/api/demo/secrets/", 404, ""},
		{"TooDeep", "GET", "/api/demo/secrets/a/b", 404, ""},
		{"LiteralIsCaseSensitive", "GET", "/API/demo/secrets", 404, ""},
		{"DoubleSlash", "GET", "/api//demo/secrets", 404, ""},
		{"DotSegment", "GET", "/api/demo/./secrets", 404, ""},
		{"DotDotSegment", "GET", "/api/other/../demo/secrets", 404, ""},
		{"DotDotAtEnd", "GET", "/api/demo/secrets/..", 404, ""},
		{"PostOnList", "POST", "/api/demo/secrets", 405, "GET"},
		{"PutOnList", "PUT", "/api/demo/secrets", 405, "GET"},
		{"HeadOnList", "HEAD", "/api/demo/secrets", 405, "GET"},
		{"PostOnSecret", "POST", "/api/demo/secrets/k", 405, "GET, PUT, DELETE"},
		{"PatchOnSecret", "PATCH", "/api/demo/secrets/k", 405, "GET, PUT, DELETE"},
		{"OptionsOnSecret", "OPTIONS", "/api/demo/secrets/k", 405, "GET, PUT, DELETE"},
		{"HeadOnSecret", "HEAD", "/api/demo/secrets/k", 405, "GET, PUT, DELETE"},
		{"DeleteOnOpenAPI", "DELETE", "/openapi.json", 405, "GET"},
		{"HeadOnOpenAPI", "HEAD", "/openapi.json", 405, "GET"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			// A valid credential: routing comes before authentication.
			resp := f.do(t, request{method: tt.method, target: tt.target, header: authRW()})
			if tt.method == "HEAD" {
				// No body; only the status and headers can be checked.
				if resp.StatusCode != tt.status {
					t.Fatalf("status = %d, want %d", resp.StatusCode, tt.status)
				}
			} else {
				p := decodeProblem(t, resp, tt.status)
				if wantTitle := map[int]string{404: "Not Found", 405: "Method Not Allowed"}[tt.status]; p.Title != wantTitle {
					t.Errorf("title = %q, want %q", p.Title, wantTitle)
				}
			}
			if got := resp.Header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow = %q, want %q", got, tt.allow)
			}
			if got := resp.Header.Get("Location"); got != "" {
				t.Errorf("Location = %q, want no redirect", got)
			}
		})
	}
}

// TestServer_RoutingBeforeAuthentication: an unknown path or method is
// 404 or 405 even without a credential, as in ASP.NET Core, where no
// endpoint means no authorization.
func TestServer_RoutingBeforeAuthentication(t *testing.T) {
	f := newFixture(t)
	decodeProblem(t, f.do(t, request{method: "GET", target: "/nope"}), 404)
	decodeProblem(t, f.do(t, request{method: "POST", target: "/api/demo/secrets"}), 405)
}

func TestServer_HeadersOnEveryResponse(t *testing.T) {
	f := newFixture(t)
	f.put(t, "db-password", `{"value":"hunter2"}`)
	requests := []request{
		{method: "GET", target: "/api/demo/secrets", header: authRW()},
		{method: "GET", target: "/api/demo/secrets/db-password", header: authRW()},
		{method: "GET", target: "/api/demo/secrets/db-password", header: authRW("Accept", "application/json")},
		{method: "PUT", target: "/api/demo/secrets/k", body: `{"value":"v"}`, header: authRW("Content-Type", "application/json")},
		{method: "DELETE", target: "/api/demo/secrets/k", header: authRW()},
		{method: "GET", target: "/openapi.json"},
		{method: "GET", target: "/api/demo/secrets"},                                            // 401
		{method: "GET", target: "/api/other/secrets", header: authRW()},                         // 403
		{method: "GET", target: "/api/demo/secrets/missing", header: authRW()},                  // 404
		{method: "DELETE", target: "/api/demo/secrets/a%2Fb", header: authRW()},                 // 400
		{method: "POST", target: "/api/demo/secrets"},                                           // 405
		{method: "PUT", target: "/api/demo/secrets/k", body: `{"value":"v"}`, header: authRW()}, // 415
		{method: "GET", target: "/api/demo/secrets", header: hdr("X-API-KEY", "unavailable")},   // 503
		{method: "GET", target: "/api/demo/secrets", header: hdr("X-API-KEY", "broken")},        // 500
		{method: "GET", target: "/api/demo/secrets", header: hdr("X-API-KEY", "panic")},         // 500
		{method: "GET", target: "//api/demo/secrets", header: authRW()},                         // 404
		{method: "PUT", target: "/api/demo/secrets/k", body: strings.Repeat("x", 2<<20), header: authRW( // 413
			"Content-Type", "application/json")},
	}
	seen := map[int]bool{}
	for _, rq := range requests {
		resp := f.do(t, rq)
		seen[resp.StatusCode] = true
		if got := resp.Header.Values("Cache-Control"); len(got) != 1 || got[0] != "no-store" {
			t.Errorf("%s %s -> %d: Cache-Control = %q, want [no-store]", rq.method, rq.target, resp.StatusCode, got)
		}
		if got := resp.Header.Values("X-Content-Type-Options"); len(got) != 1 || got[0] != "nosniff" {
			t.Errorf("%s %s -> %d: X-Content-Type-Options = %q, want [nosniff]", rq.method, rq.target, resp.StatusCode, got)
		}
	}
	for _, status := range []int{200, 204, 400, 401, 403, 404, 405, 413, 415, 500, 503} {
		if !seen[status] {
			t.Errorf("no request of the table got status %d", status)
		}
	}
}

func TestServer_TraceID(t *testing.T) {
	const incomingTrace = "0af7651916cd43dd8448eb211c80319c"
	tests := []struct {
		name        string
		traceparent []string
		wantTrace   string // "" = a fresh random one
		wantFlags   string
	}{
		{"NoTraceparent", nil, "", "00"},
		{"ValidSampled", []string{"00-" + incomingTrace + "-b7ad6b7169203331-01"}, incomingTrace, "01"},
		{"ValidNotSampled", []string{"00-" + incomingTrace + "-b7ad6b7169203331-00"}, incomingTrace, "00"},
		{"FutureVersionWithExtraField", []string{"01-" + incomingTrace + "-b7ad6b7169203331-01-extra"}, incomingTrace, "01"},
		{"VersionFF", []string{"ff-" + incomingTrace + "-b7ad6b7169203331-01"}, "", "00"},
		{"Version00WithExtraField", []string{"00-" + incomingTrace + "-b7ad6b7169203331-01-extra"}, "", "00"},
		{"UpperCaseHex", []string{"00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01"}, "", "00"},
		{"ZeroTraceID", []string{"00-00000000000000000000000000000000-b7ad6b7169203331-01"}, "", "00"},
		{"ZeroSpanID", []string{"00-" + incomingTrace + "-0000000000000000-01"}, "", "00"},
		{"Truncated", []string{"00-" + incomingTrace + "-b7ad6b71692033-01"}, "", "00"},
		{"Garbage", []string{"hello"}, "", "00"},
		{"TwoHeaders", []string{"00-" + incomingTrace + "-b7ad6b7169203331-01", "00-" + incomingTrace + "-b7ad6b7169203331-01"}, "", "00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			h := hdr()
			for _, v := range tt.traceparent {
				h.Add("traceparent", v)
			}
			p := decodeProblem(t, f.do(t, request{method: "GET", target: "/nope", header: h}), 404)
			parts := strings.Split(p.TraceID, "-")
			if tt.wantTrace != "" && parts[1] != tt.wantTrace {
				t.Errorf("trace-id = %s, want %s", parts[1], tt.wantTrace)
			}
			if tt.wantTrace == "" && parts[1] == incomingTrace {
				t.Errorf("trace-id = incoming %s, want a fresh one for an invalid traceparent", parts[1])
			}
			if parts[2] == "b7ad6b7169203331" {
				t.Errorf("span-id = incoming parent id, want a fresh one")
			}
			if parts[3] != tt.wantFlags {
				t.Errorf("flags = %s, want %s", parts[3], tt.wantFlags)
			}
			if !strings.Contains(f.logs.String(), `"traceId":"`+p.TraceID+`"`) {
				t.Errorf("log does not carry traceId %s:\n%s", p.TraceID, f.logs)
			}
		})
	}
}

func TestServer_TraceIDsDiffer(t *testing.T) {
	f := newFixture(t)
	a := decodeProblem(t, f.do(t, request{method: "GET", target: "/nope"}), 404)
	b := decodeProblem(t, f.do(t, request{method: "GET", target: "/nope"}), 404)
	if a.TraceID == b.TraceID {
		t.Errorf("two requests got the same traceId %s", a.TraceID)
	}
}

// TestServer_InternalErrors: the client gets the generic 500 body; the
// detail goes to the log at Error with the traceId.
func TestServer_InternalErrors(t *testing.T) {
	for _, credential := range []string{"broken", "panic"} {
		t.Run(credential, func(t *testing.T) {
			f := newFixture(t)
			resp := f.do(t, request{method: "GET", target: "/api/demo/secrets", header: hdr("X-API-KEY", credential)})
			raw := readBody(t, resp)
			p := decodeProblem(t, resp, 500)
			want := problemBody{
				Type:    "https://tools.ietf.org/html/rfc9110#section-15.6.1",
				Title:   "An error occurred while processing your request.",
				Status:  500,
				TraceID: p.TraceID,
			}
			if p.Type != want.Type || p.Title != want.Title || p.Detail != "" || p.Errors != nil {
				t.Errorf("problem = %+v, want %+v", p, want)
			}
			for _, leak := range []string{"page 42", "exploded"} {
				if strings.Contains(raw, leak) {
					t.Errorf("body %s leaks %q", raw, leak)
				}
			}
			logs := f.logs.String()
			var found bool
			for _, line := range strings.Split(logs, "\n") {
				if strings.Contains(line, `"level":"ERROR"`) && strings.Contains(line, p.TraceID) &&
					(strings.Contains(line, "page 42") || strings.Contains(line, "exploded")) {
					found = true
				}
			}
			if !found {
				t.Errorf("no Error log line with the detail and traceId %s:\n%s", p.TraceID, logs)
			}
		})
	}
}

func TestServer_Unavailable(t *testing.T) {
	f := newFixture(t)
	resp := f.do(t, request{method: "GET", target: "/api/demo/secrets", header: hdr("X-API-KEY", "unavailable")})
	p := decodeProblem(t, resp, 503)
	if p.Title != "Service Unavailable" || p.Type != "https://tools.ietf.org/html/rfc9110#section-15.6.4" {
		t.Errorf("problem = %+v, want Service Unavailable 15.6.4", p)
	}
	if got := resp.Header.Get("Retry-After"); got == "" {
		t.Errorf("Retry-After missing")
	}
}

// TestServer_ProblemBytes pins the exact bytes ASP.NET Core writes.
func TestServer_ProblemBytes(t *testing.T) {
	f := newFixture(t)
	h := hdr("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	resp := f.do(t, request{method: "GET", target: "/nope", header: h})
	body := readBody(t, resp)
	re := regexp.MustCompile(`^\{"type":"https://tools.ietf.org/html/rfc9110#section-15.5.5","title":"Not Found","status":404,"traceId":"00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01"\}$`)
	if !re.MatchString(body) {
		t.Errorf("body = %s, want %s", body, re)
	}

	resp = f.do(t, request{method: "PUT", target: "/api/demo/secrets/k", body: `{"value":""}`, header: authRW("Content-Type", "application/json", "traceparent", h.Get("traceparent"))})
	body = readBody(t, resp)
	re = regexp.MustCompile(`^\{"type":"https://tools.ietf.org/html/rfc9110#section-15.5.1","title":"One or more validation errors occurred.","status":400,"errors":\{"value":\["The value field is required."\]\},"traceId":"00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01"\}$`)
	if !re.MatchString(body) {
		t.Errorf("body = %s, want %s", body, re)
	}
}

// TestServer_ZeroConfig: the zero Config (no logger, no clock, default
// value limit) serves requests.
func TestServer_ZeroConfig(t *testing.T) {
	f := newFixture(t, withZeroConfig())
	decodeProblem(t, f.do(t, request{method: "GET", target: "/nope"}), 404)
	decodeProblem(t, f.do(t, request{method: "GET", target: "/api/demo/secrets", header: hdr("X-API-KEY", "panic")}), 500)
	f.put(t, "k", `{"value":"`+strings.Repeat("x", 64<<10)+`"}`)
	decodeProblem(t, f.do(t, request{method: "PUT", target: "/api/demo/secrets/k", body: `{"value":"` + strings.Repeat("x", 64<<10+1) + `"}`,
		header: authRW("Content-Type", "application/json")}), 413)
}
