package postgres_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/pgtest"
	"github.com/neostore/neostore-secrets/postgres"
)

var webhookNow = time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)

// Two nodes (two stores, two pools) leasing from one database at the same
// moment never take the same delivery, and between them take all.
func TestWebhook_TwoNodesNeverLeaseTheSameDelivery(t *testing.T) {
	url := pgtest.Start(t)
	nodes := []*postgres.Store{mustOpen(t, url, postgres.Options{}), mustOpen(t, url, postgres.Options{})}
	const n = 200
	var ds []neostore.Delivery
	for i := range n {
		at := webhookNow.Add(time.Duration(i) * time.Millisecond)
		ds = append(ds, neostore.Delivery{ID: fmt.Sprintf("dlv_%03d", i), SubscriptionID: "wh_a", State: neostore.DeliveryPending,
			Event: neostore.Event{ID: fmt.Sprintf("msg_%d", i), Type: neostore.EventSecretExpired, Timestamp: at}, CreatedAt: at, NextAttemptAt: at})
	}
	if err := nodes[0].FanOut(t.Context(), nil, ds); err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		taken = map[string]int{}
		wg    sync.WaitGroup
		start = make(chan struct{})
	)
	for i, node := range nodes {
		for w := range 4 { // several workers per node, as the dispatcher runs
			owner := fmt.Sprintf("node-%d/%d", i, w)
			wg.Go(func() {
				<-start
				for range n {
					got, err := node.LeaseDeliveries(t.Context(), owner, webhookNow.Add(time.Hour), time.Minute, 2)
					if err != nil {
						t.Errorf("LeaseDeliveries(%s): %v", owner, err)
						return
					}
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, d := range got {
						taken[d.ID]++
					}
					mu.Unlock()
				}
			})
		}
	}
	close(start)
	wg.Wait()
	if len(taken) != n {
		t.Errorf("%d deliveries leased, want %d", len(taken), n)
	}
	for id, times := range taken {
		if times != 1 {
			t.Errorf("%s leased %d times, want once", id, times)
		}
	}
}

// While another node holds the cursor row (it is scanning), advancing the
// cursor is ECONFLICT at once, not a wait, and stores nothing.
func TestWebhook_AdvanceDueCursorWhileAnotherNodeScans(t *testing.T) {
	url := pgtest.Start(t)
	s := mustOpen(t, url, postgres.Options{})
	conn := rawConn(t, url)
	tx, err := conn.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(t.Context()) }()
	if _, err := tx.Exec(t.Context(), "SELECT 1 FROM webhook_due_cursor FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	d := neostore.Delivery{ID: "dlv_1", SubscriptionID: "wh_a", State: neostore.DeliveryPending, CreatedAt: webhookNow, NextAttemptAt: webhookNow}
	err = s.AdvanceDueCursor(t.Context(), neostore.Bound{}, webhookNow, []neostore.Delivery{d})
	if neostore.ErrorCode(err) != neostore.ECONFLICT {
		t.Fatalf("AdvanceDueCursor while the row is locked = %v, want ECONFLICT", err)
	}
	if _, err := s.GetDelivery(t.Context(), "dlv_1"); neostore.ErrorCode(err) != neostore.ENOTFOUND {
		t.Errorf("a refused advance stored its delivery (GetDelivery = %v)", err)
	}
	if err := tx.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.AdvanceDueCursor(t.Context(), neostore.Bound{}, webhookNow, []neostore.Delivery{d}); err != nil {
		t.Fatalf("AdvanceDueCursor once the row is free: %v", err)
	}
}

// A put under a per-tenant quota (its own transaction) records its event
// like any other put.
func TestWebhook_PutWithinQuotaRecordsItsEvent(t *testing.T) {
	s := mustOpen(t, pgtest.Start(t), postgres.Options{MaxKeysPerTenant: 5})
	if err := s.CreateWebhook(t.Context(), neostore.WebhookSubscription{ID: "wh_a", Tenant: "tenant", URL: "https://hooks.example.com", CreatedAt: webhookNow}); err != nil {
		t.Fatal(err)
	}
	sec := neostore.SealedSecret{Ciphertext: []byte("v"), Validity: neostore.Validity{ExpiresOn: neostore.At(webhookNow.Add(time.Hour))}}
	c := neostore.Change{Notice: &neostore.ChangeNotice{EventID: "msg_1", TraceID: "trace", At: webhookNow}}
	if err := s.PutSecret(t.Context(), "tenant", "k", sec, c); err != nil {
		t.Fatal(err)
	}
	evs, err := s.OutboxEvents(t.Context(), 10)
	if err != nil || len(evs) != 1 || evs[0].Event.ID != "msg_1" || !evs[0].Event.Created {
		t.Errorf("outbox = %+v, %v; want msg_1, created", evs, err)
	}
	es, err := s.DueEntries(t.Context(), neostore.DueExpires, webhookNow, webhookNow.Add(time.Hour), 10)
	if err != nil || len(es) != 1 {
		t.Errorf("DueEntries = %+v, %v; want the put's expiry", es, err)
	}
}
