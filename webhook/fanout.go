package webhook

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/neostore/neostore-secrets"
)

// wants reports whether s is enabled and takes events of typ about
// tenant's secrets.
func wants(s neostore.WebhookSubscription, typ, tenant string) bool {
	if s.DisabledAt.Set || (s.Tenant != tenant && s.Tenant != "*") {
		return false
	}
	return len(s.Events) == 0 || slices.Contains(s.Events, typ)
}

// newDelivery returns e's pending delivery to sub, due at once.
func newDelivery(e neostore.Event, sub string, now time.Time) neostore.Delivery {
	return neostore.Delivery{
		ID:             DeliveryID(e.ID, sub),
		SubscriptionID: sub,
		Event:          e,
		State:          neostore.DeliveryPending,
		CreatedAt:      now,
		NextAttemptAt:  now,
	}
}

// timeEvent returns the time event of typ for entry, due at due (lead
// before the window end for secret.expiring, 0 otherwise).
func timeEvent(typ string, e neostore.DueEntry, lead time.Duration) neostore.Event {
	due := e.At.Add(-lead)
	return neostore.Event{
		ID:        TimeEventID(typ, e.Tenant, e.Key, e.At, lead, e.CreatedOn),
		Type:      typ,
		Timestamp: due,
		Tenant:    e.Tenant,
		Key:       e.Key,
		Validity:  e.Validity,
		DueAt:     neostore.At(due),
	}
}

// timeDeliveries returns the deliveries of a time event to every
// subscription that wants it, has its lead (secret.expiring) and existed
// when it fell due.
func timeDeliveries(ev neostore.Event, lead time.Duration, subs []neostore.WebhookSubscription, now time.Time) []neostore.Delivery {
	var ds []neostore.Delivery
	for _, s := range subs {
		if !wants(s, ev.Type, ev.Tenant) || s.CreatedAt.After(ev.DueAt.At) {
			continue
		}
		if ev.Type == neostore.EventSecretExpiring && !slices.Contains(s.Leads, lead) {
			continue
		}
		ds = append(ds, newDelivery(ev, s.ID, now))
	}
	return ds
}

// fanOut turns a batch of outbox events into deliveries, one per
// subscription that wants each, and removes the events, in one store
// transaction (deliveries are stored if absent, so a crash just redoes
// it). A secret.updated whose secret has less time left than a lead also
// gets that lead's secret.expiring at once, when the due scan has passed
// its due time already. It reports whether the outbox had more.
func (d *Dispatcher) fanOut(ctx context.Context, subs []neostore.WebhookSubscription) (bool, error) {
	evs, err := d.store.OutboxEvents(ctx, outboxBatch)
	if err != nil || len(evs) == 0 {
		return false, wrap("read outbox", err)
	}
	cursor, err := d.store.DueCursor(ctx)
	if err != nil {
		return false, wrap("read due cursor", err)
	}
	now := d.now()
	seqs := make([]uint64, 0, len(evs))
	var ds []neostore.Delivery
	for _, oe := range evs {
		seqs = append(seqs, oe.Seq)
		e := oe.Event
		for _, s := range subs {
			if wants(s, e.Type, e.Tenant) && !s.CreatedAt.After(e.Timestamp) {
				ds = append(ds, newDelivery(e, s.ID, now))
			}
		}
		late, err := d.passedLeads(ctx, e, cursor, subs, now)
		if err != nil {
			return false, err
		}
		ds = append(ds, late...)
	}
	if err := d.store.FanOut(ctx, seqs, ds); err != nil {
		return false, wrap("fan out", err)
	}
	return len(evs) == outboxBatch, nil
}

// passedLeads returns the secret.expiring deliveries a put owes at once:
// those of every lead L with E-L at or before the scan's cursor (the scan
// will never reach them) and E after the put. Each gets the id the scan
// would give it, from the due entry of the window; when the entry is gone
// (the window moved again, or the secret was deleted) nothing is owed.
func (d *Dispatcher) passedLeads(ctx context.Context, e neostore.Event, cursor neostore.Bound, subs []neostore.WebhookSubscription, now time.Time) ([]neostore.Delivery, error) {
	exp := e.Validity.ExpiresOn
	if e.Type != neostore.EventSecretUpdated || !exp.Set || !exp.At.After(e.Timestamp) {
		return nil, nil
	}
	passed := e.Timestamp // before the first scan, what had passed at the put
	if cursor.Set {
		passed = cursor.At
	}
	var (
		entry  neostore.DueEntry
		looked bool
		ds     []neostore.Delivery
	)
	for _, s := range subs {
		if !wants(s, neostore.EventSecretExpiring, e.Tenant) || s.CreatedAt.After(e.Timestamp) {
			continue
		}
		for _, lead := range s.Leads {
			if exp.At.Add(-lead).After(passed) {
				continue
			}
			if !looked {
				var err error
				if entry, err = d.dueEntry(ctx, e.Tenant, e.Key, exp.At); err != nil {
					return nil, err
				}
				looked = true
			}
			if entry.Key == "" {
				return nil, nil
			}
			ev := timeEvent(neostore.EventSecretExpiring, entry, lead)
			ds = append(ds, newDelivery(ev, s.ID, now))
		}
	}
	return ds, nil
}

// dueEntry returns the expires entry of tenant's key at at, or the zero
// entry when there is none.
func (d *Dispatcher) dueEntry(ctx context.Context, tenant, key string, at time.Time) (neostore.DueEntry, error) {
	es, err := d.store.DueEntries(ctx, neostore.DueExpires, at.Add(-time.Nanosecond), at, d.dueBatch*8)
	if err != nil {
		return neostore.DueEntry{}, wrap("read due entry", err)
	}
	for _, e := range es {
		if e.Tenant == tenant && e.Key == key && e.At.Equal(at) {
			return e, nil
		}
	}
	return neostore.DueEntry{}, nil
}

// dueQuery is one range the due scan reads: entries of kind offset by lead
// (the scan's cursor C maps to window ends C+lead).
type dueQuery struct {
	kind neostore.DueKind
	typ  string
	lead time.Duration
}

// scan makes the time events that fell due in (C, now], C the store's due
// cursor, and moves the cursor to now, in one store transaction; another
// node's scan winning the cursor (ECONFLICT) means it did the work. The
// first scan only sets the cursor. A range with more entries than a batch
// moves the cursor only as far as its entries were read, and scan reports
// that it stopped short of now.
func (d *Dispatcher) scan(ctx context.Context, now time.Time, subs []neostore.WebhookSubscription) (short bool, err error) {
	cur, err := d.store.DueCursor(ctx)
	if err != nil {
		return false, wrap("read due cursor", err)
	}
	if !cur.Set {
		return false, conflictOK(d.store.AdvanceDueCursor(ctx, cur, now, nil), "start due cursor")
	}
	if !now.After(cur.At) {
		return false, nil
	}
	var qs []dueQuery
	var leads []time.Duration
	want := map[string]bool{}
	for _, s := range subs {
		if s.DisabledAt.Set {
			continue
		}
		for _, t := range neostore.EventTypes {
			if len(s.Events) == 0 || slices.Contains(s.Events, t) {
				want[t] = true
			}
		}
		if len(s.Events) == 0 || slices.Contains(s.Events, neostore.EventSecretExpiring) {
			for _, l := range s.Leads {
				if l > 0 && !slices.Contains(leads, l) {
					leads = append(leads, l)
				}
			}
		}
	}
	for _, l := range leads {
		qs = append(qs, dueQuery{neostore.DueExpires, neostore.EventSecretExpiring, l})
	}
	if want[neostore.EventSecretExpired] {
		qs = append(qs, dueQuery{neostore.DueExpires, neostore.EventSecretExpired, 0})
	}
	if want[neostore.EventSecretActivated] {
		qs = append(qs, dueQuery{neostore.DueActivates, neostore.EventSecretActivated, 0})
	}

	upTo := now
	found := make([][]neostore.DueEntry, len(qs))
	for i, q := range qs {
		es, reach, err := d.dueRange(ctx, q, cur.At, upTo)
		if err != nil {
			return false, err
		}
		found[i] = es
		if reach.Before(upTo) {
			upTo = reach
		}
	}
	var ds []neostore.Delivery
	for i, q := range qs {
		for _, e := range found[i] {
			if e.At.Add(-q.lead).After(upTo) {
				continue // beyond where a shorter range stopped: the next scan's
			}
			ds = append(ds, timeDeliveries(timeEvent(q.typ, e, q.lead), q.lead, subs, now)...)
		}
	}
	if len(ds) == 0 && upTo.Sub(cur.At) < idleAdvance {
		// Nothing fell due: leave the cursor (the next scan reads the
		// same range again) rather than write it four times a second.
		return false, nil
	}
	return upTo.Before(now), conflictOK(d.store.AdvanceDueCursor(ctx, cur, upTo, ds), "advance due cursor")
}

// dueRange reads q's entries due in (after, upTo] and returns how far the
// read reached: upTo, or, for a full batch, just before its last window
// end (entries at that end may lie beyond the batch and are read again
// next time; their ids make the second reading harmless).
func (d *Dispatcher) dueRange(ctx context.Context, q dueQuery, after, upTo time.Time) ([]neostore.DueEntry, time.Time, error) {
	for limit := d.dueBatch; ; limit *= 8 {
		es, err := d.store.DueEntries(ctx, q.kind, after.Add(q.lead), upTo.Add(q.lead), limit)
		if err != nil {
			return nil, upTo, wrap("read due entries", err)
		}
		if len(es) < limit {
			return es, upTo, nil
		}
		last := es[len(es)-1].At
		if !es[0].At.Equal(last) {
			return es, last.Add(-q.lead - time.Nanosecond), nil
		}
		if limit >= d.dueBatch*64 {
			// So many windows end at one instant that a batch cannot
			// hold them: send what was read rather than stall the scan.
			d.log.Error("webhook: due entries at one instant beyond the batch; some are skipped", "count", len(es), "type", q.typ)
			return es, upTo, nil
		}
	}
}

// conflictOK returns nil for ECONFLICT (another node moved the cursor) and
// err wrapped otherwise.
func conflictOK(err error, what string) error {
	if neostore.ErrorCode(err) == neostore.ECONFLICT {
		return nil
	}
	return wrap(what, err)
}

func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("webhook: %s: %w", what, err)
}
