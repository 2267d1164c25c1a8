package webhook

import (
	"context"
	"time"

	"github.com/neostore/neostore-secrets"
)

// deliver leases as many due deliveries as there are free slots (up to
// maxLeased leased and not yet done) and starts their attempts, which take
// turns for maxInFlight sends at once and maxPerEndpoint to one endpoint.
// It reports whether the slots limited the lease: every slot is taken
// (then more deliveries may be due).
func (d *Dispatcher) deliver(ctx context.Context, subs []neostore.WebhookSubscription) (bool, error) {
	free := cap(d.slots) - len(d.slots)
	if free <= 0 {
		return true, nil
	}
	leased := d.now()
	ds, err := d.store.LeaseDeliveries(ctx, d.owner, leased, d.lease, free)
	if err != nil {
		return false, wrap("lease deliveries", err)
	}
	byID := make(map[string]neostore.WebhookSubscription, len(subs))
	for _, s := range subs {
		byID[s.ID] = s
	}
	for _, dl := range ds {
		sub, ok := byID[dl.SubscriptionID]
		if !ok {
			// Created after this pass listed the subscriptions (another
			// node fanned out to it), or removed: ask the store.
			var err error
			sub, err = d.store.GetWebhook(ctx, dl.SubscriptionID)
			if ok = err == nil; ok {
				byID[sub.ID] = sub
			} else if neostore.ErrorCode(err) != neostore.ENOTFOUND {
				d.log.Warn("webhook: cannot read a delivery's subscription; it is retried when its lease ends", "delivery", dl.ID, "err", err)
				continue
			}
		}
		d.slots <- struct{}{}
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			defer func() {
				<-d.slots
				select { // Run may be waiting for a slot
				case d.freed <- struct{}{}:
				default:
				}
			}()
			d.attempt(ctx, dl, sub, ok, leased.Add(d.lease))
		}()
	}
	return len(ds) == free, nil
}

// endpoint returns sub's semaphore of maxPerEndpoint tokens.
func (d *Dispatcher) endpoint(id string) chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, ok := d.endpoints[id]
	if !ok {
		c = make(chan struct{}, maxPerEndpoint)
		d.endpoints[id] = c
	}
	return c
}

// attempt makes one attempt on a delivery leased until until and records
// its outcome. An attempt that could not end before the lease does (it
// waited long for the endpoint's slot) is not made: another node may take
// the delivery when the lease ends, and two must not send it at once.
func (d *Dispatcher) attempt(ctx context.Context, dl neostore.Delivery, sub neostore.WebhookSubscription, found bool, until time.Time) {
	var o Outcome
	switch {
	case !found:
		o = Outcome{Result: Failed, Error: phraseRemoved}
	case sub.DisabledAt.Set:
		o = Outcome{Result: Failed, Error: phraseDisabled}
	default:
		sem := d.endpoint(sub.ID)
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		select {
		case d.sending <- struct{}{}:
		case <-ctx.Done():
			<-sem
			return
		}
		if d.now().Add(d.timeout).After(until) {
			<-d.sending
			<-sem
			d.log.Warn("webhook: lease too near its end for an attempt; the delivery waits for the lease to end", "delivery", dl.ID, "subscription", sub.ID)
			return
		}
		o = d.send(ctx, dl, sub)
		<-d.sending
		<-sem
		if ctx.Err() != nil {
			return // cut short by shutdown: the lease's end lets it be sent again
		}
		dl.Attempts++
		dl.LastAttemptAt = neostore.At(d.now())
		dl.LastStatus = o.Status
	}
	d.record(ctx, dl, sub, o)
}

// send signs and posts dl's event to sub.
func (d *Dispatcher) send(ctx context.Context, dl neostore.Delivery, sub neostore.WebhookSubscription) Outcome {
	now := d.now()
	keys, err := d.keys(sub, now)
	if err != nil {
		d.log.Error("webhook: cannot sign", "delivery", dl.ID, "subscription", sub.ID, "err", err)
		return Outcome{Result: Retry, Error: phraseNoSecret}
	}
	body, err := Payload(dl.Event)
	if err != nil {
		d.log.Error("webhook: cannot encode event", "delivery", dl.ID, "err", err)
		return Outcome{Result: Failed, Error: phraseFinalStatus}
	}
	return d.sender.send(ctx, sub.URL, dl.Event.ID, now, body, keys)
}

// record stores an attempt's outcome (settle); 410 disables the
// subscription.
func (d *Dispatcher) record(ctx context.Context, dl neostore.Delivery, sub neostore.WebhookSubscription, o Outcome) {
	now := d.now()
	dl, result := settle(dl, o, now, d.retryFor, d.jitter)
	if o.Result == Disabled {
		d.disable(ctx, sub.ID, now)
	}
	if err := d.store.CompleteAttempt(ctx, d.owner, dl); err != nil {
		if neostore.ErrorCode(err) == neostore.ECONFLICT {
			d.log.Warn("webhook: lease lost before the attempt was recorded; it may be sent again", "delivery", dl.ID)
		} else {
			d.log.Error("webhook: cannot record attempt", "delivery", dl.ID, "err", err)
		}
		return
	}
	d.observer.Attempt(result)
	level := d.log.Debug // a delivered message is the normal case
	if result != Delivered {
		level = d.log.Warn
	}
	level("webhook: attempt", "delivery", dl.ID, "subscription", dl.SubscriptionID, "event", dl.Event.ID,
		"type", dl.Event.Type, "result", result, "status", o.Status, "error", dl.LastError, "attempts", dl.Attempts)
}

// disable marks subscription id disabled at now: it answered 410 Gone.
func (d *Dispatcher) disable(ctx context.Context, id string, now time.Time) {
	s, err := d.store.GetWebhook(ctx, id)
	if err != nil {
		d.log.Error("webhook: cannot read subscription to disable it", "subscription", id, "err", err)
		return
	}
	if s.DisabledAt.Set {
		return
	}
	s.DisabledAt = neostore.At(now)
	if err := d.store.UpdateWebhook(ctx, s); err != nil {
		d.log.Error("webhook: cannot disable subscription", "subscription", id, "err", err)
		return
	}
	d.log.Warn("webhook: endpoint answered 410 Gone; subscription disabled", "subscription", id)
}

// settle returns dl after an attempt's outcome o at now, and the result to
// report: delivered, failed, or pending again after the backoff unless
// that lies past the delivery's creation plus retryFor (then failed, "out
// of retries").
func settle(dl neostore.Delivery, o Outcome, now time.Time, retryFor time.Duration, jitter func(time.Duration) time.Duration) (neostore.Delivery, Result) {
	dl.LastError = o.Error
	result := o.Result
	switch o.Result {
	case Delivered:
		dl.State = neostore.DeliveryDelivered
	case Failed, Disabled:
		dl.State = neostore.DeliveryFailed
	case Retry:
		next := now.Add(backoff(dl.Attempts, o.RetryAfter, jitter))
		if next.After(dl.CreatedAt.Add(retryFor)) {
			dl.State = neostore.DeliveryFailed
			dl.LastError = phraseExhausted + ": " + o.Error
			result = Failed
		} else {
			dl.State = neostore.DeliveryPending
			dl.NextAttemptAt = next
		}
	}
	if dl.State != neostore.DeliveryPending {
		dl.FinishedAt = neostore.At(now)
	}
	return dl, result
}
