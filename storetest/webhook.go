package storetest

import (
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets"
)

// webhookCases check neostore.WebhookStore, and the outbox and due index
// that PutSecret, DeleteSecret and ReplaceSecret keep in the change's own
// transaction.
var webhookCases = []testCase{
	{"SubscriptionKeepsEveryField", func(t *testing.T, s neostore.Store) {
		ws := webhookStore(t, s)
		w := subscription("wh_a", "tenant", w0)
		w.Events = []string{neostore.EventSecretExpiring, neostore.EventSecretDeleted}
		w.Leads = []time.Duration{720 * time.Hour, 90 * time.Minute, time.Nanosecond}
		w.Secrets = []neostore.WebhookSecret{{Sealed: patterned(300)}, {Sealed: []byte{0, 1, 2}, ExpiresAt: neostore.At(w0.Add(time.Hour + 7))}}
		w.DisabledAt = neostore.At(w0.Add(3 * time.Hour))
		if err := ws.CreateWebhook(t.Context(), w); err != nil {
			t.Fatalf("CreateWebhook: %v", err)
		}
		checkWebhook(t, mustGetWebhook(t, ws, "wh_a"), w)
		bare := subscription("wh_b", "*", w0)
		if err := ws.CreateWebhook(t.Context(), bare); err != nil {
			t.Fatalf("CreateWebhook: %v", err)
		}
		checkWebhook(t, mustGetWebhook(t, ws, "wh_b"), bare)
	}},
	{"SubscriptionIDTaken", func(t *testing.T, s neostore.Store) {
		ws := webhookStore(t, s)
		mustCreateWebhook(t, ws, subscription("wh_a", "tenant", w0))
		err := ws.CreateWebhook(t.Context(), subscription("wh_a", "other", w0.Add(time.Hour)))
		wantCode(t, "CreateWebhook with a taken id", err, neostore.EINVALID)
		if got := mustGetWebhook(t, ws, "wh_a"); got.Tenant != "tenant" {
			t.Errorf("Tenant = %q after a refused create, want the first one's", got.Tenant)
		}
		wantCode(t, "CreateWebhook without an id", ws.CreateWebhook(t.Context(), subscription("", "tenant", w0)), neostore.EINVALID)
	}},
	{"SubscriptionsListedByCreationThenID", func(t *testing.T, s neostore.Store) {
		ws := webhookStore(t, s)
		for _, w := range []neostore.WebhookSubscription{
			subscription("wh_c", "t", w0.Add(time.Second)), subscription("wh_b", "t", w0),
			subscription("wh_a", "t", w0.Add(time.Second)), subscription("wh_d", "t", w0.Add(-time.Hour)),
		} {
			mustCreateWebhook(t, ws, w)
		}
		got, err := ws.ListWebhooks(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, w := range got {
			ids = append(ids, w.ID)
		}
		if want := []string{"wh_d", "wh_b", "wh_a", "wh_c"}; !slices.Equal(ids, want) {
			t.Errorf("ListWebhooks = %q, want %q", ids, want)
		}
	}},
	{"SubscriptionUpdateAndDelete", func(t *testing.T, s neostore.Store) {
		ws := webhookStore(t, s)
		w := subscription("wh_a", "tenant", w0)
		mustCreateWebhook(t, ws, w)
		w.Secrets = append(w.Secrets, neostore.WebhookSecret{Sealed: []byte("new"), ExpiresAt: neostore.At(w0.Add(time.Hour))})
		w.DisabledAt = neostore.At(w0.Add(time.Minute))
		if err := ws.UpdateWebhook(t.Context(), w); err != nil {
			t.Fatalf("UpdateWebhook: %v", err)
		}
		checkWebhook(t, mustGetWebhook(t, ws, "wh_a"), w)
		wantCode(t, "UpdateWebhook of an unknown id", ws.UpdateWebhook(t.Context(), subscription("wh_x", "t", w0)), neostore.ENOTFOUND)
		if _, err := ws.GetWebhook(t.Context(), "wh_x"); neostore.ErrorCode(err) != neostore.ENOTFOUND {
			t.Errorf("UpdateWebhook of an unknown id created it (GetWebhook = %v)", err)
		}
		if err := ws.DeleteWebhook(t.Context(), "wh_a"); err != nil {
			t.Fatalf("DeleteWebhook: %v", err)
		}
		_, err := ws.GetWebhook(t.Context(), "wh_a")
		wantCode(t, "GetWebhook after DeleteWebhook", err, neostore.ENOTFOUND)
		wantCode(t, "DeleteWebhook twice", ws.DeleteWebhook(t.Context(), "wh_a"), neostore.ENOTFOUND)
		if got, err := ws.ListWebhooks(t.Context()); err != nil || len(got) != 0 {
			t.Errorf("ListWebhooks after delete = %v, %v; want none", got, err)
		}
	}},
	{"PutRecordsItsEvent", func(t *testing.T, s neostore.Store) {
		ws := webhookStore(t, s)
		mustCreateWebhook(t, ws, subscription("wh_a", "tenant", w0))
		v := neostore.Validity{NotBefore: neostore.At(t1), ExpiresOn: neostore.At(maxTime)}
		putNoticed(t, s, "tenant", "k", timed("v1", v, w0, w0), "msg_1", w0)
		putNoticed(t, s, "tenant", "k", timed("v2", neostore.Validity{}, w0.Add(time.Second), w0.Add(time.Second)), "msg_2", w0.Add(time.Second))
		putNoticed(t, s, "other", "k", sealed("v"), "msg_3", w0) // nobody subscribes to "other"
		mustPut(t, s, "tenant", "k2", sealed("v"))               // no notice
		evs := outbox(t, ws)
		if len(evs) != 2 {
			t.Fatalf("outbox = %+v, want two events", evs)
		}
		checkEvent(t, evs[0].Event, neostore.Event{ID: "msg_1", Type: neostore.EventSecretUpdated, Timestamp: w0, Tenant: "tenant", Key: "k", Validity: v, TraceID: "trace-msg_1", Created: true})
		checkEvent(t, evs[1].Event, neostore.Event{ID: "msg_2", Type: neostore.EventSecretUpdated, Timestamp: w0.Add(time.Second), Tenant: "tenant", Key: "k", TraceID: "trace-msg_2"})
		if evs[0].Seq >= evs[1].Seq {
			t.Errorf("outbox seqs %d, %d: want increasing", evs[0].Seq, evs[1].Seq)
		}
	}},
	{"DeleteRecordsItsEvent", func(t *testing.T, s neostore.Store) {
		ws := webhookStore(t, s)
		mustCreateWebhook(t, ws, subscription("wh_a", "tenant", w0))
		v := neostore.Validity{ExpiresOn: neostore.At(t2)}
		mustPut(t, s, "tenant", "k", timed("v", v, w0, w0))
		if err := s.DeleteSecret(t.Context(), "tenant", "absent", notice("msg_0", w0)); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteSecret(t.Context(), "tenant", "k", notice("msg_1", w0.Add(time.Minute))); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteSecret(t.Context(), "tenant", "k", notice("msg_2", w0.Add(time.Minute))); err != nil {
			t.Fatal(err)
		}
		evs := outbox(t, ws)
		if len(evs) != 1 {
			t.Fatalf("outbox = %+v, want one event (a delete that finds nothing records none)", evs)
		}
		checkEvent(t, evs[0].Event, neostore.Event{ID: "msg_1", Type: neostore.EventSecretDeleted, Timestamp: w0.Add(time.Minute), Tenant: "tenant", Key: "k", Validity: v, TraceID: "trace-msg_1"})
	}},
	{"WildcardCoversEveryTenant", func(t *testing.T, s neostore.Store) {
		ws := webhookStore(t, s)
		mustCreateWebhook(t, ws, subscription("wh_a", "*", w0))
		putNoticed(t, s, "one", "k", sealed("v"), "msg_1", w0)
		putNoticed(t, s, "two", "k", sealed("v"), "msg_2", w0)
		if evs := outbox(t, ws); len(evs) != 2 {
			t.Errorf("outbox = %+v, want two events", evs)
		}
	}},
	{"DisabledSubscriptionDoesNotCount", func(t *testing.T, s neostore.Store) {
		ws := webhookStore(t, s)
		w := subscription("wh_a", "tenant", w0)
		w.DisabledAt = neostore.At(w0)
		mustCreateWebhook(t, ws, w)
		putNoticed(t, s, "tenant", "k", sealed("v"), "msg_1", w0)
		if evs := outbox(t, ws); len(evs) != 0 {
			t.Fatalf("outbox = %+v, want none: the only subscription is disabled", evs)
		}
		w.DisabledAt = neostore.Bound{}
		if err := ws.UpdateWebhook(t.Context(), w); err != nil {
			t.Fatal(err)
		}
		putNoticed(t, s, "tenant", "k", sealed("v"), "msg_2", w0)
		if evs := outbox(t, ws); len(evs) != 1 {
			t.Fatalf("outbox = %+v, want one event once re-enabled", evs)
		}
		if err := ws.DeleteWebhook(t.Context(), "wh_a"); err != nil {
			t.Fatal(err)
		}
		putNoticed(t, s, "tenant", "k", sealed("v"), "msg_3", w0)
		if evs := outbox(t, ws); len(evs) != 1 {
			t.Fatalf("outbox = %+v, want still one event after the subscription is deleted", evs)
		}
	}},
	{"FanOutInsertsIfAbsentAndDrainsTheOutbox", func(t *testing.T, s neostore.Store) {
		ws := webhookStore(t, s)
		mustCreateWebhook(t, ws, subscription("wh_a", "tenant", w0))
		putNoticed(t, s, "tenant", "k", sealed("v"), "msg_1", w0)
		putNoticed(t, s, "tenant", "k", sealed("v"), "msg_2", w0)
		evs := outbox(t, ws)
		if len(evs) != 2 {
			t.Fatalf("outbox = %+v, want two", evs)
		}
		d := delivery("dlv_1", "wh_a", evs[0].Event, w0)
		if err := ws.FanOut(t.Context(), []uint64{evs[0].Seq, 999999}, []neostore.Delivery{d}); err != nil {
			t.Fatalf("FanOut: %v", err)
		}
		if rest := outbox(t, ws); len(rest) != 1 || rest[0].Seq != evs[1].Seq {
			t.Fatalf("outbox after FanOut = %+v, want only the second event", rest)
		}
		checkDelivery(t, mustGetDelivery(t, ws, "dlv_1"), d)
		// The same delivery again (a crash between fan-out and its commit
		// makes it twice) keeps the first.
		again := d
		again.Attempts, again.NextAttemptAt = 5, w0.Add(time.Hour)
		if err := ws.FanOut(t.Context(), []uint64{evs[1].Seq}, []neostore.Delivery{again, delivery("dlv_2", "wh_a", evs[1].Event, w0)}); err != nil {
			t.Fatalf("FanOut: %v", err)
		}
		checkDelivery(t, mustGetDelivery(t, ws, "dlv_1"), d)
		mustGetDelivery(t, ws, "dlv_2")
		if rest := outbox(t, ws); len(rest) != 0 {
			t.Errorf("outbox = %+v, want empty", rest)
		}
		if got, err := ws.OutboxEvents(t.Context(), 10); err != nil || len(got) != 0 {
			t.Errorf("OutboxEvents = %v, %v", got, err)
		}
		_, err := ws.GetDelivery(t.Context(), "dlv_x")
		wantCode(t, "GetDelivery of an unknown id", err, neostore.ENOTFOUND)
	}},
	{"OutboxLimit", func(t *testing.T, s neostore.Store) {
		ws := webhookStore(t, s)
		mustCreateWebhook(t, ws, subscription("wh_a", "tenant", w0))
		for i := range 5 {
			putNoticed(t, s, "tenant", "k", sealed("v"), fmt.Sprintf("msg_%d", i), w0)
		}
		got, err := ws.OutboxEvents(t.Context(), 3)
		if err != nil || len(got) != 3 || got[0].Event.ID != "msg_0" || got[2].Event.ID != "msg_2" {
			t.Errorf("OutboxEvents(3) = %+v, %v; want msg_0..msg_2", got, err)
		}
	}},
	{"DueIndexFollowsPutsAndDeletes", func(t *testing.T, s neostore.Store) {
		ws := webhookStore(t, s)
		// Kept whether or not anyone subscribes.
		v1 := neostore.Validity{NotBefore: neostore.At(w0.Add(time.Hour)), ExpiresOn: neostore.At(w0.Add(48 * time.Hour))}
		mustPut(t, s, "tenant", "k", timed("v", v1, w0, w0))
		wantDue(t, ws, neostore.DueExpires, []neostore.DueEntry{{Kind: neostore.DueExpires, At: w0.Add(48 * time.Hour), Tenant: "tenant", Key: "k", Validity: v1, CreatedOn: neostore.At(w0)}})
		wantDue(t, ws, neostore.DueActivates, []neostore.DueEntry{{Kind: neostore.DueActivates, At: w0.Add(time.Hour), Tenant: "tenant", Key: "k", Validity: v1, CreatedOn: neostore.At(w0)}})
		// A put that moves the window moves the entries; a NotBefore not
		// after the put is no activation.
		v2 := neostore.Validity{NotBefore: neostore.At(w0), ExpiresOn: neostore.At(w0.Add(24 * time.Hour))}
		mustPut(t, s, "tenant", "k", timed("v", v2, w0.Add(time.Minute), w0.Add(time.Minute)))
		wantDue(t, ws, neostore.DueExpires, []neostore.DueEntry{{Kind: neostore.DueExpires, At: w0.Add(24 * time.Hour), Tenant: "tenant", Key: "k", Validity: v2, CreatedOn: neostore.At(w0)}})
		wantDue(t, ws, neostore.DueActivates, nil)
		// A put without a window leaves the index.
		mustPut(t, s, "tenant", "k", timed("v", neostore.Validity{}, w0, w0))
		wantDue(t, ws, neostore.DueExpires, nil)
		mustPut(t, s, "tenant", "k", timed("v", v1, w0, w0))
		if err := s.DeleteSecret(t.Context(), "tenant", "k", neostore.Change{}); err != nil {
			t.Fatal(err)
		}
		wantDue(t, ws, neostore.DueExpires, nil)
		wantDue(t, ws, neostore.DueActivates, nil)
	}},
	{"DueIndexFollowsReplace", func(t *testing.T, s neostore.Store) {
		ws := webhookStore(t, s)
		v := neostore.Validity{ExpiresOn: neostore.At(w0.Add(time.Hour))}
		mustPut(t, s, "tenant", "k", timed("old", v, w0, w0))
		if err := s.ReplaceSecret(t.Context(), "tenant", "k", []byte("old"), timed("new", v, w0, w0)); err != nil {
			t.Fatalf("ReplaceSecret: %v", err)
		}
		wantDue(t, ws, neostore.DueExpires, []neostore.DueEntry{{Kind: neostore.DueExpires, At: w0.Add(time.Hour), Tenant: "tenant", Key: "k", Validity: v, CreatedOn: neostore.At(w0)}})
	}},
	{"DueEntriesRange", func(t *testing.T, s neostore.Store) {
		ws := webhookStore(t, s)
		at := func(d time.Duration) neostore.Validity { return neostore.Validity{ExpiresOn: neostore.At(w0.Add(d))} }
		mustPut(t, s, "b", "k", timed("v", at(time.Hour), w0, w0))
		mustPut(t, s, "a", "k2", timed("v", at(time.Hour), w0, w0))
		mustPut(t, s, "a", "k1", timed("v", at(time.Hour), w0, w0))
		mustPut(t, s, "a", "k0", timed("v", at(2*time.Hour), w0, w0))
		mustPut(t, s, "a", "early", timed("v", at(-time.Hour), w0, w0))
		mustPut(t, s, "a", "far", timed("v", neostore.Validity{ExpiresOn: neostore.At(maxTime)}, w0, w0))
		got := dueEntries(t, ws, neostore.DueExpires, w0, w0.Add(2*time.Hour), 10)
		if want := []string{"a/k1", "a/k2", "b/k", "a/k0"}; !slices.Equal(got, want) {
			t.Errorf("DueEntries(w0, w0+2h] = %q, want %q", got, want)
		}
		// (after, upTo]: an entry at after is out, one at upTo is in.
		got = dueEntries(t, ws, neostore.DueExpires, w0.Add(time.Hour), w0.Add(2*time.Hour), 10)
		if want := []string{"a/k0"}; !slices.Equal(got, want) {
			t.Errorf("DueEntries(w0+1h, w0+2h] = %q, want %q", got, want)
		}
		got = dueEntries(t, ws, neostore.DueExpires, w0, w0.Add(2*time.Hour), 2)
		if want := []string{"a/k1", "a/k2"}; !slices.Equal(got, want) {
			t.Errorf("DueEntries limit 2 = %q, want %q", got, want)
		}
		got = dueEntries(t, ws, neostore.DueExpires, minTime, maxTime, 10)
		if len(got) != 6 || got[0] != "a/early" || got[5] != "a/far" {
			t.Errorf("DueEntries over all time = %q", got)
		}
		if got := dueEntries(t, ws, neostore.DueActivates, minTime, maxTime, 10); len(got) != 0 {
			t.Errorf("DueEntries(activates) = %q, want none", got)
		}
	}},
	{"DueCursorCompareAndSwap", func(t *testing.T, s neostore.Store) {
		ws := webhookStore(t, s)
		c, err := ws.DueCursor(t.Context())
		if err != nil || c.Set {
			t.Fatalf("DueCursor of a new store = %+v, %v; want unset", c, err)
		}
		d := delivery("dlv_1", "wh_a", timeEvent("msg_t1"), w0)
		if err := ws.AdvanceDueCursor(t.Context(), neostore.Bound{}, w0, []neostore.Delivery{d}); err != nil {
			t.Fatalf("AdvanceDueCursor from unset: %v", err)
		}
		wantCursor(t, ws, neostore.At(w0))
		checkDelivery(t, mustGetDelivery(t, ws, "dlv_1"), d)
		// A scan that began from a cursor since moved stores nothing.
		stale := []neostore.Delivery{delivery("dlv_2", "wh_a", timeEvent("msg_t2"), w0)}
		wantCode(t, "AdvanceDueCursor from unset again", ws.AdvanceDueCursor(t.Context(), neostore.Bound{}, w0.Add(time.Hour), stale), neostore.ECONFLICT)
		wantCode(t, "AdvanceDueCursor from a wrong time", ws.AdvanceDueCursor(t.Context(), neostore.At(w0.Add(-1)), w0.Add(time.Hour), stale), neostore.ECONFLICT)
		if _, err := ws.GetDelivery(t.Context(), "dlv_2"); neostore.ErrorCode(err) != neostore.ENOTFOUND {
			t.Errorf("a refused advance stored its deliveries (GetDelivery = %v)", err)
		}
		wantCursor(t, ws, neostore.At(w0))
		// Deliveries already stored are skipped, not an error.
		if err := ws.AdvanceDueCursor(t.Context(), neostore.At(w0), w0.Add(time.Minute), []neostore.Delivery{d}); err != nil {
			t.Fatalf("AdvanceDueCursor: %v", err)
		}
		wantCursor(t, ws, neostore.At(w0.Add(time.Minute)))
	}},
	{"LeaseCompleteAndConflict", func(t *testing.T, s neostore.Store) {
		ws := webhookStore(t, s)
		ds := []neostore.Delivery{
			delivery("dlv_late", "wh_a", timeEvent("msg_1"), w0.Add(100*time.Second)),
			delivery("dlv_b", "wh_a", timeEvent("msg_2"), w0.Add(time.Second)),
			delivery("dlv_a", "wh_a", timeEvent("msg_3"), w0),
		}
		mustFanOut(t, ws, ds)
		now := w0.Add(10 * time.Second)
		got := lease(t, ws, "A", now, time.Minute, 10)
		if want := []string{"dlv_a", "dlv_b"}; !slices.Equal(got, want) {
			t.Fatalf("LeaseDeliveries(A) = %q, want %q (due ones, oldest first)", got, want)
		}
		if got := lease(t, ws, "B", now, time.Minute, 10); len(got) != 0 {
			t.Fatalf("LeaseDeliveries(B) while A holds them = %q, want none", got)
		}
		done := mustGetDelivery(t, ws, "dlv_a")
		done.State, done.Attempts, done.LastAttemptAt, done.LastStatus, done.FinishedAt = neostore.DeliveryDelivered, 1, neostore.At(now), 204, neostore.At(now)
		wantCode(t, "CompleteAttempt by B", ws.CompleteAttempt(t.Context(), "B", done), neostore.ECONFLICT)
		checkDelivery(t, mustGetDelivery(t, ws, "dlv_a"), ds[2])
		if err := ws.CompleteAttempt(t.Context(), "A", done); err != nil {
			t.Fatalf("CompleteAttempt by A: %v", err)
		}
		checkDelivery(t, mustGetDelivery(t, ws, "dlv_a"), done)
		wantCode(t, "CompleteAttempt twice", ws.CompleteAttempt(t.Context(), "A", done), neostore.ECONFLICT)
		// A retry: pending again, not leasable before its next attempt.
		retry := mustGetDelivery(t, ws, "dlv_b")
		retry.Attempts, retry.LastAttemptAt, retry.LastStatus, retry.LastError = 1, neostore.At(now), 503, "server error"
		retry.NextAttemptAt = now.Add(30 * time.Second)
		if err := ws.CompleteAttempt(t.Context(), "A", retry); err != nil {
			t.Fatalf("CompleteAttempt (retry): %v", err)
		}
		checkDelivery(t, mustGetDelivery(t, ws, "dlv_b"), retry)
		if got := lease(t, ws, "B", now.Add(29*time.Second), time.Minute, 10); len(got) != 0 {
			t.Errorf("lease before the retry is due = %q, want none", got)
		}
		if got := lease(t, ws, "B", now.Add(30*time.Second), time.Minute, 10); !slices.Equal(got, []string{"dlv_b"}) {
			t.Errorf("lease when the retry is due = %q, want [dlv_b]", got)
		}
		wantCode(t, "CompleteAttempt of an unknown delivery", ws.CompleteAttempt(t.Context(), "A", delivery("dlv_x", "wh_a", timeEvent("m"), w0)), neostore.ECONFLICT)
	}},
	{"ExpiredLeaseIsTakenOver", func(t *testing.T, s neostore.Store) {
		ws := webhookStore(t, s)
		d := delivery("dlv_a", "wh_a", timeEvent("msg_1"), w0)
		mustFanOut(t, ws, []neostore.Delivery{d})
		if got := lease(t, ws, "A", w0, time.Minute, 1); len(got) != 1 {
			t.Fatalf("lease(A) = %q", got)
		}
		if got := lease(t, ws, "B", w0.Add(time.Minute-1), time.Minute, 1); len(got) != 0 {
			t.Fatalf("lease(B) before A's lease ends = %q, want none", got)
		}
		if got := lease(t, ws, "B", w0.Add(time.Minute), time.Minute, 1); len(got) != 1 {
			t.Fatalf("lease(B) once A's lease ended = %q, want the delivery", got)
		}
		done := d
		done.State, done.Attempts, done.FinishedAt = neostore.DeliveryDelivered, 1, neostore.At(w0.Add(time.Minute))
		wantCode(t, "CompleteAttempt by A after B took over", ws.CompleteAttempt(t.Context(), "A", done), neostore.ECONFLICT)
		if err := ws.CompleteAttempt(t.Context(), "B", done); err != nil {
			t.Fatalf("CompleteAttempt by B: %v", err)
		}
	}},
	{"RedeliverListPendingPurge", func(t *testing.T, s neostore.Store) {
		ws := webhookStore(t, s)
		mustCreateWebhook(t, ws, subscription("wh_a", "tenant", w0))
		mustCreateWebhook(t, ws, subscription("wh_b", "tenant", w0))
		ds := []neostore.Delivery{
			delivery("dlv_1", "wh_a", timeEvent("msg_1"), w0),
			delivery("dlv_2", "wh_a", timeEvent("msg_2"), w0.Add(time.Second)),
			delivery("dlv_3", "wh_a", timeEvent("msg_3"), w0.Add(2*time.Second)),
			delivery("dlv_4", "wh_b", timeEvent("msg_1"), w0.Add(-time.Hour)),
		}
		mustFanOut(t, ws, ds)
		wantPending(t, ws, 4, neostore.At(w0.Add(-time.Hour)))
		now := w0.Add(time.Minute)
		lease(t, ws, "A", now, time.Minute, 10)
		finish := func(id string, state neostore.DeliveryState, at time.Time) {
			d := mustGetDelivery(t, ws, id)
			d.State, d.Attempts, d.FinishedAt, d.LastAttemptAt = state, 1, neostore.At(at), neostore.At(at)
			if err := ws.CompleteAttempt(t.Context(), "A", d); err != nil {
				t.Fatalf("CompleteAttempt(%s): %v", id, err)
			}
		}
		finish("dlv_1", neostore.DeliveryFailed, now)
		finish("dlv_2", neostore.DeliveryDelivered, now.Add(time.Hour))
		finish("dlv_4", neostore.DeliveryDelivered, now)
		wantPending(t, ws, 1, neostore.At(w0.Add(2*time.Second)))

		if got := listDeliveries(t, ws, "wh_a", false, 10); !slices.Equal(got, []string{"dlv_3", "dlv_2", "dlv_1"}) {
			t.Errorf("ListDeliveries(wh_a) = %q, want newest first", got)
		}
		if got := listDeliveries(t, ws, "wh_a", false, 2); !slices.Equal(got, []string{"dlv_3", "dlv_2"}) {
			t.Errorf("ListDeliveries(wh_a, limit 2) = %q", got)
		}
		if got := listDeliveries(t, ws, "wh_a", true, 10); !slices.Equal(got, []string{"dlv_1"}) {
			t.Errorf("ListDeliveries(wh_a, failed) = %q, want [dlv_1]", got)
		}
		if got := listDeliveries(t, ws, "wh_", false, 10); len(got) != 0 {
			t.Errorf("ListDeliveries of a prefix of an id = %q, want none", got)
		}

		// Redeliver the failed one: pending, attempts reset, leasable at at.
		if err := ws.Redeliver(t.Context(), "dlv_1", now.Add(5*time.Minute)); err != nil {
			t.Fatalf("Redeliver: %v", err)
		}
		got := mustGetDelivery(t, ws, "dlv_1")
		if got.State != neostore.DeliveryPending || got.Attempts != 0 || !got.NextAttemptAt.Equal(now.Add(5*time.Minute)) ||
			!got.CreatedAt.Equal(now.Add(5*time.Minute)) || got.FinishedAt.Set {
			t.Errorf("after Redeliver = %+v", got)
		}
		wantCode(t, "Redeliver of an unknown id", ws.Redeliver(t.Context(), "dlv_x", now), neostore.ENOTFOUND)
		if got := lease(t, ws, "B", now.Add(5*time.Minute), time.Minute, 10); !slices.Contains(got, "dlv_1") {
			t.Errorf("lease after Redeliver = %q, want dlv_1 among them", got)
		}
		wantPending(t, ws, 2, neostore.At(w0.Add(2*time.Second))) // dlv_3; dlv_1 was queued anew

		// Purge: only finished ones, finished before the cutoff.
		n, err := ws.PurgeDeliveries(t.Context(), now.Add(time.Minute))
		if err != nil || n != 1 {
			t.Fatalf("PurgeDeliveries = %d, %v; want 1 (dlv_4)", n, err)
		}
		if _, err := ws.GetDelivery(t.Context(), "dlv_4"); neostore.ErrorCode(err) != neostore.ENOTFOUND {
			t.Errorf("GetDelivery of a purged delivery = %v, want ENOTFOUND", err)
		}
		mustGetDelivery(t, ws, "dlv_2")
		n, err = ws.PurgeDeliveries(t.Context(), now.Add(2*time.Hour))
		if err != nil || n != 1 {
			t.Fatalf("PurgeDeliveries later = %d, %v; want 1 (dlv_2)", n, err)
		}
		wantPending(t, ws, 2, neostore.At(w0.Add(2*time.Second))) // dlv_3; dlv_1 was queued anew

		// Deleting a subscription removes its deliveries.
		if err := ws.DeleteWebhook(t.Context(), "wh_a"); err != nil {
			t.Fatal(err)
		}
		if got := listDeliveries(t, ws, "wh_a", false, 10); len(got) != 0 {
			t.Errorf("deliveries of a deleted subscription = %q", got)
		}
		wantPending(t, ws, 0, neostore.Bound{})
	}},
	{"ConcurrentLeasesNeverShareADelivery", func(t *testing.T, s neostore.Store) {
		ws := webhookStore(t, s)
		const n, owners = 60, 4
		var ds []neostore.Delivery
		for i := range n {
			ds = append(ds, delivery(fmt.Sprintf("dlv_%03d", i), "wh_a", timeEvent(fmt.Sprintf("msg_%d", i)), w0.Add(time.Duration(i))))
		}
		mustFanOut(t, ws, ds)
		var (
			mu    sync.Mutex
			taken = map[string]string{}
			wg    sync.WaitGroup
			start = make(chan struct{})
		)
		for o := range owners {
			owner := fmt.Sprintf("node-%d", o)
			wg.Go(func() {
				<-start
				for range n { // bounded: each round takes at least one or ends
					got, err := ws.LeaseDeliveries(t.Context(), owner, w0.Add(time.Hour), time.Hour, 3)
					if err != nil {
						t.Errorf("LeaseDeliveries(%s): %v", owner, err)
						return
					}
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, d := range got {
						if prev, dup := taken[d.ID]; dup {
							t.Errorf("%s leased by %s and %s", d.ID, prev, owner)
						}
						taken[d.ID] = owner
					}
					mu.Unlock()
				}
			})
		}
		close(start)
		wg.Wait()
		if len(taken) != n {
			t.Errorf("%d deliveries leased, want %d", len(taken), n)
		}
	}},
}

// w0 is "now" in the webhook cases: delivery times are the dispatcher's
// clock, which is the present, not the far ends of the validity cases.
var w0 = time.Date(2030, 5, 6, 7, 8, 9, 123456789, time.UTC)

func webhookStore(t *testing.T, s neostore.Store) neostore.WebhookStore {
	t.Helper()
	ws, ok := any(s).(neostore.WebhookStore)
	if !ok {
		t.Skip("the store keeps no webhook notifications")
	}
	return ws
}

func subscription(id, tenant string, created time.Time) neostore.WebhookSubscription {
	return neostore.WebhookSubscription{ID: id, Name: "name of " + id, Tenant: tenant, URL: "https://hooks.example.com/" + id,
		Secrets: []neostore.WebhookSecret{{Sealed: []byte("sealed " + id)}}, CreatedAt: created}
}

func notice(id string, at time.Time) neostore.Change {
	return neostore.Change{Notice: &neostore.ChangeNotice{EventID: id, TraceID: "trace-" + id, At: at}}
}

func putNoticed(t *testing.T, s neostore.Store, tenant, key string, sec neostore.SealedSecret, id string, at time.Time) {
	t.Helper()
	if err := s.PutSecret(t.Context(), tenant, key, sec, notice(id, at)); err != nil {
		t.Fatalf("PutSecret(%q, %q): %v", tenant, key, err)
	}
}

func timeEvent(id string) neostore.Event {
	return neostore.Event{ID: id, Type: neostore.EventSecretExpiring, Timestamp: w0, Tenant: "tenant", Key: "k",
		Validity: neostore.Validity{ExpiresOn: neostore.At(maxTime)}, DueAt: neostore.At(w0)}
}

func delivery(id, sub string, e neostore.Event, next time.Time) neostore.Delivery {
	return neostore.Delivery{ID: id, SubscriptionID: sub, Event: e, State: neostore.DeliveryPending, CreatedAt: next, NextAttemptAt: next}
}

func mustCreateWebhook(t *testing.T, ws neostore.WebhookStore, w neostore.WebhookSubscription) {
	t.Helper()
	if err := ws.CreateWebhook(t.Context(), w); err != nil {
		t.Fatalf("CreateWebhook(%s): %v", w.ID, err)
	}
}

func mustGetWebhook(t *testing.T, ws neostore.WebhookStore, id string) neostore.WebhookSubscription {
	t.Helper()
	w, err := ws.GetWebhook(t.Context(), id)
	if err != nil {
		t.Fatalf("GetWebhook(%s): %v", id, err)
	}
	return w
}

func mustGetDelivery(t *testing.T, ws neostore.WebhookStore, id string) neostore.Delivery {
	t.Helper()
	d, err := ws.GetDelivery(t.Context(), id)
	if err != nil {
		t.Fatalf("GetDelivery(%s): %v", id, err)
	}
	return d
}

func mustFanOut(t *testing.T, ws neostore.WebhookStore, ds []neostore.Delivery) {
	t.Helper()
	if err := ws.FanOut(t.Context(), nil, ds); err != nil {
		t.Fatalf("FanOut: %v", err)
	}
}

func outbox(t *testing.T, ws neostore.WebhookStore) []neostore.OutboxEvent {
	t.Helper()
	evs, err := ws.OutboxEvents(t.Context(), 100)
	if err != nil {
		t.Fatalf("OutboxEvents: %v", err)
	}
	return evs
}

func lease(t *testing.T, ws neostore.WebhookStore, owner string, now time.Time, d time.Duration, limit int) []string {
	t.Helper()
	got, err := ws.LeaseDeliveries(t.Context(), owner, now, d, limit)
	if err != nil {
		t.Fatalf("LeaseDeliveries(%s): %v", owner, err)
	}
	var ids []string
	for _, d := range got {
		ids = append(ids, d.ID)
	}
	return ids
}

func listDeliveries(t *testing.T, ws neostore.WebhookStore, sub string, failedOnly bool, limit int) []string {
	t.Helper()
	got, err := ws.ListDeliveries(t.Context(), sub, failedOnly, limit)
	if err != nil {
		t.Fatalf("ListDeliveries(%s): %v", sub, err)
	}
	var ids []string
	for _, d := range got {
		ids = append(ids, d.ID)
	}
	return ids
}

func dueEntries(t *testing.T, ws neostore.WebhookStore, kind neostore.DueKind, after, upTo time.Time, limit int) []string {
	t.Helper()
	es, err := ws.DueEntries(t.Context(), kind, after, upTo, limit)
	if err != nil {
		t.Fatalf("DueEntries: %v", err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Tenant+"/"+e.Key)
	}
	return out
}

func wantDue(t *testing.T, ws neostore.WebhookStore, kind neostore.DueKind, want []neostore.DueEntry) {
	t.Helper()
	got, err := ws.DueEntries(t.Context(), kind, minTime, maxTime, 100)
	if err != nil {
		t.Fatalf("DueEntries: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("DueEntries(kind %d) = %+v, want %+v", kind, got, want)
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Kind != w.Kind || !g.At.Equal(w.At) || g.Tenant != w.Tenant || g.Key != w.Key {
			t.Errorf("DueEntries[%d] = %+v, want %+v", i, g, w)
		}
		checkBound(t, "entry NotBefore", g.Validity.NotBefore, w.Validity.NotBefore, true)
		checkBound(t, "entry ExpiresOn", g.Validity.ExpiresOn, w.Validity.ExpiresOn, true)
		checkBound(t, "entry CreatedOn", g.CreatedOn, w.CreatedOn, true)
	}
}

func wantCursor(t *testing.T, ws neostore.WebhookStore, want neostore.Bound) {
	t.Helper()
	got, err := ws.DueCursor(t.Context())
	if err != nil {
		t.Fatalf("DueCursor: %v", err)
	}
	checkBound(t, "DueCursor", got, want, true)
}

func wantPending(t *testing.T, ws neostore.WebhookStore, n int, oldest neostore.Bound) {
	t.Helper()
	got, gotOldest, err := ws.PendingDeliveries(t.Context())
	if err != nil {
		t.Fatalf("PendingDeliveries: %v", err)
	}
	if got != n {
		t.Errorf("PendingDeliveries count = %d, want %d", got, n)
	}
	checkBound(t, "oldest pending", gotOldest, oldest, true)
}

func checkWebhook(t *testing.T, got, want neostore.WebhookSubscription) {
	t.Helper()
	if got.ID != want.ID || got.Name != want.Name || got.Tenant != want.Tenant || got.URL != want.URL ||
		!slices.Equal(got.Events, want.Events) || !slices.Equal(got.Leads, want.Leads) || !got.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("webhook = %+v, want %+v", got, want)
	}
	checkBound(t, "DisabledAt", got.DisabledAt, want.DisabledAt, true)
	if len(got.Secrets) != len(want.Secrets) {
		t.Fatalf("Secrets = %d, want %d", len(got.Secrets), len(want.Secrets))
	}
	for i := range got.Secrets {
		if !slices.Equal(got.Secrets[i].Sealed, want.Secrets[i].Sealed) {
			t.Errorf("Secrets[%d].Sealed = %s, want %s", i, abbrev(got.Secrets[i].Sealed), abbrev(want.Secrets[i].Sealed))
		}
		checkBound(t, fmt.Sprintf("Secrets[%d].ExpiresAt", i), got.Secrets[i].ExpiresAt, want.Secrets[i].ExpiresAt, true)
	}
}

func checkEvent(t *testing.T, got, want neostore.Event) {
	t.Helper()
	if got.ID != want.ID || got.Type != want.Type || !got.Timestamp.Equal(want.Timestamp) || got.Tenant != want.Tenant ||
		got.Key != want.Key || got.TraceID != want.TraceID || got.Created != want.Created {
		t.Errorf("event = %+v, want %+v", got, want)
	}
	checkBound(t, want.ID+" NotBefore", got.Validity.NotBefore, want.Validity.NotBefore, true)
	checkBound(t, want.ID+" ExpiresOn", got.Validity.ExpiresOn, want.Validity.ExpiresOn, true)
	checkBound(t, want.ID+" DueAt", got.DueAt, want.DueAt, true)
}

func checkDelivery(t *testing.T, got, want neostore.Delivery) {
	t.Helper()
	checkEvent(t, got.Event, want.Event)
	got.Event, want.Event = neostore.Event{}, neostore.Event{}
	for _, p := range []*neostore.Delivery{&got, &want} {
		p.CreatedAt, p.NextAttemptAt = p.CreatedAt.UTC(), p.NextAttemptAt.UTC()
		p.LastAttemptAt, p.FinishedAt = neostore.BoundOf(p.LastAttemptAt.Ptr()), neostore.BoundOf(p.FinishedAt.Ptr())
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("delivery = %+v, want %+v", got, want)
	}
}
