package client

import (
	"container/list"
	"context"
	"errors"
	"sync"
	"time"
)

// Defaults of CacheConfig.
const (
	DefaultCacheTTL        = 5 * time.Minute
	DefaultCacheMaxEntries = 1000
)

// CacheConfig configures the opt-in read cache of Get, after the AWS
// Secrets Manager caching client: a value is served from memory for TTL,
// then asked for again; when that refresh fails with a connection failure
// or a 5xx answer, the last value is served instead and OnStale is told.
//
// Danger: a cached value is served for up to TTL after it was changed,
// deleted or expired on the server by someone else, and for as long as the
// server stays unreachable after that. A caller's deadline that runs out
// before the server answers counts as a failed refresh. A 404, 401 or 403 answer drops the
// value at once; Put and Delete through the same client drop it too. Values
// are held in memory only, never written to disk.
type CacheConfig struct {
	TTL        time.Duration                       // how long a value is served without asking the server; 0 means 5 minutes
	MaxEntries int                                 // bound; least recently used evicted; 0 means 1000
	OnStale    func(tenant, key string, err error) // called when a stale value is served because a refresh failed; may be nil
}

// WithCache turns on the read cache for Get.
func WithCache(c CacheConfig) Option {
	return func(o *options) error {
		if c.TTL < 0 || c.MaxEntries < 0 {
			return errors.New("client: WithCache: negative TTL or MaxEntries")
		}
		o.cache = &c
		return nil
	}
}

type cacheKey struct{ tenant, key string }

type cacheEntry struct {
	k       cacheKey
	value   []byte
	fetched time.Time
}

// cache is an LRU of values with their fetch time. Its mutex guards all of
// its state; it is never held while the server is asked.
type cache struct {
	ttl     time.Duration
	max     int
	onStale func(tenant, key string, err error)
	now     func() time.Time

	mu      sync.Mutex
	lru     *list.List // of *cacheEntry, most recently used first
	entries map[cacheKey]*list.Element
	flights map[cacheKey]*flight // fetches under way
	gen     uint64               // bumped by every forget, so a fetch that raced a Put does not store the old value
}

func newCache(cfg CacheConfig, now func() time.Time) (*cache, error) {
	c := &cache{ttl: cfg.TTL, max: cfg.MaxEntries, onStale: cfg.OnStale, now: now,
		lru: list.New(), entries: map[cacheKey]*list.Element{}, flights: map[cacheKey]*flight{}}
	if c.ttl == 0 {
		c.ttl = DefaultCacheTTL
	}
	if c.max == 0 {
		c.max = DefaultCacheMaxEntries
	}
	return c, nil
}

// get returns a fresh cached value, or fetches one; when the fetch fails
// temporarily (or the caller's deadline runs out first) and a stale value
// is held, it returns that and tells onStale. Callers that miss the same
// key while a fetch is under way wait for that one instead of asking too;
// if its caller gives up, they ask for themselves. Every returned slice is
// the caller's own copy.
func (c *cache) get(ctx context.Context, tenant, key string, fetch func(ctx context.Context, tenant, key string) ([]byte, error)) ([]byte, error) {
	k := cacheKey{tenant, key}
	for {
		c.mu.Lock()
		if el, ok := c.entries[k]; ok {
			e := el.Value.(*cacheEntry)
			if c.now().Sub(e.fetched) < c.ttl {
				c.lru.MoveToFront(el)
				v := clone(e.value)
				c.mu.Unlock()
				return v, nil
			}
		}
		if f, ok := c.flights[k]; ok {
			c.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return nil, &canceledError{op: "get", cause: ctx.Err()}
			}
			if errors.As(f.err, new(*canceledError)) {
				continue // its caller gave up, which says nothing to this one
			}
			if f.err != nil {
				return nil, f.err
			}
			return clone(f.value), nil
		}
		f := &flight{done: make(chan struct{})}
		c.flights[k] = f
		gen := c.gen
		c.mu.Unlock()

		v, err := c.refresh(ctx, k, gen, fetch)
		if err == nil {
			f.value = clone(v)
		}
		f.err = err
		c.mu.Lock()
		delete(c.flights, k)
		c.mu.Unlock()
		close(f.done)
		return v, err
	}
}

// flight is a fetch other callers of the same key wait for. value and err
// are written before done is closed and only read after.
type flight struct {
	done  chan struct{}
	value []byte
	err   error
}

// refresh asks the server for k and keeps the answer, or falls back on the
// stale value.
func (c *cache) refresh(ctx context.Context, k cacheKey, gen uint64, fetch func(ctx context.Context, tenant, key string) ([]byte, error)) ([]byte, error) {
	v, err := fetch(ctx, k.tenant, k.key)
	if err == nil {
		c.store(k, v, gen)
		return v, nil
	}
	var ended *canceledError
	if errors.As(err, &ended) {
		// The caller's context ended: that says nothing about the secret,
		// so the value stays. A deadline that ran out while the server did
		// not answer is an outage like a refused connection.
		if !errors.Is(ended.cause, context.DeadlineExceeded) {
			return nil, err
		}
	} else if !Temporary(err) {
		c.forget(k.tenant, k.key)
		return nil, err
	}
	c.mu.Lock()
	el, ok := c.entries[k]
	if !ok {
		c.mu.Unlock()
		return nil, err
	}
	c.lru.MoveToFront(el)
	stale := clone(el.Value.(*cacheEntry).value)
	c.mu.Unlock()
	if c.onStale != nil {
		c.onStale(k.tenant, k.key, err)
	}
	return stale, nil
}

// store keeps a copy of v unless a forget happened since gen was read.
func (c *cache) store(k cacheKey, v []byte, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if el, ok := c.entries[k]; ok {
		e := el.Value.(*cacheEntry)
		clear(e.value)
		e.value, e.fetched = clone(v), c.now()
		c.lru.MoveToFront(el)
		return
	}
	c.entries[k] = c.lru.PushFront(&cacheEntry{k: k, value: clone(v), fetched: c.now()})
	for c.lru.Len() > c.max {
		c.remove(c.lru.Back())
	}
}

// forget drops the value of tenant's key.
func (c *cache) forget(tenant, key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if el, ok := c.entries[cacheKey{tenant, key}]; ok {
		c.remove(el)
	}
}

func (c *cache) remove(el *list.Element) {
	e := c.lru.Remove(el).(*cacheEntry)
	clear(e.value)
	delete(c.entries, e.k)
}

func clone(b []byte) []byte { return append([]byte{}, b...) }
