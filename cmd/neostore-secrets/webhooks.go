package main

import (
	"context"
	"flag"
	"log/slog"
	"sync"
	"time"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/metrics"
	"github.com/neostore/neostore-secrets/webhook"
)

// defaultWebhookRetryFor is how long a delivery is retried after it was
// made, before it is kept as failed.
const defaultWebhookRetryFor = webhook.DefaultRetryFor

// webhookConfig configures webhook notifications. The zero value of each
// field means its documented default.
type webhookConfig struct {
	Mode          string        // on (default) or off: whether this node sends webhooks
	AllowInsecure bool          // accept and send to http:// endpoints
	AllowPrivate  bool          // send to loopback, private and link-local addresses
	RetryFor      time.Duration // default 24h
	Lease         time.Duration // default 60s; at least twice the 10 s attempt timeout
}

// registerPolicy registers the flags that say where webhooks may go; the
// webhook commands take them too, for when they work on a store directly.
func (c *webhookConfig) registerPolicy(fs *flag.FlagSet) {
	fs.BoolVar(&c.AllowInsecure, "webhook-allow-insecure", false, "accept http:// webhook endpoints (messages are signed, not encrypted: readable on the way)")
	fs.BoolVar(&c.AllowPrivate, "webhook-allow-private", false, "let webhook endpoints resolve to loopback, private (RFC 1918, 100.64/10), link-local and unique-local addresses (danger: whoever adds a subscription can make the server post to internal services)")
}

func (c *webhookConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.Mode, "webhooks", "on", "on: this node sends webhook notifications; off: it sends none (events are still recorded, for the nodes that do)")
	c.registerPolicy(fs)
	fs.DurationVar(&c.RetryFor, "webhook-retry-for", defaultWebhookRetryFor, "how long a webhook delivery is retried (exponential backoff, at most an hour apart) before it is kept as failed")
	fs.DurationVar(&c.Lease, "webhook-lease", webhook.DefaultLease, "how long a node holds the webhook deliveries it took: a node that dies leaves them to the others after this long (at least 20s, twice the attempt timeout)")
}

func (c *webhookConfig) check() error {
	switch c.Mode {
	case "", "on", "off":
	default:
		return usageError("--webhooks %q: want on or off", c.Mode)
	}
	if c.RetryFor < 0 {
		return usageError("--webhook-retry-for must not be negative")
	}
	if err := c.options().Check(); err != nil || c.Lease < 0 {
		return usageError("--webhook-lease %v: want at least %v, twice the %v attempt timeout", c.Lease, 2*webhook.DefaultTimeout, webhook.DefaultTimeout)
	}
	return nil
}

// options returns the dispatcher options the flags set.
func (c *webhookConfig) options() webhook.Options {
	return webhook.Options{AllowInsecure: c.AllowInsecure, AllowPrivate: c.AllowPrivate, RetryFor: c.retryFor(), Lease: c.Lease}
}

// on reports whether this node sends webhooks.
func (c *webhookConfig) on() bool { return c.Mode != "off" }

func (c *webhookConfig) retryFor() time.Duration {
	if c.RetryFor <= 0 {
		return defaultWebhookRetryFor
	}
	return c.RetryFor
}

// notifyingStore wakes the dispatcher once a change that may have recorded
// an event (Change.Notice) has committed, so that a delivery starts at
// once rather than at the next poll. It wraps only the store the Secret
// API writes through.
type notifyingStore struct {
	neostore.Store
	notify func()
}

func (s notifyingStore) PutSecret(ctx context.Context, tenant, key string, sec neostore.SealedSecret, c neostore.Change) error {
	err := s.Store.PutSecret(ctx, tenant, key, sec, c)
	if err == nil && c.Notice != nil {
		s.notify()
	}
	return err
}

func (s notifyingStore) DeleteSecret(ctx context.Context, tenant, key string, c neostore.Change) error {
	err := s.Store.DeleteSecret(ctx, tenant, key, c)
	if err == nil && c.Notice != nil {
		s.notify()
	}
	return err
}

// ChangeJournal is the wrapped store's: wrapping must not hide that it
// commits audit records with its changes.
func (s notifyingStore) ChangeJournal() neostore.ChangeJournal { return s.Store.ChangeJournal() }

// webhookObserver is the dispatcher's webhook.Observer: it feeds the
// metrics, and records in the audit trail every subscription this node
// saw disabled (an endpoint that answered 410 Gone), which the dispatcher
// reports only as a count.
type webhookObserver struct {
	metrics *metrics.Metrics
	disable chan struct{} // a 410 was seen; capacity 1
}

func newWebhookObserver(m *metrics.Metrics) *webhookObserver {
	return &webhookObserver{metrics: m, disable: make(chan struct{}, 1)}
}

func (o *webhookObserver) Attempt(r webhook.Result) {
	o.metrics.WebhookAttempt(string(r))
	if r == webhook.Disabled {
		select {
		case o.disable <- struct{}{}:
		default:
		}
	}
}

func (o *webhookObserver) Pending(count int, oldest time.Duration) {
	o.metrics.WebhookPending(count, oldest)
}

func (o *webhookObserver) DisabledEndpoints(count int) { o.metrics.WebhookDisabledEndpoints(count) }

// recentlyDisabled is how long after an endpoint was disabled this node
// may still record it as its own doing.
const recentlyDisabled = time.Minute

// auditDisabled records webhook.disable for each subscription that became
// disabled since it last looked, whenever this node saw a 410, until ctx
// is done. The subscriptions disabled before it started are not recorded
// again.
func (o *webhookObserver) auditDisabled(ctx context.Context, wg *sync.WaitGroup, store neostore.WebhookStore, auditor neostore.Auditor, now func() time.Time, logger *slog.Logger) {
	if auditor == nil {
		return
	}
	seen := map[string]bool{}
	look := func(record bool) {
		subs, err := store.ListWebhooks(ctx)
		if err != nil {
			if ctx.Err() == nil {
				logger.Warn("webhook: could not list subscriptions to record the disabled ones", "err", err)
			}
			return
		}
		for _, s := range subs {
			if !s.DisabledAt.Set || seen[s.ID] {
				continue
			}
			seen[s.ID] = true
			// Another node may have disabled it a while ago, and recorded
			// it: this node records only what was disabled just now.
			if !record || now().Sub(s.DisabledAt.At) > recentlyDisabled {
				continue
			}
			err := auditor.Audit(ctx, &neostore.AuditRecord{
				Time: now().UTC(), Op: neostore.OpWebhookDisable, Tenant: s.Tenant, Key: s.ID,
				Principal: neostore.AuditPrincipal{Kind: "system", ID: "webhook-dispatcher"}, Status: 410, ClientAddr: "-",
			})
			if err != nil {
				logger.Warn("webhook: could not record a disabled subscription in the audit trail", "subscription", s.ID, "err", err)
			}
		}
	}
	wg.Go(func() {
		look(false)
		for {
			select {
			case <-ctx.Done():
				return
			case <-o.disable:
				look(true)
			}
		}
	})
}
