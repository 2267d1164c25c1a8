package bolt

import (
	"errors"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

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

// TestDispatcherWrites_ShareTheGroupCommit: the dispatcher's writes (fan
// out, due cursor, lease, outcome, purge, subscription update) queue in the
// group commit like a PUT, so that writes made while a commit runs share the
// next transaction and its fsync. A domain error of one (a lost lease) is
// its own, and the others' results are those of a single run although the
// shared transaction is run again without the failing write.
func TestDispatcherWrites_ShareTheGroupCommit(t *testing.T) {
	s := openCommitTest(t)
	ctx := t.Context()
	now := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	sub := neostore.WebhookSubscription{ID: "wh_1", Tenant: "demo", URL: "https://example.com/hook", CreatedAt: now}
	if err := s.CreateWebhook(ctx, sub); err != nil {
		t.Fatal(err)
	}
	dlv := func(id string) neostore.Delivery {
		return neostore.Delivery{
			ID: id, SubscriptionID: "wh_1", State: neostore.DeliveryPending, CreatedAt: now, NextAttemptAt: now,
			Event: neostore.Event{ID: "msg_" + id, Type: neostore.EventSecretUpdated, Timestamp: now, Tenant: "demo", Key: id},
		}
	}
	// dlv_a_old finished long ago (purged), dlv_b_mine is leased by "node"
	// (completed), dlv_c_free waits for a lease.
	if err := s.FanOut(ctx, nil, []neostore.Delivery{dlv("dlv_a_old"), dlv("dlv_b_mine"), dlv("dlv_c_free")}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.LeaseDeliveries(ctx, "node", now, time.Minute, 2); err != nil || len(got) != 2 {
		t.Fatalf("LeaseDeliveries = %v, %v; want dlv_a_old and dlv_b_mine", got, err)
	}
	old := dlv("dlv_a_old")
	old.State, old.FinishedAt = neostore.DeliveryDelivered, neostore.At(now.Add(-time.Hour))
	if err := s.CompleteAttempt(ctx, "node", old); err != nil {
		t.Fatal(err)
	}
	txBefore := lastTxID(t, s)

	release, wait := holdCommit(t, s)
	type outcome struct {
		op  string
		n   int
		err error
	}
	results := make(chan outcome, 7)
	ops := []struct {
		name string
		run  func() (int, error)
	}{
		{"fan out", func() (int, error) { return 0, s.FanOut(ctx, nil, []neostore.Delivery{dlv("dlv_d_new")}) }},
		{"advance due cursor", func() (int, error) { return 0, s.AdvanceDueCursor(ctx, neostore.Bound{}, now, nil) }},
		{"complete attempt", func() (int, error) {
			d := dlv("dlv_b_mine")
			d.State, d.Attempts, d.FinishedAt = neostore.DeliveryDelivered, 1, neostore.At(now)
			return 0, s.CompleteAttempt(ctx, "node", d)
		}},
		{"purge deliveries", func() (int, error) { return s.PurgeDeliveries(ctx, now.Add(-time.Minute)) }},
		{"lease deliveries", func() (int, error) {
			ds, err := s.LeaseDeliveries(ctx, "node", now, time.Minute, 10)
			return len(ds), err
		}},
		{"update webhook", func() (int, error) {
			w := sub
			w.Name = "renamed"
			return 0, s.UpdateWebhook(ctx, w)
		}},
		// Last, so that every write before it runs twice.
		{"complete attempt, lease lost", func() (int, error) { return 0, s.CompleteAttempt(ctx, "other", dlv("dlv_c_free")) }},
	}
	for i, op := range ops {
		go func() {
			n, err := op.run()
			results <- outcome{op.name, n, err}
		}()
		awaitQueued(t, s, i+1)
	}
	release()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	got := map[string]outcome{}
	for range ops {
		select {
		case o := <-results:
			got[o.op] = o
		case <-time.After(10 * time.Second):
			t.Fatal("a queued write did not return")
		}
	}
	for _, op := range ops {
		o := got[op.name]
		switch op.name {
		case "complete attempt, lease lost":
			if !errors.Is(o.err, neostore.ErrLeaseLost) {
				t.Errorf("%s: err = %v, want ErrLeaseLost as it is", op.name, o.err)
			}
		case "purge deliveries":
			if o.err != nil || o.n != 1 {
				t.Errorf("%s = %d, %v; want 1 (dlv_a_old), counted once", op.name, o.n, o.err)
			}
		case "lease deliveries":
			// dlv_c_free, still pending, and dlv_d_new, fanned out earlier in
			// the same transaction.
			if o.err != nil || o.n != 2 {
				t.Errorf("%s = %d, %v; want 2 (dlv_c_free, dlv_d_new), counted once", op.name, o.n, o.err)
			}
		default:
			if o.err != nil {
				t.Errorf("%s: %v", op.name, o.err)
			}
		}
	}
	// The holding write and the shared transaction (run twice, committed
	// once); the failing write, run alone after it, commits nothing: 2,
	// not one per write.
	if n := lastTxID(t, s) - txBefore; n != 2 {
		t.Errorf("%d write transactions committed for the holding write and %d queued dispatcher writes, want 2", n, len(ops))
	}
	if d, err := s.GetDelivery(ctx, "dlv_b_mine"); err != nil || d.State != neostore.DeliveryDelivered {
		t.Errorf("dlv_b_mine = %+v, %v; want delivered", d, err)
	}
	if _, err := s.GetDelivery(ctx, "dlv_a_old"); !errors.Is(err, neostore.ErrDeliveryNotFound) {
		t.Errorf("dlv_a_old after the purge: %v, want ErrDeliveryNotFound", err)
	}
	if c, err := s.DueCursor(ctx); err != nil || !c.Set || !c.At.Equal(now) {
		t.Errorf("DueCursor = %v, %v; want %v", c, err, now)
	}
	if w, err := s.GetWebhook(ctx, "wh_1"); err != nil || w.Name != "renamed" {
		t.Errorf("GetWebhook = %+v, %v; want renamed", w, err)
	}
}

// lastTxID is the id of the last committed write transaction.
func lastTxID(t *testing.T, s *Store) int {
	t.Helper()
	var id int
	if err := s.db.View(func(tx *bbolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}
