package httpapi_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	valerrors "github.com/pb33f/libopenapi-validator/errors"
)

// loadContract builds one validator from httpapi/openapi.json for the
// whole test binary; building it compiles every schema.
var loadContract = sync.OnceValues(func() (validator.Validator, error) {
	spec, err := os.ReadFile("openapi.json")
	if err != nil {
		return nil, err
	}
	doc, err := libopenapi.NewDocument(spec)
	if err != nil {
		return nil, err
	}
	v, errs := validator.NewValidator(doc, config.WithFormatAssertions())
	if len(errs) > 0 {
		return nil, fmt.Errorf("build validator: %v", errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		return nil, fmt.Errorf("openapi.json is not a valid OpenAPI document: %s", describe(verrs))
	}
	return v, nil
})

// contractMu serialises validation: the validator's caches are shared.
var contractMu sync.Mutex

// contractRecorder validates every exchange of a test against openapi.json
// when the test ends. Responses of documented operations are always
// validated. Requests are validated when the API accepted them (2xx),
// unless the test marked them offSpec: a request the API refuses is often
// refused precisely because it breaks the contract. Exchanges outside the
// document (unknown paths, other methods, /openapi.json) are skipped.
type contractRecorder struct {
	mu        sync.Mutex
	exchanges []exchange
}

type exchange struct {
	rq     request
	status int
	header http.Header
	body   []byte
}

func newContractRecorder(t testing.TB) *contractRecorder {
	c := &contractRecorder{}
	t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, x := range c.exchanges {
			if err := validateExchange(x); err != nil {
				t.Errorf("contract: %s %s -> %d: %v", x.rq.method, x.rq.target, x.status, err)
			}
		}
	})
	return c
}

func (c *contractRecorder) record(rq request, status int, header http.Header, body []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.exchanges = append(c.exchanges, exchange{rq: rq, status: status, header: header, body: body})
}

// documented reports whether the request is one of the four operations of
// openapi.json, judged on the escaped path as the router sees it.
func documented(method, target string) bool {
	u := httptest.NewRequest(method, target, nil).URL
	seg := strings.Split(u.EscapedPath(), "/")
	// The console's extensions are documented too.
	if method == http.MethodGet && (u.EscapedPath() == "/api/me" ||
		(len(seg) == 4 && seg[1] == "api" && seg[2] != "" && seg[3] == "secret-attributes")) {
		return true
	}
	if len(seg) < 4 || seg[0] != "" || seg[1] != "api" || seg[2] == "" || seg[3] != "secrets" {
		return false
	}
	switch len(seg) {
	case 4:
		return method == http.MethodGet
	case 5:
		return seg[4] != "" && (method == http.MethodGet || method == http.MethodPut || method == http.MethodDelete)
	}
	return false
}

// validateExchange checks one exchange; it returns nil for one outside the
// document.
func validateExchange(x exchange) error {
	if !documented(x.rq.method, x.rq.target) {
		return nil
	}
	v, err := loadContract()
	if err != nil {
		return err
	}
	resp := &http.Response{
		StatusCode: x.status,
		Header:     x.header,
		Body:       io.NopCloser(bytes.NewReader(x.body)),
	}
	contractMu.Lock()
	defer contractMu.Unlock()
	if ok, errs := v.ValidateHttpResponse(x.rq.build(), resp); !ok {
		return fmt.Errorf("response: %s; body %s", describe(errs), x.body)
	}
	if x.status < 300 && !x.rq.offSpec {
		if ok, errs := v.ValidateHttpRequest(x.rq.build()); !ok {
			return fmt.Errorf("request: %s", describe(errs))
		}
	}
	return nil
}

func describe(errs []*valerrors.ValidationError) string {
	var b strings.Builder
	for _, e := range errs {
		fmt.Fprintf(&b, "[%s: %s", e.Message, e.Reason)
		for _, s := range e.SchemaValidationErrors {
			fmt.Fprintf(&b, "; %s at %s", s.Reason, s.FieldPath)
		}
		b.WriteString("]")
	}
	return b.String()
}

// TestContract_RejectsWrongExchanges proves the validation above can fail:
// each deliberately wrong response or request must be refused.
func TestContract_RejectsWrongExchanges(t *testing.T) {
	problemHeader := func() http.Header {
		return http.Header{
			"Content-Type":           {"application/problem+json; charset=utf-8"},
			"Cache-Control":          {"no-store"},
			"X-Content-Type-Options": {"nosniff"},
		}
	}
	notFound := `{"type":"https://tools.ietf.org/html/rfc9110#section-15.5.5","title":"Not Found","status":404,"traceId":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}`
	get := request{method: "GET", target: "/api/demo/secrets/db-password", header: authRW()}
	list := request{method: "GET", target: "/api/demo/secrets", header: authRW()}
	put := func(body string) request {
		return request{method: "PUT", target: "/api/demo/secrets/db-password", body: body, header: authRW("Content-Type", "application/json")}
	}

	// A correct exchange first, so that the failures below are not the
	// validator failing everything.
	if err := validateExchange(exchange{rq: get, status: 404, header: problemHeader(), body: []byte(notFound)}); err != nil {
		t.Fatalf("a correct 404 was refused: %v", err)
	}

	tests := []struct {
		name string
		x    exchange
	}{
		{"UndocumentedStatus", exchange{rq: get, status: http.StatusTeapot, header: problemHeader(), body: []byte(notFound)}},
		{"ProblemAsApplicationJSON", exchange{rq: get, status: 404, body: []byte(notFound), header: func() http.Header {
			h := problemHeader()
			h.Set("Content-Type", "application/json")
			return h
		}()}},
		{"StatusAsString", exchange{rq: get, status: 404, header: problemHeader(),
			body: []byte(strings.Replace(notFound, `"status":404`, `"status":"404"`, 1))}},
		{"ProblemNotAnObject", exchange{rq: get, status: 404, header: problemHeader(), body: []byte(`["Not Found"]`)}},
		{"MissingCacheControl", exchange{rq: get, status: 404, body: []byte(notFound), header: func() http.Header {
			h := problemHeader()
			h.Del("Cache-Control")
			return h
		}()}},
		{"CacheControlNotNoStore", exchange{rq: get, status: 404, body: []byte(notFound), header: func() http.Header {
			h := problemHeader()
			h.Set("Cache-Control", "max-age=60")
			return h
		}()}},
		{"UnauthorizedWithoutChallenge", exchange{rq: get, status: 401, header: problemHeader(),
			body: []byte(strings.NewReplacer("15.5.5", "15.5.2", "Not Found", "Unauthorized", "404", "401").Replace(notFound))}},
		{"ListOfNumbers", exchange{rq: list, status: 200, body: []byte(`[1,2]`), header: http.Header{
			"Content-Type": {"application/json; charset=utf-8"}, "Cache-Control": {"no-store"}, "X-Content-Type-Options": {"nosniff"}}}},
		{"ValueAsJSONNumber", exchange{rq: get, status: 200, body: []byte(`42`), header: http.Header{
			"Content-Type": {"application/json; charset=utf-8"}, "Cache-Control": {"no-store"}, "X-Content-Type-Options": {"nosniff"}}}},
		{"RequestWithUnknownProperty", exchange{rq: put(`{"value":"x","colour":"red"}`), status: 204, header: http.Header{
			"Cache-Control": {"no-store"}, "X-Content-Type-Options": {"nosniff"}}}},
		{"RequestWithDateThatIsNoDate", exchange{rq: put(`{"value":"x","options":{"expiresOn":"tomorrow"}}`), status: 204, header: http.Header{
			"Cache-Control": {"no-store"}, "X-Content-Type-Options": {"nosniff"}}}},
		{"RequestWithBadKeyName", exchange{rq: request{method: "DELETE", target: "/api/demo/secrets/a.b", header: authRW()}, status: 204, header: http.Header{
			"Cache-Control": {"no-store"}, "X-Content-Type-Options": {"nosniff"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := validateExchange(tt.x); err == nil {
				t.Errorf("validateExchange = nil, want an error")
			}
		})
	}
}

// TestOpenAPI_ServesTheDocument checks GET /openapi.json: unauthenticated,
// the embedded document, and a valid OpenAPI 3.1 document.
func TestOpenAPI_ServesTheDocument(t *testing.T) {
	f := newFixture(t)
	resp := f.do(t, request{method: "GET", target: "/openapi.json"})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200", resp.StatusCode)
	}
	if got, want := resp.Header.Get("Content-Type"), "application/json; charset=utf-8"; got != want {
		t.Errorf("Content-Type = %q, want %q", got, want)
	}
	want, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if got := readBody(t, resp); got != string(want) {
		t.Errorf("body differs from openapi.json (%d bytes, want %d)", len(got), len(want))
	}
	if _, err := loadContract(); err != nil {
		t.Fatal(err)
	}
}
