package bolt

import (
	"testing"
	"time"

	"github.com/neostore/neostore-secrets"
)

// TestLeaseDeliveries_NothingDueCommitsNothing: the dispatcher asks for
// leases several times a second while a delivery waits for a later retry;
// asking must not cost a write transaction (a commit and its fsync) each
// time.
func TestLeaseDeliveries_NothingDueCommitsNothing(t *testing.T) {
	s := openCommitTest(t)
	ctx := t.Context()
	now := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	sub := neostore.WebhookSubscription{ID: "wh_1", Tenant: "demo", URL: "https://example.com/hook", CreatedAt: now}
	if err := s.CreateWebhook(ctx, sub); err != nil {
		t.Fatal(err)
	}
	later := neostore.Delivery{
		ID: "dlv_1", SubscriptionID: "wh_1", State: neostore.DeliveryPending, CreatedAt: now,
		NextAttemptAt: now.Add(time.Hour),
		Event:         neostore.Event{ID: "msg_1", Type: neostore.EventSecretUpdated, Timestamp: now, Tenant: "demo", Key: "k"},
	}
	if err := s.FanOut(ctx, nil, []neostore.Delivery{later}); err != nil {
		t.Fatal(err)
	}
	writes := fileWrites(s)
	for range 5 {
		got, err := s.LeaseDeliveries(ctx, "node", now, time.Minute, 10)
		if err != nil || len(got) != 0 {
			t.Fatalf("LeaseDeliveries before the retry is due = %v, %v; want none", got, err)
		}
	}
	if w := fileWrites(s); w != writes {
		t.Errorf("5 leases with nothing due wrote %d times to the file, want 0", w-writes)
	}
	got, err := s.LeaseDeliveries(ctx, "node", now.Add(time.Hour), time.Minute, 10)
	if err != nil || len(got) != 1 || got[0].ID != "dlv_1" {
		t.Fatalf("LeaseDeliveries when the retry is due = %v, %v; want dlv_1", got, err)
	}
}

// fileWrites is how many page and meta writes bbolt has made to the file.
func fileWrites(s *Store) int64 {
	st := s.db.Stats()
	return st.TxStats.GetWrite()
}
