package neostore

import (
	"context"
	"time"
)

// The event types a webhook subscription can receive. Payloads are thin:
// they name the secret and its window, never its value.
const (
	EventSecretUpdated   = "secret.updated"   // a PUT; Event.Created says whether it created the key
	EventSecretDeleted   = "secret.deleted"   // a DELETE of a stored key
	EventSecretExpiring  = "secret.expiring"  // once per lead time before expiresOn
	EventSecretExpired   = "secret.expired"   // at expiresOn
	EventSecretActivated = "secret.activated" // at notBefore, when it was in the future at the PUT
	EventWebhookTest     = "webhook.test"     // `webhook test`, sent at once and not stored
)

// EventTypes lists every type a subscription may ask for, in the order
// `webhook add --events` documents them.
var EventTypes = []string{EventSecretUpdated, EventSecretDeleted, EventSecretExpiring, EventSecretExpired, EventSecretActivated}

// Event is one notification. Its ID is the Standard Webhooks message id
// (the webhook-id header): the same for every endpoint it goes to and for
// every retry, so that a receiver can use it as its idempotency key.
type Event struct {
	ID        string
	Type      string
	Timestamp time.Time // when the change was made, or when a time event fell due
	Tenant    string
	Key       string
	Validity  Validity // the secret's window as of the change or the due time
	DueAt     Bound    // time events only: when the event fell due
	TraceID   string   // change events only: the trace id of the request that made it
	Created   bool     // secret.updated only: the PUT created the key
}

// ChangeNotice asks a store to record a change's event in its notification
// outbox, in the change's own transaction (Change.Notice), so that a crash
// never keeps the change and loses its event or the reverse. The store
// fills in the rest of the Event (type, tenant, key, window, created) from
// the change itself, and records nothing when no subscription covers the
// tenant or when a delete finds nothing to delete.
type ChangeNotice struct {
	EventID string    // the new event's id, made by the caller
	TraceID string    // the request's trace id
	At      time.Time // when the change is made, by the service's clock
}

// OutboxEvent is an event a store recorded with its change, waiting to be
// fanned out to the subscriptions that want it.
type OutboxEvent struct {
	Seq   uint64 // the outbox's order; unique within the store
	Event Event
}

// DueKind says which end of a secret's window a DueEntry is for.
type DueKind uint8

const (
	DueExpires   DueKind = iota + 1 // ExpiresOn: secret.expiring (before it, by a lead) and secret.expired
	DueActivates                    // NotBefore: secret.activated, indexed only when it lay after the PUT
)

// DueEntry is one line of the store's index of due times: a stored
// secret's window end. The store keeps the index in the transaction of
// every put and delete, so the index always describes the stored windows:
// a put that moves a window moves its entries, a delete removes them.
type DueEntry struct {
	Kind      DueKind
	At        time.Time // the window end: ExpiresOn or NotBefore
	Tenant    string
	Key       string
	Validity  Validity
	CreatedOn Bound // the secret's CreatedOn, so that a key deleted and put again is a new secret
}

// WebhookSubscription is an endpoint an operator subscribed to a tenant's
// events, managed like API keys.
type WebhookSubscription struct {
	ID        string // "wh_" and random characters
	Name      string
	Tenant    string          // a tenant id, or "*" for every tenant
	URL       string          // https, unless the server allows http
	Events    []string        // the event types it wants; empty means all of EventTypes
	Leads     []time.Duration // secret.expiring lead times, longest first
	Secrets   []WebhookSecret // signing secrets, the current one first
	CreatedAt time.Time
	// DisabledAt is set when the endpoint answered 410 Gone: nothing more is
	// sent to it, and its pending deliveries fail.
	DisabledAt Bound
}

// WebhookSecret is a subscription's signing secret, sealed by the master
// key. After `webhook rotate-secret` the old secret keeps signing next to
// the new one (both signatures in the header) until ExpiresAt.
type WebhookSecret struct {
	Sealed    []byte
	ExpiresAt Bound // unset for the current secret
}

// DeliveryState is where a delivery stands.
type DeliveryState string

const (
	DeliveryPending   DeliveryState = "pending"   // waiting for its next attempt
	DeliveryDelivered DeliveryState = "delivered" // a 2xx was received
	DeliveryFailed    DeliveryState = "failed"    // final: a final status, out of attempts, or the endpoint disabled
)

// Delivery is one event on its way to one subscription.
type Delivery struct {
	// ID is made from the event's id and the subscription's id, so that the
	// same event is never queued twice for one endpoint, whichever node or
	// scan queues it.
	ID             string
	SubscriptionID string
	Event          Event
	State          DeliveryState
	Attempts       int
	CreatedAt      time.Time
	NextAttemptAt  time.Time // pending only
	LastAttemptAt  Bound
	LastStatus     int    // the last attempt's HTTP status; 0 for none or a transport fault
	LastError      string // a fixed phrase of ours ("timeout", "private address refused"); never a Go error string
	FinishedAt     Bound  // delivered or failed
}

// WebhookStore keeps subscriptions, the outbox of change events, the index
// of due times and the deliveries, for the notification dispatcher. The
// embedded and PostgreSQL stores implement it. The outbox and the due index
// are written by PutSecret and DeleteSecret (Change.Notice), never here.
type WebhookStore interface {
	// CreateWebhook stores a new subscription. It returns EINVALID when the
	// id is taken.
	CreateWebhook(ctx context.Context, w WebhookSubscription) error
	// ListWebhooks returns every subscription, by creation time then id.
	ListWebhooks(ctx context.Context) ([]WebhookSubscription, error)
	// GetWebhook returns a subscription, or ENOTFOUND.
	GetWebhook(ctx context.Context, id string) (WebhookSubscription, error)
	// UpdateWebhook replaces a subscription (its secrets, its disabled
	// state), or returns ENOTFOUND.
	UpdateWebhook(ctx context.Context, w WebhookSubscription) error
	// DeleteWebhook removes a subscription and its deliveries, or returns
	// ENOTFOUND.
	DeleteWebhook(ctx context.Context, id string) error

	// OutboxEvents returns at most limit outbox events, oldest first.
	OutboxEvents(ctx context.Context, limit int) ([]OutboxEvent, error)
	// FanOut stores ds, skipping any whose id is stored already, and
	// removes the outbox events seqs (absent ones are ignored), in one
	// transaction.
	FanOut(ctx context.Context, seqs []uint64, ds []Delivery) error

	// DueEntries returns at most limit due entries of kind whose At lies in
	// (after, upTo], ordered by At, tenant, key.
	DueEntries(ctx context.Context, kind DueKind, after, upTo time.Time, limit int) ([]DueEntry, error)
	// DueCursor returns how far the due scan has come, unset before the
	// first scan.
	DueCursor(ctx context.Context) (Bound, error)
	// AdvanceDueCursor stores ds (skipping stored ids) and moves the cursor
	// from old to upTo, in one transaction. It returns ECONFLICT, and
	// stores nothing, when the cursor is no longer old or another node is
	// advancing it at the same moment: the scan is one node's at a time.
	AdvanceDueCursor(ctx context.Context, old Bound, upTo time.Time, ds []Delivery) error

	// LeaseDeliveries takes at most limit pending deliveries whose next
	// attempt is due at now and that no live lease holds, for owner until
	// now+lease, oldest due first. On PostgreSQL two nodes never take the
	// same delivery (FOR UPDATE SKIP LOCKED); a lease not completed by its
	// end (a node died) lets another node take the delivery.
	LeaseDeliveries(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]Delivery, error)
	// CompleteAttempt stores d, the outcome of an attempt on a delivery
	// owner leased (state, attempts, next attempt, last status), and
	// releases the lease. It returns ECONFLICT, and stores nothing, when
	// owner no longer holds the lease.
	CompleteAttempt(ctx context.Context, owner string, d Delivery) error
	// GetDelivery returns a delivery, or ENOTFOUND.
	GetDelivery(ctx context.Context, id string) (Delivery, error)
	// ListDeliveries returns at most limit of a subscription's deliveries,
	// newest first; only failed ones when failedOnly.
	ListDeliveries(ctx context.Context, subscriptionID string, failedOnly bool, limit int) ([]Delivery, error)
	// Redeliver makes a delivery pending again with its next attempt at at,
	// its attempts reset and its CreatedAt set to at (the retry window,
	// RetryFor after CreatedAt, starts again), or returns ENOTFOUND.
	Redeliver(ctx context.Context, id string, at time.Time) error
	// PendingDeliveries returns how many deliveries are pending and the
	// creation time of the oldest (unset when none).
	PendingDeliveries(ctx context.Context) (int, Bound, error)
	// PurgeDeliveries removes delivered and failed deliveries finished
	// before before, and returns how many it removed.
	PurgeDeliveries(ctx context.Context, before time.Time) (int, error)
}
