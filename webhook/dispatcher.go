package webhook

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/neostore/neostore-secrets"
)

// SecretOpener opens a subscription's sealed signing secret (envelope.Master
// implements it, with associated data naming the subscription). The secret
// it returns is the serialized "whsec_..." form (raw key bytes are accepted
// too, see SigningKey).
type SecretOpener interface {
	OpenSigningSecret(subscriptionID string, sealed []byte) ([]byte, error)
}

// Observer is told what the dispatcher does, for metrics. Its methods are
// called from several goroutines and must not block.
type Observer interface {
	// Attempt is told the result of every delivery attempt.
	Attempt(r Result)
	// Pending is told, after a pass, how many deliveries are pending and
	// the age of the oldest (0 when none).
	Pending(count int, oldest time.Duration)
	// DisabledEndpoints is told, after a pass, how many subscriptions are
	// disabled (they answered 410 Gone).
	DisabledEndpoints(count int)
}

// nopObserver is the Observer of Options without one.
type nopObserver struct{}

func (nopObserver) Attempt(Result)              {}
func (nopObserver) Pending(int, time.Duration)  {}
func (nopObserver) DisabledEndpoints(count int) {}

// Options configure a Dispatcher. The zero value of each optional field
// means its documented default.
type Options struct {
	// Store keeps the subscriptions, the outbox, the due index and the
	// deliveries. Required.
	Store neostore.WebhookStore
	// Opener opens the sealed signing secrets. Required.
	Opener SecretOpener
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Owner names this node in delivery leases; New appends a random boot
	// nonce, so that a restarted node does not mistake its predecessor's
	// leases for its own. Default "node".
	Owner string
	// AllowInsecure lets http:// endpoints be used. Danger: the messages
	// are signed but not encrypted, and can be read on the way.
	AllowInsecure bool
	// AllowPrivate lets endpoints resolve to loopback, private, CGNAT,
	// link-local and unique-local addresses. Danger: anyone who can add a
	// subscription can then make this server post to internal services.
	AllowPrivate bool
	// RetryFor is how long after its creation a delivery is retried.
	// Default 24h.
	RetryFor time.Duration
	// Timeout bounds one attempt. Default 10s.
	Timeout time.Duration
	// Lease is how long a node holds the deliveries it leased: how long
	// the deliveries of a node that died wait before another node (or its
	// next start) sends them. Default 60s; at least twice Timeout (Check).
	// An attempt that could not end before its lease does is not made: it
	// waits for the lease's end, so that no two nodes send one delivery at
	// once. Danger: a node leases up to 16 deliveries at a time and sends
	// at most 4 at once to one endpoint, so under about 4 x Timeout a slow
	// endpoint's deliveries are held back until their leases end.
	Lease time.Duration
	// TLSConfig is the client's TLS configuration, for receivers under a
	// private CA. Default: the system's roots.
	TLSConfig *tls.Config
	// Jitter draws the random part of a retry's wait: a duration in
	// [0, d]. Default uniform; tests inject their own.
	Jitter func(d time.Duration) time.Duration
	// Observer is told outcomes and queue sizes. Default: nothing is told.
	Observer Observer
	// Logger gets the dispatcher's log. Default slog.Default(). It never
	// sees a value, a signing secret or an endpoint URL.
	Logger *slog.Logger
}

// DefaultLease is how long a node holds the deliveries it leased, unless
// Options.Lease says otherwise.
const DefaultLease = 60 * time.Second

// ErrLeaseTooShort is returned by Options.Check when the lease is less
// than twice the attempt timeout.
var ErrLeaseTooShort = errors.New("webhook: the delivery lease must be at least twice the attempt timeout")

// Check reports whether o can be used: ErrLeaseTooShort when Lease
// (or its default) is under twice Timeout (or its default). New panics
// on options that fail it.
func (o Options) Check() error {
	if o.lease() < 2*o.timeout() {
		return fmt.Errorf("%w (lease %v, timeout %v)", ErrLeaseTooShort, o.lease(), o.timeout())
	}
	return nil
}

func (o Options) lease() time.Duration {
	if o.Lease <= 0 {
		return DefaultLease
	}
	return o.Lease
}

func (o Options) timeout() time.Duration {
	if o.Timeout <= 0 {
		return DefaultTimeout
	}
	return o.Timeout
}

// The dispatcher's fixed figures.
const (
	maxInFlight    = 16 // attempts at once, in all
	maxPerEndpoint = 4  // attempts at once to one subscription
	// maxLeased is how many leased deliveries may wait for an attempt at
	// once. Leasing many per pass, more than can be sent at once, makes a
	// lease (a store write) serve many deliveries under load.
	maxLeased = 256
	// coalesce is the least time between two passes that a change (Notify)
	// or a freed slot starts: under a stream of changes a pass then takes
	// many events at once, so that the dispatcher's own store writes (fan-
	// out, lease, each a commit) stay few against the changes' commits. It
	// is what a change waits at most, at one connection, before its event
	// is fanned out.
	coalesce     = 50 * time.Millisecond
	pollEvery    = 250 * time.Millisecond
	keepFinished = 7 * 24 * time.Hour // delivered and failed deliveries are kept this long
	purgeEvery   = time.Hour
	outboxBatch  = 256
	dueBatch     = 1000
	// idleAdvance is how far the due cursor may lag when nothing falls
	// due, so that an idle scan is a read, not a write.
	idleAdvance = time.Minute
)

// Dispatcher moves events from the store to the endpoints. Every node runs
// one; the store's leases and cursor share the work among them.
type Dispatcher struct {
	store     neostore.WebhookStore
	opener    SecretOpener
	now       func() time.Time
	owner     string
	retryFor  time.Duration
	jitter    func(time.Duration) time.Duration
	observer  Observer
	log       *slog.Logger
	sender    *sender
	wake      chan struct{}
	slots     chan struct{} // maxLeased tokens: leased deliveries not yet done
	sending   chan struct{} // maxInFlight tokens: attempts under way
	freed     chan struct{} // an attempt ended and gave back its slot; capacity 1
	poll      time.Duration // pollEvery; longer in tests
	wg        sync.WaitGroup
	mu        sync.Mutex
	endpoints map[string]chan struct{} // per subscription, maxPerEndpoint tokens
	lastPurge time.Time
	lastCount time.Time // when housekeep last counted the pending deliveries
	lease     time.Duration
	timeout   time.Duration
	dueBatch  int // dueBatch; smaller in tests
}

// New returns a Dispatcher; Run starts it. It panics when opts fail
// Check: a caller that takes the lease or timeout from its user checks
// them first.
func New(opts Options) *Dispatcher {
	if err := opts.Check(); err != nil {
		panic(err)
	}
	d := &Dispatcher{
		store:     opts.Store,
		opener:    opts.Opener,
		now:       opts.Now,
		retryFor:  opts.RetryFor,
		jitter:    opts.Jitter,
		observer:  opts.Observer,
		log:       opts.Logger,
		wake:      make(chan struct{}, 1),
		slots:     make(chan struct{}, maxLeased),
		sending:   make(chan struct{}, maxInFlight),
		freed:     make(chan struct{}, 1),
		poll:      pollEvery,
		endpoints: map[string]chan struct{}{},
		dueBatch:  dueBatch,
	}
	if d.now == nil {
		d.now = time.Now
	}
	if d.retryFor <= 0 {
		d.retryFor = DefaultRetryFor
	}
	if d.jitter == nil {
		d.jitter = fullJitter
	}
	if d.observer == nil {
		d.observer = nopObserver{}
	}
	if d.log == nil {
		d.log = slog.Default()
	}
	owner := opts.Owner
	if owner == "" {
		owner = "node"
	}
	nonce := make([]byte, 6)
	_, _ = rand.Read(nonce) // crypto/rand.Read does not fail
	d.owner = owner + "/" + hex.EncodeToString(nonce)
	d.lease, d.timeout = opts.lease(), opts.timeout()
	d.sender = newSender(d.timeout, opts.AllowPrivate, opts.AllowInsecure, opts.TLSConfig, d.now)
	return d
}

// Owner returns the name this dispatcher's leases carry.
func (d *Dispatcher) Owner() string { return d.owner }

// Notify wakes Run at once, for a change just committed on this node. It
// never blocks.
func (d *Dispatcher) Notify() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run fans out, scans and delivers until ctx is done, polling at most
// every 250 ms when idle and at once after Notify. While every attempt
// slot is taken and more deliveries may be due, it leases again as soon
// as an attempt ends, rather than at the next poll. Store faults are
// logged and retried at the next pass. It returns nil once ctx is done and
// the attempts in flight have ended; an attempt cut short is not recorded,
// and its lease lets another node (or the next start) send it again.
func (d *Dispatcher) Run(ctx context.Context) error {
	defer d.wg.Wait()
	timer := time.NewTimer(0)
	defer timer.Stop()
	var freed <-chan struct{} // d.freed while slots limit the leases, else nil
	var last time.Time        // when the last pass began
	for {
		woken := false
		select {
		case <-ctx.Done():
			return nil
		case <-d.wake:
			woken = true
		case <-timer.C:
		case <-freed:
			woken = true
		}
		if gap := coalesce - time.Since(last); woken && gap > 0 {
			select { // let the changes of the next moments join this pass
			case <-ctx.Done():
				return nil
			case <-time.After(gap):
			}
		}
		last = time.Now()
		st, err := d.pass(ctx)
		if err != nil && ctx.Err() == nil {
			d.log.Warn("webhook: dispatcher pass failed", "err", err, "code", neostore.ErrorCode(err))
		}
		wait := d.poll
		freed = nil
		switch st {
		case more:
			wait = 0
		case full:
			freed = d.freed
		}
		timer.Reset(wait)
	}
}

// Step makes one pass (fan-out, due scan, one lease of deliveries and
// their attempts, purge) and returns when its attempts have ended: the
// dispatcher of tests that drive the clock.
func (d *Dispatcher) Step(ctx context.Context) error {
	_, err := d.pass(ctx)
	d.wg.Wait()
	return err
}

// passState is what a pass leaves to do, which says when Run makes the
// next one.
type passState int

const (
	idle passState = iota // nothing known: the next poll (or Notify)
	more                  // a scan or fan-out stopped at its batch's end: at once
	full                  // every attempt slot is taken and deliveries may wait: when one frees
)

// pass makes one pass and reports what it left to do.
func (d *Dispatcher) pass(ctx context.Context) (passState, error) {
	now := d.now()
	subs, err := d.store.ListWebhooks(ctx)
	if err != nil {
		return idle, fmt.Errorf("webhook: list subscriptions: %w", err)
	}
	var errs []error
	short, err := d.scan(ctx, now, subs)
	if err != nil {
		errs = append(errs, err)
	}
	moreOut, err := d.fanOut(ctx, subs)
	if err != nil {
		errs = append(errs, err)
	}
	pending, err := d.housekeep(ctx, subs)
	if err != nil {
		errs = append(errs, err)
	}
	filled := false
	if pending != 0 { // -1 when unknown
		if filled, err = d.deliver(ctx, subs); err != nil {
			errs = append(errs, err)
		}
	}
	st := idle
	switch {
	case short || moreOut:
		st = more
	case filled:
		st = full
	}
	return st, errors.Join(errs...)
}

// housekeep tells the observer the queue's figures, purges old finished
// deliveries now and then, and returns how many deliveries are pending (-1
// when it did not count, or the store could not say), so that a pass with
// none leases nothing. It counts at most once a poll: counting reads every
// pending delivery, and under load Notify makes passes back to back.
func (d *Dispatcher) housekeep(ctx context.Context, subs []neostore.WebhookSubscription) (int, error) {
	now := d.now()
	n := -1
	if d.lastCount.IsZero() || now.Sub(d.lastCount) >= pollEvery || now.Before(d.lastCount) {
		d.lastCount = now
		disabled := 0
		for _, s := range subs {
			if s.DisabledAt.Set {
				disabled++
			}
		}
		d.observer.DisabledEndpoints(disabled)
		var oldest neostore.Bound
		var err error
		if n, oldest, err = d.store.PendingDeliveries(ctx); err != nil {
			return -1, fmt.Errorf("webhook: count pending: %w", err)
		}
		age := time.Duration(0)
		if oldest.Set && now.After(oldest.At) {
			age = now.Sub(oldest.At)
		}
		d.observer.Pending(n, age)
	}
	if !d.lastPurge.IsZero() && now.Sub(d.lastPurge) < purgeEvery && !now.Before(d.lastPurge) {
		return n, nil
	}
	d.lastPurge = now
	if _, err := d.store.PurgeDeliveries(ctx, now.Add(-keepFinished)); err != nil {
		return n, fmt.Errorf("webhook: purge deliveries: %w", err)
	}
	return n, nil
}

// SendTest sends sub a webhook.test message at once, signed like any
// other, and returns its outcome; nothing is stored. It is sent even to a
// disabled subscription, so that an operator can see the endpoint is back.
func (d *Dispatcher) SendTest(ctx context.Context, sub neostore.WebhookSubscription) (Outcome, error) {
	now := d.now()
	keys, err := d.keys(sub, now)
	if err != nil {
		return Outcome{}, err
	}
	id := neostore.NewEventID()
	body, err := testPayload(sub.ID, now)
	if err != nil {
		return Outcome{}, err
	}
	o := d.sender.send(ctx, sub.URL, id, now, body, keys)
	d.log.Info("webhook: test sent", "subscription", sub.ID, "result", o.Result, "status", o.Status, "error", o.Error)
	return o, nil
}

// keys opens sub's live signing secrets, the current one first.
func (d *Dispatcher) keys(sub neostore.WebhookSubscription, now time.Time) ([][]byte, error) {
	var keys [][]byte
	for _, s := range sub.Secrets {
		if s.ExpiresAt.Set && !now.Before(s.ExpiresAt.At) {
			continue
		}
		plain, err := d.opener.OpenSigningSecret(sub.ID, s.Sealed)
		if err != nil {
			return nil, fmt.Errorf("webhook: open signing secret of %s: %w", sub.ID, err)
		}
		k, err := SigningKey(plain)
		clear(plain)
		if err != nil {
			return nil, fmt.Errorf("webhook: signing secret of %s: %w", sub.ID, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("webhook: subscription %s has no live signing secret", sub.ID)
	}
	return keys, nil
}
