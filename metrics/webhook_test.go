package metrics_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets/metrics"
)

func TestMetrics_Webhooks(t *testing.T) {
	m := metrics.New()
	m.WebhookAttempt("delivered")
	m.WebhookAttempt("delivered")
	m.WebhookAttempt("retry")
	m.WebhookAttempt("https://attacker.example/?secret") // not an outcome: must not become a label
	m.WebhookPending(3, 90*time.Second)
	m.WebhookDisabledEndpoints(1)

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	body := string(b)
	for _, want := range []string{
		`neostore_webhook_deliveries_total{outcome="delivered"} 2`,
		`neostore_webhook_deliveries_total{outcome="retry"} 1`,
		`neostore_webhook_deliveries_total{outcome="other"} 1`,
		`neostore_webhook_pending_deliveries 3`,
		`neostore_webhook_oldest_pending_age_seconds 90`,
		`neostore_webhook_disabled_endpoints 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(body, "attacker") {
		t.Errorf("an unknown outcome became a label value")
	}
}
