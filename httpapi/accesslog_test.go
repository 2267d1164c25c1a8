package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/neostore/neostore-secrets/httpapi"
)

func TestAccessLog(t *testing.T) {
	for _, asJSON := range []bool{false, true} {
		var out lockedBuffer
		f := newFixture(t, func(c *httpapi.Config, _ *mapVerifier) { c.AccessLog = httpapi.NewAccessLog(&out, asJSON) })
		f.put(t, "k", `{"value":"hunter2-value"}`)
		resp := f.do(t, request{method: "GET", target: "/api/demo/secrets/k", header: hdr("X-API-KEY", keyDemoRW)})
		readBody(t, resp)
		resp = f.do(t, request{method: "GET", target: "/api/demo/secrets/k"})
		body := readBody(t, resp)
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if len(lines) != 3 {
			t.Fatalf("json=%v: %d access-log lines for 3 requests:\n%s", asJSON, len(lines), out.String())
		}
		last := lines[2]
		if asJSON {
			var l struct {
				Level, Msg, Method, Route, Principal, TraceID string
				Status                                        int
				Duration                                      int64
			}
			if err := json.Unmarshal([]byte(last), &l); err != nil {
				t.Fatalf("JSON access line %q: %v", last, err)
			}
			if l.Msg != "request" || l.Method != "GET" || l.Route != "GET /api/{tenantId}/secrets/{key}" || l.Status != http.StatusUnauthorized || l.Duration < 0 {
				t.Errorf("JSON access line = %+v", l)
			}
			if !strings.Contains(body, l.TraceID) || l.TraceID == "" {
				t.Errorf("access line traceId %q is not the response's", l.TraceID)
			}
		} else {
			for _, want := range []string{"level=INFO msg=request method=GET", `route="GET /api/{tenantId}/secrets/{key}"`, "status=401", `principal=""`, "traceId=00-"} {
				if !strings.Contains(last, want) {
					t.Errorf("text access line %q lacks %q", last, want)
				}
			}
			if !strings.Contains(lines[1], "principal=apikey:k1") || !strings.Contains(lines[1], "status=200") {
				t.Errorf("text access line of the authenticated GET = %q", lines[1])
			}
		}
		for _, secret := range []string{"hunter2-value", keyDemoRW} {
			if bytes.Contains([]byte(out.String()), []byte(secret)) {
				t.Errorf("json=%v: the access log contains %q", asJSON, secret)
			}
		}
	}
}
