// Package ratelimit keeps one runaway client or tenant from starving the
// others on a node: a token bucket (golang.org/x/time/rate) per credential
// and one per tenant, created on first use and dropped when idle.
package ratelimit

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Config sets the buckets. A zero rate disables that kind of bucket.
type Config struct {
	// CredentialRate is the sustained requests per second one credential
	// (an API key, a token subject) may make on this node, and
	// CredentialBurst how many it may make at once.
	CredentialRate  float64
	CredentialBurst int
	// TenantRate and TenantBurst do the same for all credentials of a
	// tenant together.
	TenantRate  float64
	TenantBurst int
	// IdleAfter is how long an unused bucket is kept; zero means 10 min.
	IdleAfter time.Duration
	// Now is the clock; zero means time.Now.
	Now func() time.Time
}

// Limiter holds the buckets. It is safe for concurrent use.
type Limiter struct {
	cfg         Config
	credentials buckets
	tenants     buckets
}

// New returns a limiter with cfg's buckets.
func New(cfg Config) *Limiter {
	if cfg.IdleAfter == 0 {
		cfg.IdleAfter = 10 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Limiter{
		cfg:         cfg,
		credentials: buckets{m: map[string]*bucket{}, limit: rate.Limit(cfg.CredentialRate), burst: max(cfg.CredentialBurst, 1)},
		tenants:     buckets{m: map[string]*bucket{}, limit: rate.Limit(cfg.TenantRate), burst: max(cfg.TenantBurst, 1)},
	}
}

// Allow takes one token from the credential's bucket and one from the
// tenant's. When either is empty it takes none, and says which bucket
// refused and how long until a token is available.
func (l *Limiter) Allow(credential, tenant string) (ok bool, scope string, retryAfter time.Duration) {
	now := l.cfg.Now()
	var cr, tr *rate.Reservation
	if l.cfg.CredentialRate > 0 {
		cr = l.credentials.get(credential, now).ReserveN(now, 1)
		if d := cr.DelayFrom(now); d > 0 {
			cr.CancelAt(now)
			return false, "credential", d
		}
	}
	if l.cfg.TenantRate > 0 {
		tr = l.tenants.get(tenant, now).ReserveN(now, 1)
		if d := tr.DelayFrom(now); d > 0 {
			tr.CancelAt(now)
			if cr != nil {
				cr.CancelAt(now)
			}
			return false, "tenant", d
		}
	}
	return true, "", 0
}

// Sweep drops buckets unused for longer than IdleAfter, so that memory
// stays bounded by the clients active recently. Call it periodically.
func (l *Limiter) Sweep() {
	before := l.cfg.Now().Add(-l.cfg.IdleAfter)
	l.credentials.sweep(before)
	l.tenants.sweep(before)
}

// Len returns how many credential and tenant buckets exist.
func (l *Limiter) Len() (credentials, tenants int) {
	return l.credentials.len(), l.tenants.len()
}

type bucket struct {
	*rate.Limiter
	lastUsed int64 // unix nanoseconds, under buckets.mu
}

type buckets struct {
	mu    sync.Mutex
	m     map[string]*bucket
	limit rate.Limit
	burst int
}

func (b *buckets) get(name string, now time.Time) *rate.Limiter {
	b.mu.Lock()
	defer b.mu.Unlock()
	bk := b.m[name]
	if bk == nil {
		bk = &bucket{Limiter: rate.NewLimiter(b.limit, b.burst)}
		b.m[name] = bk
	}
	bk.lastUsed = now.UnixNano()
	return bk.Limiter
}

func (b *buckets) sweep(before time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for name, bk := range b.m {
		if bk.lastUsed < before.UnixNano() {
			delete(b.m, name)
		}
	}
}

func (b *buckets) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.m)
}
