package neostore

import (
	"context"
	"time"
)

// Audit operations of webhook subscriptions: every change to one is
// recorded, with the subscription id in the record's key field and its
// tenant ("*" for every tenant), never its URL or signing secret.
const (
	OpWebhookAdd          = "webhook.add"
	OpWebhookRemove       = "webhook.remove"
	OpWebhookRotateSecret = "webhook.rotate-secret"
	OpWebhookTest         = "webhook.test"
	OpWebhookRedeliver    = "webhook.redeliver"
	OpWebhookDisable      = "webhook.disable" // the endpoint answered 410 Gone
)

// WebhookAllTenants is the tenant of a subscription to every tenant's events.
const WebhookAllTenants = "*"

// NewWebhook describes a subscription to add.
type NewWebhook struct {
	// ID is the new subscription's id; empty lets the manager make one. The
	// audit layer makes it, so that the record of the addition names it.
	ID     string
	Tenant string // a tenant id, or WebhookAllTenants
	URL    string
	Events []string        // empty: every type of EventTypes
	Leads  []time.Duration // secret.expiring lead times; empty: the default leads
	Name   string
}

// WebhookTestResult is the outcome of sending a webhook.test event.
type WebhookTestResult struct {
	Delivered bool          // the endpoint answered 2xx
	Status    int           // the HTTP status; 0 when none came
	Duration  time.Duration // from the first byte sent to the status received
	Error     string        // a fixed phrase ("destination refused", "timeout"), when no 2xx came
}

// WebhookManager manages webhook subscriptions: the operator's `webhook`
// commands, through a running server's admin socket or directly against a
// store. Signing secrets leave it only as the return of Add and
// RotateSecret, shown once; every subscription it returns carries its
// secrets sealed, or none.
type WebhookManager interface {
	// Add stores a new subscription and returns its signing secret
	// ("whsec_" + base64). It returns EINVALID, storing nothing, for a URL
	// the server would not send to, an invalid tenant, an unknown event
	// type or a lead out of range.
	Add(ctx context.Context, req NewWebhook) (secret string, sub WebhookSubscription, err error)

	// List returns every subscription, by creation time then id.
	List(ctx context.Context) ([]WebhookSubscription, error)

	// Remove deletes a subscription and its deliveries, or returns
	// ENOTFOUND.
	Remove(ctx context.Context, id string) error

	// RotateSecret gives a subscription a new signing secret and returns it.
	// The previous current secret keeps signing next to it for grace (0:
	// it stops at once); older ones keep their own end. It returns
	// ENOTFOUND for an unknown id.
	RotateSecret(ctx context.Context, id string, grace time.Duration) (secret string, sub WebhookSubscription, err error)

	// Test sends a webhook.test event to the subscription at once, outside
	// the queue, and returns the outcome; a refusal (destination refused,
	// timeout, a non-2xx status) is a result, not an error. It returns
	// ENOTFOUND for an unknown id.
	Test(ctx context.Context, id string) (WebhookTestResult, error)

	// Deliveries returns the subscription's most recent deliveries, newest
	// first; only the failed ones when failedOnly. It returns ENOTFOUND for
	// an unknown subscription.
	Deliveries(ctx context.Context, id string, failedOnly bool) ([]Delivery, error)

	// Redeliver makes a delivery pending again, due at once with its
	// attempts reset. It returns ENOTFOUND for an unknown delivery.
	Redeliver(ctx context.Context, deliveryID string) error
}
