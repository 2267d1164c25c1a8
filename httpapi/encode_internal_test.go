package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/neostore/neostore-secrets"
)

// TestAppendJSONString pins the output of System.Text.Json's default
// encoder (JavaScriptEncoder.Default), which ASP.NET Core uses for values
// and problem details.
func TestAppendJSONString(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", `""`},
		{"hunter2", `"hunter2"`},
		{"with space and ~!@#$%^*()_=-[]{}|;:,./?", `"with space and ~!@#$%^*()_=-[]{}|;:,./?"`},
		{`"`, `"\u0022"`},
		{`'`, `"\u0027"`},
		{`&`, `"\u0026"`},
		{`<`, `"\u003C"`},
		{`>`, `"\u003E"`},
		{`+`, `"\u002B"`},
		{"`", `"\u0060"`},
		{`\`, `"\\"`},
		{"/", `"/"`},
		{"\n\r\t\b\f", `"\n\r\t\b\f"`},
		{"\x00", `"\u0000"`},
		{"\x01\x1f", `"\u0001\u001F"`},
		{"\x7f", `"\u007F"`},
		{"é", `"\u00E9"`},
		{"\u0080", `"\u0080"`},
		{"€", `"\u20AC"`},
		{"\uFFFD", `"\uFFFD"`},
		{"\uFEFF", `"\uFEFF"`},
		{"😀", `"\uD83D\uDE00"`},
		{"\U0010FFFF", `"\uDBFF\uDFFF"`},
		{"\U00010000", `"\uD800\uDC00"`},
		{"a\xffb", `"a\uFFFDb"`},                 // not UTF-8
		{"\xed\xa0\x80", `"\uFFFD\uFFFD\uFFFD"`}, // an encoded surrogate is not UTF-8
		{"\xc0\xaf", `"\uFFFD\uFFFD"`},           // overlong
		{"<script>alert('x')</script>", `"\u003Cscript\u003Ealert(\u0027x\u0027)\u003C/script\u003E"`},
		{"mixed é and \"q\" \\ end", `"mixed \u00E9 and \u0022q\u0022 \\ end"`},
	}
	for _, tt := range tests {
		if got := string(appendJSONString(nil, tt.in)); got != tt.want {
			t.Errorf("appendJSONString(%q) = %s, want %s", tt.in, got, tt.want)
		}
		if got := string(appendJSONString(nil, []byte(tt.in))); got != tt.want {
			t.Errorf("appendJSONString([]byte(%q)) = %s, want %s", tt.in, got, tt.want)
		}
		if got := string(appendJSONString([]byte("prefix"), tt.in)); got != "prefix"+tt.want {
			t.Errorf("appendJSONString appends: got %s", got)
		}
	}
}

// FuzzAppendJSONString: the output is always valid JSON, pure ASCII, and
// decodes back to the input when the input is UTF-8.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "a\"b", "é😀", "\x00\x7f", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := appendJSONString(nil, []byte(in))
		for _, c := range out {
			if c >= utf8.RuneSelf || c < 0x20 {
				t.Fatalf("output %q has a non-printable or non-ASCII byte", out)
			}
		}
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("output %s is not a JSON string: %v", out, err)
		}
		if utf8.ValidString(in) && back != in {
			t.Fatalf("round trip of %q gave %q", in, back)
		}
	})
}

func TestDecodeRune_MatchesUTF8(t *testing.T) {
	inputs := []string{"a", "é", "€", "😀", "\xff", "\xc0\xaf", "\xe0\x80\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xf0\x9f\x98", "\xe2\x82", "\xc3"}
	for _, in := range inputs {
		r, n := decodeRune(in, 0)
		wr, wn := utf8.DecodeRuneInString(in)
		if r != wr || n != wn {
			t.Errorf("decodeRune(%q) = %U, %d; want %U, %d", in, r, n, wr, wn)
		}
	}
	// Every 1-, 2- and 3-byte prefix over a sample of lead bytes.
	for a := 0x80; a < 0x100; a++ {
		for _, b := range []byte{0x00, 0x7f, 0x80, 0x9f, 0xa0, 0xbf, 0xc0} {
			for _, c := range []byte{0x80, 0xbf, 0x41} {
				for _, d := range []byte{0x80, 0xbf, 0x41} {
					in := []byte{byte(a), b, c, d}
					r, n := decodeRune(in, 0)
					wr, wn := utf8.DecodeRune(in)
					if r != wr || n != wn {
						t.Fatalf("decodeRune(% x) = %U, %d; want %U, %d", in, r, n, wr, wn)
					}
				}
			}
		}
	}
}

func TestAppendJSONStringArray(t *testing.T) {
	tests := []struct {
		in   []string
		want string
	}{
		{nil, `[]`},
		{[]string{}, `[]`},
		{[]string{"a"}, `["a"]`},
		{[]string{"a", "B-2", "c"}, `["a","B-2","c"]`},
	}
	for _, tt := range tests {
		if got := string(appendJSONStringArray(nil, tt.in)); got != tt.want {
			t.Errorf("appendJSONStringArray(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestParseDateTime(t *testing.T) {
	utc := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm.UTC()
	}
	valid := []struct {
		in   string
		want time.Time
	}{
		{"2025-01-31T23:59:59Z", utc("2025-01-31T23:59:59Z")},
		{"2025-01-31T23:59:59+01:00", utc("2025-01-31T22:59:59Z")},
		{"2025-01-31T23:59:59-05:30", utc("2025-02-01T05:29:59Z")},
		{"2025-01-31T23:59:59+00:00", utc("2025-01-31T23:59:59Z")},
		{"2025-01-31T23:59:59-00:00", utc("2025-01-31T23:59:59Z")},
		{"2025-01-31T23:59:59+23:59", utc("2025-01-31T00:00:59Z")},
		{"2025-01-31T23:59:59.5Z", utc("2025-01-31T23:59:59.5Z")},
		{"2025-01-31T23:59:59.123456789Z", utc("2025-01-31T23:59:59.123456789Z")},
		{"2025-01-31T23:59:59.1234567891234Z", utc("2025-01-31T23:59:59.123456789Z")}, // truncated
		{"2024-02-29T00:00:00Z", utc("2024-02-29T00:00:00Z")},
		{"2000-02-29T00:00:00Z", utc("2000-02-29T00:00:00Z")},
		{"0001-01-01T00:00:00Z", time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"0001-01-01T01:00:00+01:00", time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"9999-12-31T23:59:59.999999999Z", time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)},
	}
	for _, tt := range valid {
		got, ok := parseDateTime([]byte(tt.in))
		if !ok || !got.Equal(tt.want) || got.Location() != time.UTC {
			t.Errorf("parseDateTime(%q) = %v, %v; want %v, true", tt.in, got, ok, tt.want)
		}
	}
	invalid := []string{
		"", "2025", "2025-01-31", "2025-01-31T23:59:59", "2025-01-31T23:59Z", "2025-01-31 23:59:59Z",
		"2025-01-31t23:59:59Z", "2025-01-31T23:59:59z", "2025-01-31T23:59:59+24:00", "2025-01-31T23:59:59+01:60",
		"2025-01-31T23:59:59+0100", "2025-01-31T23:59:59+01", "2025-01-31T23:59:59 +01:00", "2025-01-31T23:59:59Z ",
		"2025-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2025-02-30T00:00:00Z", "2025-04-31T00:00:00Z",
		"2025-00-01T00:00:00Z", "2025-13-01T00:00:00Z", "2025-01-00T00:00:00Z", "2025-01-32T00:00:00Z",
		"2025-01-31T24:00:00Z", "2025-01-31T23:60:00Z", "2025-12-31T23:59:60Z", "2025-01-31T23:59:59.Z",
		"2025-01-31T23:59:59,5Z", "0000-01-01T00:00:00Z", "0001-01-01T00:00:00+00:01", "9999-12-31T23:59:59-00:01",
		"20250-01-31T23:59:59Z", "-2025-01-31T23:59:59Z", "2025-1-31T23:59:59Z", "2025-01-31T23:59:59ZZ",
		"2025-01-31T23:59:59+1:00", "2025-01-31T23:59:59+01:0", "２０２５-01-31T23:59:59Z", "2025-01-31T23:59:59.１Z",
		"2025-01-31T23:59:59.5", "2025-01-31T23:59:59GMT", "2025-01-31T23:59:59UTC",
	}
	for _, in := range invalid {
		if got, ok := parseDateTime([]byte(in)); ok {
			t.Errorf("parseDateTime(%q) = %v, true; want false", in, got)
		}
	}
}

// FuzzParseDateTime: whatever parses is UTC, within years 1 to 9999, and
// agrees with time.Parse on the same text.
func FuzzParseDateTime(f *testing.F) {
	for _, s := range []string{"2025-01-31T23:59:59Z", "2025-01-31T23:59:59.5+01:00", "0001-01-01T00:00:00Z", "2025-02-30T00:00:00Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, ok := parseDateTime([]byte(in))
		if !ok {
			return
		}
		if got.Location() != time.UTC || got.Year() < 1 || got.Year() > 9999 {
			t.Fatalf("parseDateTime(%q) = %v", in, got)
		}
		want, err := time.Parse(time.RFC3339Nano, in)
		if err != nil {
			t.Fatalf("parseDateTime accepted %q, time.Parse refuses it: %v", in, err)
		}
		if !want.Equal(got) && len(in) <= len("2006-01-02T15:04:05.999999999-07:00") {
			t.Fatalf("parseDateTime(%q) = %v, time.Parse = %v", in, got, want)
		}
	})
}

func TestDecodeSetRequest(t *testing.T) {
	year1 := neostore.At(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC))
	tests := []struct {
		body     string
		value    string
		validity neostore.Validity
	}{
		{`{"value":"v"}`, "v", neostore.Validity{}},
		{`{"value":"v","options":null}`, "v", neostore.Validity{}},
		{`{"value":"v","options":{"expiresOn":null}}`, "v", neostore.Validity{}},
		{`{"value":"v","options":{"expiresOn":"0001-01-01T00:00:00Z"}}`, "v", neostore.Validity{ExpiresOn: year1}},
		{`{"value":"v","options":{"notBefore":"0001-01-01T00:00:00Z"}}`, "v", neostore.Validity{NotBefore: year1}},
		{`{"Value":"v","OPTIONS":{"NotBefore":"2025-01-01T01:00:00+01:00","expireson":"2025-01-02T00:00:00Z"}}`, "v", neostore.Validity{
			NotBefore: neostore.At(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)),
			ExpiresOn: neostore.At(time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC)),
		}},
		{`{"value":"\u0041\u00e9\ud83d\ude00\/"}`, "Aé😀/", neostore.Validity{}},
	}
	for _, tt := range tests {
		got, err := decodeSetRequest([]byte(tt.body))
		if err != nil {
			t.Errorf("decodeSetRequest(%s): %v", tt.body, err)
			continue
		}
		if string(got.value) != tt.value || got.validity != tt.validity {
			t.Errorf("decodeSetRequest(%s) = %q, %+v; want %q, %+v", tt.body, got.value, got.validity, tt.value, tt.validity)
		}
	}
}

// FuzzDecodeSetRequest: never panics; whatever it accepts is a JSON object
// that encoding/json also reads, with the same value.
func FuzzDecodeSetRequest(f *testing.F) {
	for _, s := range []string{`{"value":"v"}`, `{"value":"\ud83d\ude00","options":{"expiresOn":"2025-01-01T00:00:00Z"}}`, `{"VALUE":"v","options":null}`, `{"value":"v"}x`, `{`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeSetRequest(body)
		if err != nil {
			if neostore.ErrorCode(err) != neostore.EINVALID || len(neostore.ErrorFields(err)) != 1 {
				t.Fatalf("decodeSetRequest(%q) error %v is not one EINVALID field", body, err)
			}
			return
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(body[len(body)-len(strings.TrimPrefix(string(body), "\uFEFF")):], &m); err != nil {
			t.Fatalf("decodeSetRequest accepted %q, encoding/json refuses it: %v", body, err)
		}
		if len(req.value) == 0 {
			t.Fatalf("decodeSetRequest(%q) accepted an empty value", body)
		}
		for k, raw := range m {
			if strings.EqualFold(k, "value") {
				var v string
				if err := json.Unmarshal(raw, &v); err != nil || v != string(req.value) {
					t.Fatalf("value of %q = %q, encoding/json says %q (%v)", body, req.value, v, err)
				}
			}
		}
	})
}

func TestJSONContentType(t *testing.T) {
	tests := []struct {
		values []string
		ok     bool
	}{
		{[]string{"application/json"}, true},
		{[]string{"text/json"}, true},
		{[]string{"application/merge-patch+json"}, true},
		{[]string{"APPLICATION/JSON; CHARSET=UTF-8"}, true},
		{[]string{"application/json; charset=utf-8; foo=bar"}, true},
		{nil, false},
		{[]string{""}, false},
		{[]string{"application/json", "application/json"}, false},
		{[]string{"application/+json"}, false},
		{[]string{"application/jsonx"}, false},
		{[]string{"text/plain"}, false},
		{[]string{"text/x+json"}, false},
		{[]string{"application/json; charset=latin1"}, false},
		{[]string{"application/json; charset=utf8"}, false},
		{[]string{"application/json;"}, true},
		{[]string{"application/json; charset"}, false},
	}
	for _, tt := range tests {
		if got := jsonContentType(tt.values); got != tt.ok {
			t.Errorf("jsonContentType(%q) = %v, want %v", tt.values, got, tt.ok)
		}
	}
}

func TestNegotiate(t *testing.T) {
	value := []mediaType{textPlain, applicationJSON, textJSON}
	list := []mediaType{applicationJSON, textJSON}
	tests := []struct {
		accept   []string
		produces []mediaType
		want     mediaType
	}{
		{nil, value, textPlain},
		{nil, list, applicationJSON},
		{[]string{"application/json, text/plain, */*"}, value, textPlain},
		{[]string{"application/json, text/plain, */*"}, list, applicationJSON},
		{[]string{"text/json"}, value, textJSON},
		{[]string{"text/json"}, list, textJSON},
		{[]string{"text/plain"}, list, applicationJSON},
		{[]string{"application/xml"}, value, textPlain},
		{[]string{"application/xml"}, list, applicationJSON},
		{[]string{"text/plain; q=0.1, application/json; q=0.2, text/json; q=0.2"}, value, applicationJSON},
		{[]string{"text/plain;q=0"}, value, textPlain}, // nothing acceptable: the default anyway
		{[]string{"text/plain;q=0, text/json"}, value, textJSON},
		{[]string{"application/json;q=1.0"}, value, applicationJSON},
		{[]string{"application/json;q=1.5, text/json"}, value, textJSON},
		{[]string{"application/json;q=abc, text/json"}, value, textJSON},
		{[]string{"application/json; charset=utf-8"}, value, textPlain},
		{[]string{"application/json; charset=utf-8; q=1, text/json"}, value, textJSON},
		{[]string{"application/json; q=0.5; charset=utf-8, text/json;q=0.4"}, value, applicationJSON}, // after q: accept-ext
		{[]string{`text/x;a="b,c", application/json`}, value, applicationJSON},
		{[]string{"*/json"}, value, applicationJSON},
		{[]string{"text/*"}, list, textJSON},
		{[]string{"application/*;q=0.5, text/plain"}, value, textPlain},
		{[]string{" application/json ,text/json"}, value, applicationJSON},
		{[]string{",,application/json,,"}, value, applicationJSON},
		{[]string{"application/"}, value, textPlain},
		{[]string{"/json"}, value, textPlain},
		{[]string{"application json"}, value, textPlain},
	}
	for _, tt := range tests {
		if got := negotiate(tt.accept, tt.produces); got != tt.want {
			t.Errorf("negotiate(%q, %v) = %v, want %v", tt.accept, tt.produces, got, tt.want)
		}
	}
}

func TestNegotiate_DoesNotAllocate(t *testing.T) {
	accept := []string{"text/plain;q=0.5, application/json;q=0.9, text/json;q=0.9"}
	value := []mediaType{textPlain, applicationJSON, textJSON}
	if n := testing.AllocsPerRun(100, func() { negotiate(accept, value) }); n != 0 {
		t.Errorf("negotiate allocates %v times, want 0", n)
	}
}

func testRequest(method string) *http.Request {
	r := httptest.NewRequest(method, "/x", nil)
	st := &requestState{flags: 1}
	for i := range st.traceIDBytes {
		st.traceIDBytes[i] = byte(i + 1)
	}
	for i := range st.spanID {
		st.spanID[i] = byte(0xa0 + i)
	}
	return r.WithContext(context.WithValue(r.Context(), requestStateKey{}, st))
}

const testTraceID = "00-0102030405060708090a0b0c0d0e0f10-a0a1a2a3a4a5a6a7-01"

func TestProblem_Bytes(t *testing.T) {
	tests := []struct {
		name   string
		status int
		detail string
		fields map[string][]string
		want   string
	}{
		{"ValidationFieldsSorted", 400, "", map[string][]string{"value": {"b"}, "$": {"a <"}, "options.expiresOn": {"c", "d"}},
			`{"type":"https://tools.ietf.org/html/rfc9110#section-15.5.1","title":"One or more validation errors occurred.","status":400,"errors":{"$":["a \u003C"],"options.expiresOn":["c","d"],"value":["b"]},"traceId":"` + testTraceID + `"}`},
		{"Detail", 413, "The value is larger than 8 bytes.", nil,
			`{"type":"https://tools.ietf.org/html/rfc9110#section-15.5.14","title":"Content Too Large","status":413,"detail":"The value is larger than 8 bytes.","traceId":"` + testTraceID + `"}`},
		{"Unauthorized", 401, "", nil,
			`{"type":"https://tools.ietf.org/html/rfc9110#section-15.5.2","title":"Unauthorized","status":401,"traceId":"` + testTraceID + `"}`},
		{"Forbidden", 403, "", nil,
			`{"type":"https://tools.ietf.org/html/rfc9110#section-15.5.4","title":"Forbidden","status":403,"traceId":"` + testTraceID + `"}`},
		{"MethodNotAllowed", 405, "", nil,
			`{"type":"https://tools.ietf.org/html/rfc9110#section-15.5.6","title":"Method Not Allowed","status":405,"traceId":"` + testTraceID + `"}`},
		{"UnsupportedMediaType", 415, "", nil,
			`{"type":"https://tools.ietf.org/html/rfc9110#section-15.5.16","title":"Unsupported Media Type","status":415,"traceId":"` + testTraceID + `"}`},
		{"Internal", 500, "", nil,
			`{"type":"https://tools.ietf.org/html/rfc9110#section-15.6.1","title":"An error occurred while processing your request.","status":500,"traceId":"` + testTraceID + `"}`},
		{"Unavailable", 503, "", nil,
			`{"type":"https://tools.ietf.org/html/rfc9110#section-15.6.4","title":"Service Unavailable","status":503,"traceId":"` + testTraceID + `"}`},
	}
	out := newResponder(slog.New(slog.DiscardHandler))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			out.problem(rec, testRequest("GET"), tt.status, tt.detail, tt.fields)
			if rec.Code != tt.status {
				t.Errorf("status = %d, want %d", rec.Code, tt.status)
			}
			if got := rec.Body.String(); got != tt.want {
				t.Errorf("body =\n%s\nwant\n%s", got, tt.want)
			}
			if got, want := rec.Header().Get("Content-Type"), "application/problem+json; charset=utf-8"; got != want {
				t.Errorf("Content-Type = %q, want %q", got, want)
			}
		})
	}
}

// TestResponder_Error maps each error code to its status, and shows the
// client only what the code allows.
func TestResponder_Error(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		status     int
		detail     string
		fields     bool
		retryAfter bool
	}{
		{"InvalidWithField", neostore.FieldError("key", "Bad key."), 400, "", true, false},
		{"InvalidWithoutField", neostore.Errorf(neostore.EINVALID, "Bad request."), 400, "Bad request.", false, false},
		{"Unauthenticated", neostore.Errorf(neostore.EUNAUTHENTICATED, "who?"), 401, "", false, false},
		{"Forbidden", neostore.Errorf(neostore.EFORBIDDEN, "no"), 403, "", false, false},
		{"NotFound", neostore.Errorf(neostore.ENOTFOUND, "Secret not found."), 404, "", false, false},
		{"TooLarge", neostore.Errorf(neostore.ETOOLARGE, "Too large."), 413, "Too large.", false, false},
		{"UnsupportedMedia", neostore.Errorf(neostore.EUNSUPPORTEDMEDIA, "JSON only."), 415, "", false, false},
		{"Unavailable", fmt.Errorf("bolt: %w", neostore.Errorf(neostore.EUNAVAILABLE, "Store down.")), 503, "", false, true},
		{"Internal", neostore.Errorf(neostore.EINTERNAL, "bug"), 500, "", false, false},
		{"PlainError", errors.New("disk on fire at /var/lib/x"), 500, "", false, false},
	}
	var logs strings.Builder
	out := newResponder(slog.New(slog.NewTextHandler(&logs, nil)))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			out.error(rec, testRequest("GET"), tt.err)
			if rec.Code != tt.status {
				t.Errorf("status = %d, want %d", rec.Code, tt.status)
			}
			var p struct {
				Detail string
				Errors map[string][]string
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatal(err)
			}
			if p.Detail != tt.detail || (p.Errors != nil) != tt.fields {
				t.Errorf("detail = %q, errors = %v; want %q, errors %v", p.Detail, p.Errors, tt.detail, tt.fields)
			}
			if got := rec.Header().Get("Retry-After") != ""; got != tt.retryAfter {
				t.Errorf("Retry-After present = %v, want %v", got, tt.retryAfter)
			}
		})
	}
	if !strings.Contains(logs.String(), "disk on fire") || !strings.Contains(logs.String(), testTraceID) {
		t.Errorf("internal error not logged with its traceId:\n%s", logs.String())
	}
}

// FuzzParseTraceparent: whatever is accepted has the W3C shape and ids
// that are not all zero, and the trace-id is the one in the header.
func FuzzParseTraceparent(f *testing.F) {
	for _, s := range []string{"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		trace, flags, ok := parseTraceparent(in)
		if !ok {
			if trace != [16]byte{} || flags != 0 {
				t.Fatalf("parseTraceparent(%q) returned values without ok", in)
			}
			return
		}
		if len(in) < 55 || trace == [16]byte{} || strings.HasPrefix(in, "ff") {
			t.Fatalf("parseTraceparent(%q) accepted it", in)
		}
		if got := fmt.Sprintf("%x", trace[:]); got != in[3:35] {
			t.Fatalf("trace-id = %s, header says %s", got, in[3:35])
		}
		if got := fmt.Sprintf("%02x", flags); got != in[53:55] {
			t.Fatalf("flags = %s, header says %s", got, in[53:55])
		}
	})
}

// FuzzNegotiate: never panics, and always answers with a producible type.
func FuzzNegotiate(f *testing.F) {
	for _, s := range []string{"application/json, text/plain, */*", "text/json;q=0.5", `a/b;c="d,e", text/*`, ";;,,q=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, accept string) {
		for _, produces := range [][]mediaType{{textPlain, applicationJSON, textJSON}, {applicationJSON, textJSON}} {
			got := negotiate([]string{accept}, produces)
			found := false
			for _, m := range produces {
				found = found || m == got
			}
			if !found {
				t.Fatalf("negotiate(%q) = %v, not among %v", accept, got, produces)
			}
		}
	})
}
