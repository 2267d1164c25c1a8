package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/envelope"
	"github.com/neostore/neostore-secrets/httpapi"
)

func TestSecrets_PutGetDelete(t *testing.T) {
	f := newFixture(t)
	f.put(t, "db-password", `{"value":"hunter2"}`)

	resp := f.do(t, request{method: "GET", target: "/api/demo/secrets/db-password", header: authRW()})
	if resp.StatusCode != 200 {
		t.Fatalf("GET status = %d, want 200", resp.StatusCode)
	}
	if got, want := readBody(t, resp), "hunter2"; got != want {
		t.Errorf("GET body = %q, want %q", got, want)
	}
	if got, want := resp.Header.Get("Content-Type"), "text/plain; charset=utf-8"; got != want {
		t.Errorf("GET Content-Type = %q, want %q", got, want)
	}

	// PUT replaces.
	f.put(t, "db-password", `{"value":"correct horse"}`)
	resp = f.do(t, request{method: "GET", target: "/api/demo/secrets/db-password", header: authRW()})
	if got, want := readBody(t, resp), "correct horse"; got != want {
		t.Errorf("GET after replace = %q, want %q", got, want)
	}

	resp = f.do(t, request{method: "DELETE", target: "/api/demo/secrets/db-password", header: authRW()})
	if resp.StatusCode != http.StatusNoContent || readBody(t, resp) != "" {
		t.Fatalf("DELETE status = %d, want 204 with empty body", resp.StatusCode)
	}
	decodeProblem(t, f.do(t, request{method: "GET", target: "/api/demo/secrets/db-password", header: authRW()}), 404)
	resp = f.do(t, request{method: "GET", target: "/api/demo/secrets", header: authRW()})
	if got := readBody(t, resp); got != "[]" {
		t.Errorf("list after delete = %s, want []", got)
	}

	// Deleting again is still 204: the contract lists no 404.
	if resp := f.do(t, request{method: "DELETE", target: "/api/demo/secrets/db-password", header: authRW()}); resp.StatusCode != http.StatusNoContent {
		t.Errorf("second DELETE status = %d, want 204", resp.StatusCode)
	}
}

func TestSecrets_PutResponse(t *testing.T) {
	f := newFixture(t)
	resp := f.do(t, request{method: "PUT", target: "/api/demo/secrets/k", body: `{"value":"v"}`, header: authRW("Content-Type", "application/json")})
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("status = %d, want 204", resp.StatusCode)
	}
	if body := readBody(t, resp); body != "" {
		t.Errorf("body = %q, want empty", body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		t.Errorf("Content-Type = %q, want none", ct)
	}
}

func TestSecrets_KeysAreCaseSensitive(t *testing.T) {
	f := newFixture(t)
	f.put(t, "Db-Password", `{"value":"upper"}`)
	f.put(t, "db-password", `{"value":"lower"}`)
	for key, want := range map[string]string{"Db-Password": "upper", "db-password": "lower"} {
		resp := f.do(t, request{method: "GET", target: "/api/demo/secrets/" + key, header: authRW()})
		if got := readBody(t, resp); got != want {
			t.Errorf("GET %s = %q, want %q", key, got, want)
		}
	}
}

func TestSecrets_TenantIsolation(t *testing.T) {
	f := newFixture(t)
	f.put(t, "k", `{"value":"demo's"}`)
	other := hdr("X-API-KEY", keyOtherRW)
	decodeProblem(t, f.do(t, request{method: "GET", target: "/api/other/secrets/k", header: other}), 404)
	resp := f.do(t, request{method: "GET", target: "/api/other/secrets", header: other})
	if got := readBody(t, resp); got != "[]" {
		t.Errorf("other tenant's list = %s, want []", got)
	}
}

func TestSecrets_List(t *testing.T) {
	f := newFixture(t)
	resp := f.do(t, request{method: "GET", target: "/api/demo/secrets", header: authRW()})
	if got := readBody(t, resp); resp.StatusCode != 200 || got != "[]" {
		t.Fatalf("empty tenant: %d %s, want 200 []", resp.StatusCode, got)
	}
	// Ordinal byte order: digits, upper case, hyphen-free lower case.
	for _, k := range []string{"b", "a-2", "B", "a", "0", "a-10", "Z"} {
		f.put(t, k, `{"value":"v"}`)
	}
	// Expired and not-yet-valid secrets are listed: they are stored.
	f.put(t, "expired", `{"value":"v","options":{"expiresOn":"2000-01-01T00:00:00Z"}}`)
	f.put(t, "future", `{"value":"v","options":{"notBefore":"2100-01-01T00:00:00Z"}}`)
	const wantKeys = `["0","B","Z","a","a-10","a-2","b","expired","future"]`

	tests := []struct {
		name   string
		accept []string
		ct     string
	}{
		{"NoAccept", nil, "application/json; charset=utf-8"},
		{"ApplicationJSON", []string{"application/json"}, "application/json; charset=utf-8"},
		{"TextPlainStillJSON", []string{"text/plain"}, "application/json; charset=utf-8"},
		{"TextJSON", []string{"text/json"}, "text/json; charset=utf-8"},
		{"TextJSONBeforeApplicationJSON", []string{"text/json, application/json"}, "text/json; charset=utf-8"},
		{"ApplicationJSONBeforeTextJSON", []string{"application/json, text/json"}, "application/json; charset=utf-8"},
		{"TextJSONHigherQuality", []string{"application/json;q=0.5, text/json"}, "text/json; charset=utf-8"},
		{"TextWildcard", []string{"text/*"}, "text/json; charset=utf-8"},
		{"Axios", []string{"application/json, text/plain, */*"}, "application/json; charset=utf-8"},
		{"StarStarOverridesTextJSON", []string{"text/json, */*"}, "application/json; charset=utf-8"},
		{"XML", []string{"application/xml"}, "application/json; charset=utf-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := authRW()
			for _, a := range tt.accept {
				h.Add("Accept", a)
			}
			resp := f.do(t, request{method: "GET", target: "/api/demo/secrets", header: h})
			if resp.StatusCode != 200 {
				t.Fatalf("status = %d, want 200", resp.StatusCode)
			}
			if got := resp.Header.Get("Content-Type"); got != tt.ct {
				t.Errorf("Content-Type = %q, want %q", got, tt.ct)
			}
			if got := readBody(t, resp); got != wantKeys {
				t.Errorf("body = %s, want %s", got, wantKeys)
			}
		})
	}
}

func TestSecrets_GetNegotiation(t *testing.T) {
	f := newFixture(t)
	f.put(t, "k", `{"value":"a \"quoted\" <b>&</b> + 'x' é 😀\n"}`)
	const raw = "a \"quoted\" <b>&</b> + 'x' é 😀\n"
	const asJSON = `"a \u0022quoted\u0022 \u003Cb\u003E\u0026\u003C/b\u003E \u002B \u0027x\u0027 \u00E9 \uD83D\uDE00\n"`
	tests := []struct {
		name   string
		accept []string
		ct     string
		body   string
	}{
		{"NoAccept", nil, "text/plain; charset=utf-8", raw},
		{"Axios", []string{"application/json, text/plain, */*"}, "text/plain; charset=utf-8", raw},
		{"StarStarLast", []string{"application/json, */*;q=0.1"}, "text/plain; charset=utf-8", raw},
		{"StarStarWithQZero", []string{"application/json, */*;q=0"}, "text/plain; charset=utf-8", raw},
		{"StarStarInSecondHeaderLine", []string{"application/json", "*/*"}, "text/plain; charset=utf-8", raw},
		{"TextPlain", []string{"text/plain"}, "text/plain; charset=utf-8", raw},
		{"ApplicationJSON", []string{"application/json"}, "application/json; charset=utf-8", asJSON},
		{"TextJSON", []string{"text/json"}, "text/json; charset=utf-8", asJSON},
		{"CaseInsensitive", []string{"Application/JSON"}, "application/json; charset=utf-8", asJSON},
		{"FirstWins", []string{"text/json, application/json"}, "text/json; charset=utf-8", asJSON},
		{"QualityWins", []string{"text/plain;q=0.5, application/json"}, "application/json; charset=utf-8", asJSON},
		{"QualityThenPosition", []string{"text/plain;q=0.9, text/json;q=0.9, application/json;q=0.8"}, "text/plain; charset=utf-8", raw},
		{"QZeroNotAcceptable", []string{"application/json;q=0, text/json"}, "text/json; charset=utf-8", asJSON},
		{"XMLFallsBackToText", []string{"application/xml"}, "text/plain; charset=utf-8", raw},
		{"XMLThenJSON", []string{"application/xml, application/json;q=0.5"}, "application/json; charset=utf-8", asJSON},
		{"ProblemJSONNotProducible", []string{"application/problem+json"}, "text/plain; charset=utf-8", raw},
		{"ApplicationWildcard", []string{"application/*"}, "application/json; charset=utf-8", asJSON},
		{"TextWildcard", []string{"text/*"}, "text/plain; charset=utf-8", raw},
		{"ParametersAreNotProducible", []string{"application/json; charset=utf-8"}, "text/plain; charset=utf-8", raw},
		{"InvalidQIgnored", []string{"application/json;q=2, text/json"}, "text/json; charset=utf-8", asJSON},
		{"Garbage", []string{"garbage"}, "text/plain; charset=utf-8", raw},
		{"Empty", []string{""}, "text/plain; charset=utf-8", raw},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := authRW()
			for _, a := range tt.accept {
				h.Add("Accept", a)
			}
			resp := f.do(t, request{method: "GET", target: "/api/demo/secrets/k", header: h})
			if resp.StatusCode != 200 {
				t.Fatalf("status = %d, want 200", resp.StatusCode)
			}
			if got := resp.Header.Get("Content-Type"); got != tt.ct {
				t.Errorf("Content-Type = %q, want %q", got, tt.ct)
			}
			if got := readBody(t, resp); got != tt.body {
				t.Errorf("body = %s, want %s", got, tt.body)
			}
		})
	}
}

func TestSecrets_GetNotFound(t *testing.T) {
	f := newFixture(t)
	f.put(t, "k", `{"value":"v"}`)
	for _, key := range []string{
		"missing",
		"K",                      // case-sensitive
		"a.b",                    // invalid name
		"a%2Fb",                  // %2F reaches the handler as /
		"%2E%2E",                 // .. escaped
		"a%00b",                  // NUL
		"caf%C3%A9",              // non-ASCII
		"a%20b",                  // space
		strings.Repeat("a", 128), // too long
	} {
		t.Run(key, func(t *testing.T) {
			p := decodeProblem(t, f.do(t, request{method: "GET", target: "/api/demo/secrets/" + key, header: authRW()}), 404)
			if p.Title != "Not Found" || p.Detail != "" || p.Errors != nil {
				t.Errorf("problem = %+v, want plain Not Found", p)
			}
		})
	}
	t.Run("LongestValidName", func(t *testing.T) {
		key := strings.Repeat("a", 127)
		f.put(t, key, `{"value":"v"}`)
		if resp := f.do(t, request{method: "GET", target: "/api/demo/secrets/" + key, header: authRW()}); resp.StatusCode != 200 {
			t.Errorf("status = %d, want 200", resp.StatusCode)
		}
	})
}

func TestSecrets_InvalidPathParameters(t *testing.T) {
	all := hdr("Authorization", "Bearer "+tokenAllTenants) // may touch any tenant, so validation is reached
	tests := []struct {
		name   string
		method string
		target string
		field  string
	}{
		{"ListTenantWithDot", "GET", "/api/a.b/secrets", "tenantId"},
		{"ListTenantEscapedSlash", "GET", "/api/a%2Fb/secrets", "tenantId"},
		{"ListTenantEscapedDotDot", "GET", "/api/%2E%2E/secrets", "tenantId"},
		{"ListTenantNUL", "GET", "/api/a%00/secrets", "tenantId"},
		{"ListTenantNonASCII", "GET", "/api/t%C3%A9/secrets", "tenantId"},
		{"ListTenantTooLong", "GET", "/api/" + strings.Repeat("t", 129) + "/secrets", "tenantId"},
		{"ListTenantWildcard", "GET", "/api/*/secrets", "tenantId"},
		{"GetTenantInvalid", "GET", "/api/a.b/secrets/k", "tenantId"},
		{"DeleteKeyWithDot", "DELETE", "/api/demo/secrets/a.b", "key"},
		{"DeleteKeyEscapedSlash", "DELETE", "/api/demo/secrets/a%2Fb", "key"},
		{"DeleteKeyEscapedDotDot", "DELETE", "/api/demo/secrets/%2E%2E", "key"},
		{"DeleteKeyNUL", "DELETE", "/api/demo/secrets/a%00b", "key"},
		{"DeleteKeyNonASCII", "DELETE", "/api/demo/secrets/caf%C3%A9", "key"},
		{"DeleteKeyUnderscore", "DELETE", "/api/demo/secrets/a_b", "key"},
		{"DeleteKeyTooLong", "DELETE", "/api/demo/secrets/" + strings.Repeat("k", 128), "key"},
		{"DeleteTenantInvalid", "DELETE", "/api/a.b/secrets/k", "tenantId"},
		{"PutKeyWithDot", "PUT", "/api/demo/secrets/a.b", "key"},
		{"PutKeyEscapedSlash", "PUT", "/api/demo/secrets/a%2Fb", "key"},
		{"PutTenantInvalid", "PUT", "/api/a%20b/secrets/k", "tenantId"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			h := all.Clone()
			h.Set("Content-Type", "application/json")
			resp := f.do(t, request{method: tt.method, target: tt.target, body: `{"value":"v"}`, header: h})
			p := decodeProblem(t, resp, 400)
			if p.Title != "One or more validation errors occurred." || p.Type != "https://tools.ietf.org/html/rfc9110#section-15.5.1" {
				t.Errorf("problem = %+v, want a validation problem", p)
			}
			if len(p.Errors) != 1 || len(p.Errors[tt.field]) != 1 {
				t.Errorf("errors = %v, want one message for %q", p.Errors, tt.field)
			}
		})
	}
}

func TestSecrets_ValidityWindow(t *testing.T) {
	f := newFixture(t)
	// expiresOn 13:00+01:00 is 12:00Z, the same instant: an empty window.
	resp := f.do(t, request{method: "PUT", target: "/api/demo/secrets/window", header: authRW("Content-Type", "application/json"),
		body: `{"value":"v","options":{"notBefore":"2025-06-01T12:00:00Z","expiresOn":"2025-06-01T13:00:00+01:00"}}`})
	if p := decodeProblem(t, resp, 400); len(p.Errors["options.expiresOn"]) != 1 {
		t.Errorf("errors = %v, want options.expiresOn", p.Errors)
	}

	f.put(t, "window", `{"value":"v","options":{"notBefore":"2025-06-01T14:00:00+02:00","expiresOn":"2025-06-01T13:00:00Z"}}`)
	tests := []struct {
		at     string
		status int
	}{
		{"2025-06-01T11:59:59.999999999Z", 404}, // before notBefore (12:00Z)
		{"2025-06-01T12:00:00Z", 200},           // notBefore is inclusive
		{"2025-06-01T12:59:59Z", 200},
		{"2025-06-01T13:00:00Z", 404}, // expiresOn is exclusive
	}
	for _, tt := range tests {
		t.Run(tt.at, func(t *testing.T) {
			at, err := time.Parse(time.RFC3339Nano, tt.at)
			if err != nil {
				t.Fatal(err)
			}
			f.clock.Set(at)
			resp := f.do(t, request{method: "GET", target: "/api/demo/secrets/window", header: authRW()})
			if resp.StatusCode != tt.status {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.status)
			}
		})
	}

	t.Run("PutWithoutOptionsClearsTheWindow", func(t *testing.T) {
		f.clock.Set(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
		f.put(t, "window", `{"value":"v2"}`)
		if resp := f.do(t, request{method: "GET", target: "/api/demo/secrets/window", header: authRW()}); resp.StatusCode != 200 {
			t.Errorf("status = %d, want 200", resp.StatusCode)
		}
	})
	t.Run("YearOneIsARealBound", func(t *testing.T) {
		f.put(t, "ancient", `{"value":"v","options":{"expiresOn":"0001-01-01T00:00:00Z"}}`)
		decodeProblem(t, f.do(t, request{method: "GET", target: "/api/demo/secrets/ancient", header: authRW()}), 404)
	})
}

func TestPut_Accepted(t *testing.T) {
	tests := []struct {
		name    string
		ct      string
		body    string
		want    string
		offSpec bool // the contract's schema does not say so, but ASP.NET accepts it
	}{
		{"ApplicationJSON", "application/json", `{"value":"v"}`, "v", false},
		{"TextJSON", "text/json", `{"value":"v"}`, "v", false},
		{"VendorJSON", "application/vnd.neostore+json", `{"value":"v"}`, "v", false},
		{"CharsetUTF8", "application/json; charset=utf-8", `{"value":"v"}`, "v", false},
		{"CharsetUpperCase", "application/json; charset=UTF-8", `{"value":"v"}`, "v", false},
		{"CharsetQuoted", `application/json; charset="utf-8"`, `{"value":"v"}`, "v", false},
		{"MediaTypeUpperCase", "Application/JSON", `{"value":"v"}`, "v", false},
		{"PropertyNamesCaseInsensitive", "application/json", `{"VALUE":"v","Options":{"ExpiresOn":null,"NOTBEFORE":null}}`, "v", true},
		{"EscapedPropertyName", "application/json", `{"val\u0075e":"v"}`, "v", false},
		{"OptionsNull", "application/json", `{"value":"v","options":null}`, "v", true},
		{"OptionsEmpty", "application/json", `{"value":"v","options":{}}`, "v", false},
		{"BoundsNull", "application/json", `{"value":"v","options":{"expiresOn":null,"notBefore":null}}`, "v", false},
		{"OptionsFirst", "application/json", `{"options":{"expiresOn":"2099-01-01T00:00:00Z"},"value":"v"}`, "v", false},
		{"Whitespace", "application/json", " \t\r\n{ \"value\" : \"v\" } \n", "v", false},
		{"ByteOrderMark", "application/json", "\xEF\xBB\xBF{\"value\":\"v\"}", "v", true},
		{"Escapes", "application/json", `{"value":"\"\\\/\b\f\n\r\t\u00e9\uD83D\uDE00"}`, "\"\\/\b\f\n\r\t\u00e9\U0001F600", false},
		{"RawUnicode", "application/json", `{"value":"pässwörd 🔑"}`, "pässwörd 🔑", false},
		{"NULEscaped", "application/json", `{"value":"a\u0000b"}`, "a\x00b", false},
		{"FractionalSeconds", "application/json", `{"value":"v","options":{"expiresOn":"2099-01-01T00:00:00.123456789Z"}}`, "v", false},
		{"NegativeOffset", "application/json", `{"value":"v","options":{"expiresOn":"2099-01-01T00:00:00-05:30"}}`, "v", false},
		{"MaxOffset", "application/json", `{"value":"v","options":{"expiresOn":"2099-01-01T00:00:00+23:59"}}`, "v", false},
		{"LeapDay", "application/json", `{"value":"v","options":{"expiresOn":"2096-02-29T00:00:00Z"}}`, "v", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			resp := f.do(t, request{method: "PUT", target: "/api/demo/secrets/k", body: tt.body, offSpec: tt.offSpec,
				header: authRW("Content-Type", tt.ct)})
			if resp.StatusCode != http.StatusNoContent {
				t.Fatalf("status = %d, want 204; body %s", resp.StatusCode, readBody(t, resp))
			}
			resp = f.do(t, request{method: "GET", target: "/api/demo/secrets/k", header: authRW()})
			if got := readBody(t, resp); got != tt.want {
				t.Errorf("stored %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPut_ValueSizeLimit(t *testing.T) {
	f := newFixture(t, withMaxValueBytes(8))
	f.put(t, "k", `{"value":"12345678"}`)
	f.put(t, "k", `{"value":"\u00e9\u00e9\u00e9\u00e9"}`) // 4 characters, 8 UTF-8 bytes
	p := decodeProblem(t, f.do(t, request{method: "PUT", target: "/api/demo/secrets/k", body: `{"value":"123456789"}`,
		header: authRW("Content-Type", "application/json")}), 413)
	if p.Title != "Content Too Large" || p.Type != "https://tools.ietf.org/html/rfc9110#section-15.5.14" {
		t.Errorf("problem = %+v, want Content Too Large 15.5.14", p)
	}
	if !strings.Contains(p.Detail, "8 bytes") {
		t.Errorf("detail = %q, want the limit", p.Detail)
	}
	// Counted after unescaping, in UTF-8: 5 x é = 10 bytes.
	decodeProblem(t, f.do(t, request{method: "PUT", target: "/api/demo/secrets/k", body: `{"value":"ééééé"}`,
		header: authRW("Content-Type", "application/json")}), 413)
	// The failed PUTs left the last good value.
	resp := f.do(t, request{method: "GET", target: "/api/demo/secrets/k", header: authRW()})
	if got := readBody(t, resp); got != "éééé" {
		t.Errorf("value = %q, want éééé", got)
	}
}

// countingReader is a request body of spaces that counts what was read
// from it.
type countingReader struct {
	remaining int
	read      int
}

func (r *countingReader) Read(p []byte) (int, error) {
	if r.remaining == 0 {
		return 0, io.EOF
	}
	n := min(len(p), r.remaining)
	for i := range n {
		p[i] = ' '
	}
	r.remaining -= n
	r.read += n
	return n, nil
}

func TestPut_BodyLimit(t *testing.T) {
	t.Run("DeclaredContentLengthRefusedUnread", func(t *testing.T) {
		f := newFixture(t)
		body := &countingReader{remaining: 2 << 20}
		r := request{method: "PUT", target: "/api/demo/secrets/k", header: authRW("Content-Type", "application/json")}.build()
		r.Body = readCloser{body}
		r.ContentLength = 2 << 20
		resp := serve(f, r)
		decodeProblem(t, resp, 413)
		if body.read != 0 {
			t.Errorf("read %d bytes of a body declared too large, want 0", body.read)
		}
	})
	t.Run("ChunkedBodyStopsAtLimit", func(t *testing.T) {
		f := newFixture(t)
		body := &countingReader{remaining: 8 << 20}
		r := request{method: "PUT", target: "/api/demo/secrets/k", header: authRW("Content-Type", "application/json")}.build()
		r.Body = readCloser{body}
		r.ContentLength = -1
		resp := serve(f, r)
		p := decodeProblem(t, resp, 413)
		if body.read > 2<<20 {
			t.Errorf("read %d bytes, want the reading to stop near the 1 MiB limit", body.read)
		}
		if !strings.Contains(p.Detail, "1048576 bytes") {
			t.Errorf("detail = %q, want the limit", p.Detail)
		}
	})
	t.Run("BodyAtLimitIsRead", func(t *testing.T) {
		f := newFixture(t)
		body := `{"value":"v"}` + strings.Repeat(" ", 1<<20-len(`{"value":"v"}`))
		resp := f.do(t, request{method: "PUT", target: "/api/demo/secrets/k", body: body, header: authRW("Content-Type", "application/json")})
		if resp.StatusCode != http.StatusNoContent {
			t.Errorf("status = %d, want 204", resp.StatusCode)
		}
	})
}

// TestPut_BadInput lists every body, header and path the PUT refuses, with
// the status and the field the problem names ("" for problems without
// errors).
func TestPut_BadInput(t *testing.T) {
	const json = "application/json"
	tests := []struct {
		name   string
		ct     string
		body   string
		status int
		field  string
	}{
		// Content-Type.
		{"NoContentType", "", `{"value":"v"}`, 415, ""},
		{"TextPlain", "text/plain", `{"value":"v"}`, 415, ""},
		{"FormEncoded", "application/x-www-form-urlencoded", `value=v`, 415, ""},
		{"ProblemWithoutPlusPrefix", "application/+json", `{"value":"v"}`, 415, ""},
		{"TextPlusJSON", "text/vnd.x+json", `{"value":"v"}`, 415, ""},
		{"CharsetLatin1", "application/json; charset=iso-8859-1", `{"value":"v"}`, 415, ""},
		{"CharsetUTF16", "application/json; charset=utf-16", `{"value":"v"}`, 415, ""},
		{"MalformedContentType", "application/json; charset", `{"value":"v"}`, 415, ""},
		// Body shape.
		{"EmptyBody", json, ``, 400, "$"},
		{"WhitespaceBody", json, "  \n", 400, "$"},
		{"Null", json, `null`, 400, "$"},
		{"Array", json, `[{"value":"v"}]`, 400, "$"},
		{"String", json, `"v"`, 400, "$"},
		{"Number", json, `42`, 400, "$"},
		{"NotJSON", json, `value=v`, 400, "$"},
		{"Truncated", json, `{"value":"v"`, 400, "$"},
		{"TruncatedString", json, `{"value":"v`, 400, "$"},
		{"TrailingComma", json, `{"value":"v",}`, 400, "$"},
		{"Comment", json, `{"value":"v" /* c */}`, 400, "$"},
		{"SingleQuotes", json, `{'value':'v'}`, 400, "$"},
		{"UnquotedName", json, `{value:"v"}`, 400, "$"},
		{"TrailingObject", json, `{"value":"v"}{"value":"w"}`, 400, "$"},
		{"TrailingGarbage", json, `{"value":"v"}x`, 400, "$"},
		{"TrailingNUL", json, "{\"value\":\"v\"}\x00", 400, "$"},
		{"InvalidUTF8", json, "{\"value\":\"\xff\xfe\"}", 400, "$"},
		{"OverlongUTF8", json, "{\"value\":\"\xc0\xaf\"}", 400, "$"},
		{"UTF8Surrogate", json, "{\"value\":\"\xed\xa0\x80\"}", 400, "$"},
		{"RawControlCharacter", json, "{\"value\":\"a\nb\"}", 400, "$"},
		{"BadEscape", json, `{"value":"\x41"}`, 400, "$"},
		{"ShortUnicodeEscape", json, `{"value":"\u12"}`, 400, "$"},
		// Properties.
		{"UnknownProperty", json, `{"value":"v","colour":"crimson"}`, 400, "$.colour"},
		{"UnknownPropertyFirst", json, `{"colour":"crimson","value":"v"}`, 400, "$.colour"},
		{"LookAlikeName", json, `{"valuе":"v"}`, 400, "$.valuе"}, // Cyrillic е
		{"UnknownOption", json, `{"value":"v","options":{"ttl":60}}`, 400, "$.options.ttl"},
		{"DuplicateValue", json, `{"value":"v","value":"w"}`, 400, "value"},
		{"DuplicateValueOtherCase", json, `{"value":"v","Value":"w"}`, 400, "value"},
		{"DuplicateOptions", json, `{"value":"v","options":null,"options":null}`, 400, "options"},
		{"DuplicateExpiresOn", json, `{"value":"v","options":{"expiresOn":null,"EXPIRESON":null}}`, 400, "options.expiresOn"},
		{"DuplicateNotBefore", json, `{"value":"v","options":{"notBefore":null,"notBefore":null}}`, 400, "options.notBefore"},
		// value.
		{"ValueMissing", json, `{}`, 400, "value"},
		{"ValueMissingWithOptions", json, `{"options":null}`, 400, "value"},
		{"ValueNull", json, `{"value":null}`, 400, "value"},
		{"ValueEmpty", json, `{"value":""}`, 400, "value"},
		{"ValueNumber", json, `{"value":42}`, 400, "value"},
		{"ValueBoolean", json, `{"value":true}`, 400, "value"},
		{"ValueObject", json, `{"value":{"a":"b"}}`, 400, "value"},
		{"ValueArray", json, `{"value":["v"]}`, 400, "value"},
		{"ValueLoneHighSurrogate", json, `{"value":"\uD800"}`, 400, "value"},
		{"ValueLoneLowSurrogate", json, `{"value":"\uDC00"}`, 400, "value"},
		{"ValueSwappedSurrogates", json, `{"value":"\uDE00\uD83D"}`, 400, "value"},
		{"ValueHighSurrogateThenText", json, `{"value":"\uD83Dx"}`, 400, "value"},
		// options.
		{"OptionsString", json, `{"value":"v","options":"never"}`, 400, "options"},
		{"OptionsArray", json, `{"value":"v","options":[]}`, 400, "options"},
		{"OptionsNumber", json, `{"value":"v","options":0}`, 400, "options"},
		{"ExpiresOnNumber", json, `{"value":"v","options":{"expiresOn":1767225600}}`, 400, "options.expiresOn"},
		{"ExpiresOnEmpty", json, `{"value":"v","options":{"expiresOn":""}}`, 400, "options.expiresOn"},
		{"ExpiresOnNoOffset", json, `{"value":"v","options":{"expiresOn":"2099-01-01T00:00:00"}}`, 400, "options.expiresOn"},
		{"ExpiresOnDateOnly", json, `{"value":"v","options":{"expiresOn":"2099-01-01"}}`, 400, "options.expiresOn"},
		{"ExpiresOnSpaceSeparator", json, `{"value":"v","options":{"expiresOn":"2099-01-01 00:00:00Z"}}`, 400, "options.expiresOn"},
		{"ExpiresOnLowerCaseT", json, `{"value":"v","options":{"expiresOn":"2099-01-01t00:00:00Z"}}`, 400, "options.expiresOn"},
		{"ExpiresOnLowerCaseZ", json, `{"value":"v","options":{"expiresOn":"2099-01-01T00:00:00z"}}`, 400, "options.expiresOn"},
		{"ExpiresOnOffset24", json, `{"value":"v","options":{"expiresOn":"2099-01-01T00:00:00+24:00"}}`, 400, "options.expiresOn"},
		{"ExpiresOnOffsetMinutes60", json, `{"value":"v","options":{"expiresOn":"2099-01-01T00:00:00+01:60"}}`, 400, "options.expiresOn"},
		{"ExpiresOnOffsetWithoutColon", json, `{"value":"v","options":{"expiresOn":"2099-01-01T00:00:00+0100"}}`, 400, "options.expiresOn"},
		{"ExpiresOnFebruary30", json, `{"value":"v","options":{"expiresOn":"2025-02-30T00:00:00Z"}}`, 400, "options.expiresOn"},
		{"ExpiresOnFebruary29NonLeap", json, `{"value":"v","options":{"expiresOn":"2100-02-29T00:00:00Z"}}`, 400, "options.expiresOn"},
		{"ExpiresOnApril31", json, `{"value":"v","options":{"expiresOn":"2099-04-31T00:00:00Z"}}`, 400, "options.expiresOn"},
		{"ExpiresOnMonth13", json, `{"value":"v","options":{"expiresOn":"2099-13-01T00:00:00Z"}}`, 400, "options.expiresOn"},
		{"ExpiresOnHour24", json, `{"value":"v","options":{"expiresOn":"2099-01-01T24:00:00Z"}}`, 400, "options.expiresOn"},
		{"ExpiresOnMinute60", json, `{"value":"v","options":{"expiresOn":"2099-01-01T00:60:00Z"}}`, 400, "options.expiresOn"},
		{"ExpiresOnLeapSecond", json, `{"value":"v","options":{"expiresOn":"2016-12-31T23:59:60Z"}}`, 400, "options.expiresOn"},
		{"ExpiresOnEmptyFraction", json, `{"value":"v","options":{"expiresOn":"2099-01-01T00:00:00.Z"}}`, 400, "options.expiresOn"},
		{"ExpiresOnCommaFraction", json, `{"value":"v","options":{"expiresOn":"2099-01-01T00:00:00,5Z"}}`, 400, "options.expiresOn"},
		{"ExpiresOnYear0", json, `{"value":"v","options":{"expiresOn":"0000-01-01T00:00:00Z"}}`, 400, "options.expiresOn"},
		{"ExpiresOnBeforeYear1InUTC", json, `{"value":"v","options":{"expiresOn":"0001-01-01T00:00:00+01:00"}}`, 400, "options.expiresOn"},
		{"ExpiresOnAfterYear9999InUTC", json, `{"value":"v","options":{"expiresOn":"9999-12-31T23:00:00-01:00"}}`, 400, "options.expiresOn"},
		{"ExpiresOnFiveDigitYear", json, `{"value":"v","options":{"expiresOn":"+12025-01-01T00:00:00Z"}}`, 400, "options.expiresOn"},
		{"ExpiresOnUnixTimeString", json, `{"value":"v","options":{"expiresOn":"1767225600"}}`, 400, "options.expiresOn"},
		{"NotBeforeNoOffset", json, `{"value":"v","options":{"notBefore":"2099-01-01T00:00:00"}}`, 400, "options.notBefore"},
		{"NotBeforeObject", json, `{"value":"v","options":{"notBefore":{}}}`, 400, "options.notBefore"},
		{"ExpiresOnBeforeNotBefore", json, `{"value":"v","options":{"notBefore":"2099-01-02T00:00:00Z","expiresOn":"2099-01-01T00:00:00Z"}}`, 400, "options.expiresOn"},
		{"ExpiresOnEqualsNotBefore", json, `{"value":"v","options":{"notBefore":"2099-01-01T01:00:00+01:00","expiresOn":"2099-01-01T00:00:00Z"}}`, 400, "options.expiresOn"},
		// Sizes (the limit is 64 KiB here).
		{"ValueOverLimit", json, `{"value":"` + strings.Repeat("x", 64<<10+1) + `"}`, 413, ""},
		{"ValueOverLimitEscaped", json, `{"value":"` + strings.Repeat(`\u00e9`, 32<<10+1) + `"}`, 413, ""},
		{"BodyOverLimit", json, `{"value":"v"}` + strings.Repeat(" ", 1<<20), 413, ""},
		// An empty window is reported before a value over its limit.
		{"EmptyWindowAndValueOverLimit", json, `{"value":"` + strings.Repeat("x", 64<<10+1) + `","options":{"notBefore":"2099-01-02T00:00:00Z","expiresOn":"2099-01-01T00:00:00Z"}}`, 400, "options.expiresOn"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			h := authRW()
			if tt.ct != "" {
				h.Set("Content-Type", tt.ct)
			}
			resp := f.do(t, request{method: "PUT", target: "/api/demo/secrets/k", body: tt.body, header: h})
			raw := readBody(t, resp)
			p := decodeProblem(t, resp, tt.status)
			if tt.field == "" {
				if p.Errors != nil {
					t.Errorf("errors = %v, want none", p.Errors)
				}
			} else if msgs := p.Errors[tt.field]; len(p.Errors) != 1 || len(msgs) != 1 || msgs[0] == "" {
				t.Errorf("errors = %v, want one message for %q", p.Errors, tt.field)
			}
			// Messages are fixed sentences: none quotes the input but for
			// the name of an unknown property (TestPut_UnknownPropertyNamed).
			for _, probe := range []string{"crimson", "never", "tomorrow", "2099-", "\\u00e9"} {
				if strings.Contains(tt.body, probe) && strings.Contains(raw, probe) {
					t.Errorf("body %s quotes the input %q", raw, probe)
				}
			}
			// Nothing was stored.
			resp = f.do(t, request{method: "GET", target: "/api/demo/secrets", header: authRW()})
			if got := readBody(t, resp); got != "[]" {
				t.Errorf("list after a refused PUT = %s, want []", got)
			}
		})
	}
}

// TestPut_UnknownPropertyNamed: an unknown property is named as ASP.NET Core
// with System.Text.Json names it, by its JSON path and in the message, with
// the client's name clipped and escaped.
func TestPut_UnknownPropertyNamed(t *testing.T) {
	const json = "application/json"
	mapped := func(name, typ string) string {
		return "The JSON property '" + name + "' could not be mapped to any .NET member contained in type '" + typ + "'."
	}
	long := strings.Repeat("a", 100)
	tests := []struct {
		name, body, key, message string
	}{
		{"TopLevel", `{"value":"v","colour":"red"}`, "$.colour", mapped("colour", "SetRequest")},
		{"InOptions", `{"value":"v","options":{"ttl":60}}`, "$.options.ttl", mapped("ttl", "OptionsRequest")},
		{"EscapedName", `{"value":"v","c\u006flour":1}`, "$.colour", mapped("colour", "SetRequest")},
		{"SpecialCharacters", `{"value":"v","a b":1}`, "$['a b']", mapped("a b", "SetRequest")},
		{"Quote", `{"value":"v","it's":1}`, `$['it\'s']`, mapped("it's", "SetRequest")},
		{"Long", `{"value":"v","` + long + `":1}`, "$." + long[:64] + "…", mapped(long[:64]+"…", "SetRequest")},
		{"ControlCharacters", `{"value":"v","\u001b[31mred\nx":1}`, `$['\u001B[31mred\u000Ax']`, mapped(`\u001B[31mred\u000Ax`, "SetRequest")},
		{"Unprintable", `{"value":"v","a\u200bb":1}`, `$.a\u200Bb`, mapped(`a\u200Bb`, "SetRequest")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			h := authRW()
			h.Set("Content-Type", json)
			resp := f.do(t, request{method: "PUT", target: "/api/demo/secrets/k", body: tt.body, header: h})
			raw := readBody(t, resp)
			p := decodeProblem(t, resp, 400)
			if msgs := p.Errors[tt.key]; len(p.Errors) != 1 || len(msgs) != 1 || msgs[0] != tt.message {
				t.Errorf("errors = %q, want {%q: [%q]}", p.Errors, tt.key, tt.message)
			}
			if strings.ContainsAny(raw, "\x1b\n") {
				t.Errorf("body carries a raw control character: %q", raw)
			}
		})
	}
}

// TestSecrets_Concurrent runs many clients at once against one server; run
// with -race it checks the pooled buffers and shared state.
func TestSecrets_Concurrent(t *testing.T) {
	f := newFixture(t)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 10 {
				key := fmt.Sprintf("k-%d-%d", g, i)
				value := strings.Repeat(fmt.Sprintf("value %d %d é ", g, i), 1+i*50)
				body, _ := json.Marshal(map[string]string{"value": value})
				resp := f.do(t, request{method: "PUT", target: "/api/demo/secrets/" + key, body: string(body), header: authRW("Content-Type", "application/json")})
				if resp.StatusCode != http.StatusNoContent {
					t.Errorf("PUT %s: status %d", key, resp.StatusCode)
					return
				}
				for _, accept := range []string{"text/plain", "application/json"} {
					resp = f.do(t, request{method: "GET", target: "/api/demo/secrets/" + key, header: authRW("Accept", accept)})
					got := readBody(t, resp)
					if accept == "application/json" {
						var s string
						if err := json.Unmarshal([]byte(got), &s); err != nil {
							t.Errorf("GET %s as JSON: %v", key, err)
						}
						got = s
					}
					if got != value {
						t.Errorf("GET %s (%s) returned another value (%d bytes, want %d)", key, accept, len(got), len(value))
					}
				}
			}
		})
	}
	wg.Wait()
	resp := f.do(t, request{method: "GET", target: "/api/demo/secrets", header: authRW()})
	var keys []string
	if err := json.Unmarshal([]byte(readBody(t, resp)), &keys); err != nil || len(keys) != 80 {
		t.Errorf("list has %d keys (%v), want 80", len(keys), err)
	}
}

// TestSecrets_ValuesNeverLogged plants a recognisable value and looks for
// it in the log of a debug-level server after every kind of request.
func TestSecrets_ValuesNeverLogged(t *testing.T) {
	const planted = "PLANTED-7f3a9c-secret"
	f := newFixture(t)
	f.put(t, "k", `{"value":"`+planted+`"}`)
	f.do(t, request{method: "GET", target: "/api/demo/secrets/k", header: authRW()})
	f.do(t, request{method: "GET", target: "/api/demo/secrets/k", header: authRW("Accept", "application/json")})
	f.do(t, request{method: "PUT", target: "/api/demo/secrets/k", body: `{"value":"` + planted + `","x":1}`, header: authRW("Content-Type", "application/json")})
	f.do(t, request{method: "PUT", target: "/api/demo/secrets/k", body: `{"value":"` + planted + `"}`, header: authRW("Content-Type", "text/plain")})
	f.do(t, request{method: "PUT", target: "/api/demo/secrets/k", body: `{"value":"` + planted + `"}`, header: hdr("X-API-KEY", keyDemoRead, "Content-Type", "application/json")})
	if logs := f.logs.String(); strings.Contains(logs, planted) || strings.Contains(logs, "PLANTED") {
		t.Errorf("the log contains the secret value:\n%s", logs)
	}
}

// maxWriteRecorder records the largest single Write of a response.
type maxWriteRecorder struct {
	*httptest.ResponseRecorder
	maxWrite int
}

func (w *maxWriteRecorder) Write(b []byte) (int, error) {
	w.maxWrite = max(w.maxWrite, len(b))
	return w.ResponseRecorder.Write(b)
}

// putRaw stores n keys of about 100 bytes each under tenant demo straight
// into the store, several at once; listing does not open them.
func putRaw(t *testing.T, store neostore.SecretStore, n int) []string {
	t.Helper()
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s-%05d", strings.Repeat("k", 100), i)
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				if err := store.PutSecret(t.Context(), "demo", keys[i], neostore.SealedSecret{Ciphertext: []byte("v")}, neostore.Change{}); err != nil {
					t.Errorf("PutSecret: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	return keys
}

// A large list is written out in bounded pieces as it is read from the
// store, not built whole, and the bytes are those of the whole array.
func TestSecrets_ListLargeIsStreamed(t *testing.T) {
	store := openStore(t)
	f := newFixtureOn(t, store)
	keys := putRaw(t, store, 2500) // three chunks of the store, about 270 KB of JSON
	want, err := json.Marshal(keys)
	if err != nil {
		t.Fatal(err)
	}
	rec := &maxWriteRecorder{ResponseRecorder: httptest.NewRecorder()}
	f.handler.ServeHTTP(rec, request{method: "GET", target: "/api/demo/secrets", header: authRW()}.build())
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json; charset=utf-8" {
		t.Fatalf("status %d, Content-Type %q; want 200 application/json", rec.Code, rec.Header().Get("Content-Type"))
	}
	if !bytes.Equal(rec.Body.Bytes(), want) {
		t.Errorf("the streamed list is not the JSON array of the %d keys (got %d bytes, want %d)", len(keys), rec.Body.Len(), len(want))
	}
	if rec.maxWrite > 40<<10 {
		t.Errorf("the largest write of the list was %d bytes, want the list in pieces of about 32 KiB", rec.maxWrite)
	}
}

// failAfter fails ListSecretKeysAfter once it has answered n calls: a store
// that breaks in the middle of a listing.
type failAfter struct {
	neostore.Store
	mu sync.Mutex
	n  int
}

func (s *failAfter) ListSecretKeysAfter(ctx context.Context, tenant, after string, limit int) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == 0 {
		return nil, errors.New("bolt: disk on fire")
	}
	s.n--
	return s.Store.ListSecretKeysAfter(ctx, tenant, after, limit)
}

// A store failure after the status went out aborts the connection, so the
// client cannot take a truncated array for the whole list; one before
// anything was sent is a 500 problem.
func TestSecrets_ListStoreFailsMidway(t *testing.T) {
	store := openStore(t)
	putRaw(t, store, 2500)
	keysetJSON, err := envelope.NewMasterKeyset()
	if err != nil {
		t.Fatal(err)
	}
	master, err := envelope.ParseMaster(keysetJSON)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		calls int
	}{{"BeforeTheFirstPart", 0}, {"AfterTheFirstPart", 1}} {
		t.Run(tt.name, func(t *testing.T) {
			failing := &failAfter{Store: store, n: tt.calls}
			logs := &lockedBuffer{}
			secrets := neostore.NewSecretService(failing, envelope.NewSealer(master, failing), time.Now)
			h := httpapi.NewServer(httpapi.Config{Logger: slog.New(slog.NewJSONHandler(logs, nil))}, secrets, testAPIKeys(), nil)
			srv := httptest.NewServer(h)
			defer srv.Close()
			req, _ := http.NewRequest("GET", srv.URL+"/api/demo/secrets", nil)
			req.Header.Set("X-API-KEY", keyDemoRW)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, readErr := io.ReadAll(resp.Body)
			if tt.calls == 0 {
				if resp.StatusCode != 500 || readErr != nil || strings.Contains(string(body), "fire") {
					t.Errorf("got %d %s (%v), want a 500 problem that names no cause", resp.StatusCode, body, readErr)
				}
				return
			}
			if resp.StatusCode != 200 || readErr == nil {
				t.Fatalf("got %d, read error %v; want 200 and a body cut off", resp.StatusCode, readErr)
			}
			if json.Valid(body) {
				t.Errorf("the cut-off body is valid JSON")
			}
			if !strings.Contains(logs.String(), "aborting the response") || !strings.Contains(logs.String(), "disk on fire") {
				t.Errorf("the abort is not logged with its cause:\n%s", logs.String())
			}
		})
	}
}
