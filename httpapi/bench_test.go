package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkGetSecret measures GET /api/{tenantId}/secrets/{key} through
// the whole handler: trace context, authentication, store read, AEAD open
// and the response. httptest's recorder and request account for part of
// the allocations.
func BenchmarkGetSecret(b *testing.B) {
	for _, bc := range []struct {
		name   string
		accept string
	}{
		{"TextPlain", ""},
		{"JSON", "application/json"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f := newFixture(b, withInfoLogs())
			f.put(b, "db-password", `{"value":"correct horse battery staple"}`)
			r := httptest.NewRequest("GET", "/api/demo/secrets/db-password", nil)
			r.Header.Set("X-API-KEY", keyDemoRW)
			if bc.accept != "" {
				r.Header.Set("Accept", bc.accept)
			}
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				f.handler.ServeHTTP(rec, r)
				if rec.Code != http.StatusOK {
					b.Fatalf("status = %d", rec.Code)
				}
			}
		})
	}
}
