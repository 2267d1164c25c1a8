package httpapi_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets"
)

// TestSecrets_ChangesRecordTheirEvents: a PUT and a DELETE through the API
// record their webhook events in the store's outbox, with a fresh "msg_"
// id each, the request's trace id and the service's clock.
func TestSecrets_ChangesRecordTheirEvents(t *testing.T) {
	store := openStore(t)
	f := newFixtureOn(t, store)
	sub := neostore.WebhookSubscription{ID: "wh_a", Tenant: "demo", URL: "https://hooks.example.com/a", CreatedAt: f.clock.Now()}
	if err := store.CreateWebhook(t.Context(), sub); err != nil {
		t.Fatal(err)
	}
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	header := authRW("Content-Type", "application/json", "traceparent", "00-"+trace+"-00f067aa0ba902b7-01")
	put := func() {
		t.Helper()
		resp := f.do(t, request{method: "PUT", target: "/api/demo/secrets/db", body: `{"value":"v","options":{"expiresOn":"2099-01-01T00:00:00Z"}}`, header: header})
		if resp.StatusCode != 204 {
			t.Fatalf("PUT status = %d", resp.StatusCode)
		}
	}
	put()
	f.clock.Set(f.clock.Now().Add(time.Minute))
	put()
	if resp := f.do(t, request{method: "DELETE", target: "/api/demo/secrets/db", header: header}); resp.StatusCode != 204 {
		t.Fatalf("DELETE status = %d", resp.StatusCode)
	}
	evs, err := store.OutboxEvents(t.Context(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 3 {
		t.Fatalf("outbox = %+v, want three events", evs)
	}
	start := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	want := []struct {
		typ     string
		created bool
		at      time.Time
	}{{neostore.EventSecretUpdated, true, start}, {neostore.EventSecretUpdated, false, start.Add(time.Minute)}, {neostore.EventSecretDeleted, false, start.Add(time.Minute)}}
	id := regexp.MustCompile(`^msg_[a-z2-7]{26}$`)
	seen := map[string]bool{}
	for i, e := range evs {
		ev := e.Event
		if ev.Type != want[i].typ || ev.Created != want[i].created || !ev.Timestamp.Equal(want[i].at) || ev.Tenant != "demo" || ev.Key != "db" {
			t.Errorf("event %d = %+v, want type %s created %v at %v", i, ev, want[i].typ, want[i].created, want[i].at)
		}
		if !id.MatchString(ev.ID) || seen[ev.ID] {
			t.Errorf("event %d id = %q, want a fresh msg_ and 26 base32 characters", i, ev.ID)
		}
		seen[ev.ID] = true
		if !strings.Contains(ev.TraceID, trace) {
			t.Errorf("event %d trace id = %q, want the request's trace %s", i, ev.TraceID, trace)
		}
		if !ev.Validity.ExpiresOn.Set || !ev.Validity.ExpiresOn.At.Equal(time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("event %d window = %+v, want expiresOn 2099-01-01", i, ev.Validity)
		}
	}
}
