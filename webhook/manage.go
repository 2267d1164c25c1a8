package webhook

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/neostore/neostore-secrets"
)

// Bounds of what `webhook add` accepts.
const (
	// MaxLeads is how many secret.expiring lead times one subscription
	// may have.
	MaxLeads = 10
	// MaxLead is the longest lead time: a secret.expiring event a year
	// before the expiry.
	MaxLead = 365 * 24 * time.Hour
	// MaxRotationGrace is the longest time an old signing secret keeps
	// signing after `webhook rotate-secret`.
	MaxRotationGrace = 30 * 24 * time.Hour
	// maxNameBytes bounds a subscription's label.
	maxNameBytes = 200
	// maxListedDeliveries is how many deliveries `webhook deliveries` shows.
	maxListedDeliveries = 100
)

// DefaultLeads are the secret.expiring lead times of a subscription that
// names none: 30 days, 7 days and 1 day before the expiry.
var DefaultLeads = []time.Duration{720 * time.Hour, 168 * time.Hour, 24 * time.Hour}

// SecretSealer seals a subscription's signing secret for the store;
// envelope.Master implements it.
type SecretSealer interface {
	SealSigningSecret(subscriptionID string, secret []byte) ([]byte, error)
}

// ManagerOptions are the dependencies of a Manager.
type ManagerOptions struct {
	Store  neostore.WebhookStore
	Sealer SecretSealer
	// Dispatcher sends `webhook test` events; nil refuses them.
	Dispatcher *Dispatcher
	// AllowInsecure accepts http:// URLs (the server's
	// --webhook-allow-insecure): it must be the sending side's setting,
	// or subscriptions would be added that never deliver.
	AllowInsecure bool
	// Notify, when set, is called after a change that queues work (a
	// redelivery), so that the dispatcher need not wait for its next poll.
	Notify func()
	Now    func() time.Time
}

// Manager implements neostore.WebhookManager over a store: it validates
// subscriptions, makes and seals their signing secrets, and hands tests to
// the dispatcher. Auditing is a layer around it (admin.AuditedWebhooks).
type Manager struct {
	opts ManagerOptions
}

var _ neostore.WebhookManager = (*Manager)(nil)

// NewManager returns a Manager with opts.
func NewManager(opts ManagerOptions) *Manager {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Manager{opts: opts}
}

// lowerBase32 is the id alphabet: RFC 4648 base32 in lower case, unpadded.
var lowerBase32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewSubscriptionID returns a fresh subscription id: "wh_" and 26 base32
// characters of 16 random bytes.
func NewSubscriptionID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return "wh_" + lowerBase32.EncodeToString(b)
}

// validSubscriptionID reports whether id has the shape NewSubscriptionID
// gives.
func validSubscriptionID(id string) bool {
	rest, ok := strings.CutPrefix(id, "wh_")
	if !ok || len(rest) != 26 {
		return false
	}
	_, err := lowerBase32.DecodeString(rest)
	return err == nil
}

// newSealedSecret makes a signing secret (NewSigningSecret) and seals it
// for subscription id. The sealed form is the "whsec_" string itself,
// which SigningKey reads.
func (m *Manager) newSealedSecret(id string) (shown string, sealed []byte, err error) {
	shown, err = NewSigningSecret()
	if err != nil {
		return "", nil, fmt.Errorf("webhook: make signing secret: %w", err)
	}
	plain := []byte(shown)
	defer clear(plain)
	if sealed, err = m.opts.Sealer.SealSigningSecret(id, plain); err != nil {
		return "", nil, err
	}
	return shown, sealed, nil
}

// Add implements neostore.WebhookManager.
func (m *Manager) Add(ctx context.Context, req neostore.NewWebhook) (string, neostore.WebhookSubscription, error) {
	sub, err := m.validate(req)
	if err != nil {
		return "", neostore.WebhookSubscription{}, err
	}
	shown, sealed, err := m.newSealedSecret(sub.ID)
	if err != nil {
		return "", neostore.WebhookSubscription{}, err
	}
	sub.Secrets = []neostore.WebhookSecret{{Sealed: sealed}}
	sub.CreatedAt = m.opts.Now().UTC()
	if err := m.opts.Store.CreateWebhook(ctx, sub); err != nil {
		return "", neostore.WebhookSubscription{}, err
	}
	return shown, withoutSealed(sub), nil
}

// validate checks req and returns the subscription it describes, without
// secrets or creation time.
func (m *Manager) validate(req neostore.NewWebhook) (neostore.WebhookSubscription, error) {
	sub := neostore.WebhookSubscription{ID: req.ID, Name: req.Name, Tenant: req.Tenant, URL: req.URL}
	if sub.ID == "" {
		sub.ID = NewSubscriptionID()
	} else if !validSubscriptionID(sub.ID) {
		return sub, neostore.FieldError("id", "A subscription id is wh_ and 26 characters a-z, 2-7.")
	}
	if sub.Tenant != neostore.WebhookAllTenants && !neostore.ValidTenantID(sub.Tenant) {
		return sub, neostore.FieldError("tenant", "The tenant is a tenant id (1-64 characters a-z, 0-9, '-' and '_', starting with a letter or digit) or * for every tenant.")
	}
	if err := ValidateURL(sub.URL, m.opts.AllowInsecure); err != nil {
		return sub, err
	}
	if len(sub.Name) > maxNameBytes || !utf8.ValidString(sub.Name) {
		return sub, neostore.FieldError("name", "The name is at most 200 bytes of UTF-8.")
	}
	for _, e := range req.Events {
		if !slices.Contains(neostore.EventTypes, e) {
			return sub, neostore.FieldError("events", "Event types are "+strings.Join(neostore.EventTypes, ", ")+".")
		}
		if !slices.Contains(sub.Events, e) {
			sub.Events = append(sub.Events, e)
		}
	}
	leads := req.Leads
	if len(leads) == 0 {
		leads = DefaultLeads
	}
	if len(leads) > MaxLeads {
		return sub, neostore.FieldError("leads", "A subscription has at most "+strconv.Itoa(MaxLeads)+" lead times.")
	}
	for _, l := range leads {
		if l <= 0 || l > MaxLead {
			return sub, neostore.FieldError("leads", "A lead time is positive and at most 8760h (365 days).")
		}
		if !slices.Contains(sub.Leads, l) {
			sub.Leads = append(sub.Leads, l)
		}
	}
	slices.Sort(sub.Leads)
	slices.Reverse(sub.Leads) // longest first
	return sub, nil
}

// withoutSealed returns sub with its secrets' sealed bytes dropped: what
// leaves the Manager shows when each secret stops signing, nothing more.
func withoutSealed(sub neostore.WebhookSubscription) neostore.WebhookSubscription {
	secrets := make([]neostore.WebhookSecret, len(sub.Secrets))
	for i, s := range sub.Secrets {
		secrets[i] = neostore.WebhookSecret{ExpiresAt: s.ExpiresAt}
	}
	sub.Secrets = secrets
	return sub
}

// List implements neostore.WebhookManager.
func (m *Manager) List(ctx context.Context) ([]neostore.WebhookSubscription, error) {
	subs, err := m.opts.Store.ListWebhooks(ctx)
	if err != nil {
		return nil, err
	}
	for i := range subs {
		subs[i] = withoutSealed(subs[i])
	}
	return subs, nil
}

// Remove implements neostore.WebhookManager.
func (m *Manager) Remove(ctx context.Context, id string) error {
	if err := m.opts.Store.DeleteWebhook(ctx, id); err != nil {
		return notFound(err, id)
	}
	return nil
}

// notFound gives a store's ENOTFOUND for a subscription a message naming
// what was not found.
func notFound(err error, id string) error {
	if neostore.ErrorCode(err) == neostore.ENOTFOUND {
		return neostore.Errorf(neostore.ENOTFOUND, "No webhook subscription has the id %q.", id)
	}
	return err
}

// RotateSecret implements neostore.WebhookManager.
func (m *Manager) RotateSecret(ctx context.Context, id string, grace time.Duration) (string, neostore.WebhookSubscription, error) {
	if grace < 0 || grace > MaxRotationGrace {
		return "", neostore.WebhookSubscription{}, neostore.FieldError("grace", "The grace is between 0 and 720h (30 days).")
	}
	sub, err := m.opts.Store.GetWebhook(ctx, id)
	if err != nil {
		return "", neostore.WebhookSubscription{}, notFound(err, id)
	}
	shown, sealed, err := m.newSealedSecret(sub.ID)
	if err != nil {
		return "", neostore.WebhookSubscription{}, err
	}
	now := m.opts.Now().UTC()
	secrets := []neostore.WebhookSecret{{Sealed: sealed}}
	for i, s := range sub.Secrets {
		switch {
		case i == 0 && !s.ExpiresAt.Set:
			// The current secret signs on for the grace, so receivers
			// can move to the new one without dropping a message.
			if grace > 0 {
				secrets = append(secrets, neostore.WebhookSecret{Sealed: s.Sealed, ExpiresAt: neostore.At(now.Add(grace))})
			}
		case s.ExpiresAt.Set && s.ExpiresAt.At.After(now):
			secrets = append(secrets, s) // an earlier rotation's, still in its grace
		}
	}
	sub.Secrets = secrets
	if err := m.opts.Store.UpdateWebhook(ctx, sub); err != nil {
		return "", neostore.WebhookSubscription{}, notFound(err, id)
	}
	return shown, withoutSealed(sub), nil
}

// Test implements neostore.WebhookManager.
func (m *Manager) Test(ctx context.Context, id string) (neostore.WebhookTestResult, error) {
	if m.opts.Dispatcher == nil {
		return neostore.WebhookTestResult{}, neostore.Errorf(neostore.EINVALID, "This server does not send webhooks (it runs with --webhooks off).")
	}
	sub, err := m.opts.Store.GetWebhook(ctx, id)
	if err != nil {
		return neostore.WebhookTestResult{}, notFound(err, id)
	}
	start := time.Now()
	out, err := m.opts.Dispatcher.SendTest(ctx, sub)
	if err != nil {
		return neostore.WebhookTestResult{}, fmt.Errorf("webhook test: %w", err)
	}
	return neostore.WebhookTestResult{
		Delivered: out.Result == Delivered, Status: out.Status, Duration: time.Since(start), Error: out.Error,
	}, nil
}

// Deliveries implements neostore.WebhookManager.
func (m *Manager) Deliveries(ctx context.Context, id string, failedOnly bool) ([]neostore.Delivery, error) {
	if _, err := m.opts.Store.GetWebhook(ctx, id); err != nil {
		return nil, notFound(err, id)
	}
	return m.opts.Store.ListDeliveries(ctx, id, failedOnly, maxListedDeliveries)
}

// Redeliver implements neostore.WebhookManager. A delivery to an endpoint
// that answered 410 Gone is refused: it would fail again at once.
func (m *Manager) Redeliver(ctx context.Context, deliveryID string) error {
	d, err := m.opts.Store.GetDelivery(ctx, deliveryID)
	if neostore.ErrorCode(err) == neostore.ENOTFOUND {
		return neostore.Errorf(neostore.ENOTFOUND, "No webhook delivery has the id %q.", deliveryID)
	} else if err != nil {
		return err
	}
	sub, err := m.opts.Store.GetWebhook(ctx, d.SubscriptionID)
	if err != nil {
		return notFound(err, d.SubscriptionID)
	}
	if sub.DisabledAt.Set {
		return neostore.Errorf(neostore.ECONFLICT, "The endpoint of subscription %s is disabled: it answered 410 Gone. Add it again (webhook add) once it takes deliveries.", sub.ID)
	}
	if err := m.opts.Store.Redeliver(ctx, deliveryID, m.opts.Now().UTC()); err != nil {
		return err
	}
	if m.opts.Notify != nil {
		m.opts.Notify()
	}
	return nil
}
