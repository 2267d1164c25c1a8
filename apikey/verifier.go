package apikey

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"

	"github.com/neostore/neostore-secrets"
)

// Look-ups of unknown keys. A node that shares its store with others asks
// the store for a well-formed key it does not know, so that a key issued on
// another node works here at once rather than after the next reload. Random
// well-formed keys must not turn that into a way to hammer the database:
const (
	// LookupRate and LookupBurst bound the store look-ups of one node, for
	// every unknown key together. Past them an unknown key is refused (401)
	// without asking: during a flood of random keys, a key issued on another
	// node a moment ago may be refused too until the next reload, which is
	// how it was before look-ups.
	LookupRate  = rate.Limit(5) // per second
	LookupBurst = 10

	// NegativeTTL is how long a hash the store did not know is refused
	// without asking again. Keys are random, so a key issued later cannot
	// have a cached hash; the cache only spares the store a client that
	// retries a bad key.
	NegativeTTL = 2 * time.Second
	// negativeMax bounds the negative cache; when it is full of live
	// entries, misses are not cached and the rate limit alone applies.
	negativeMax = 4096
)

// Verifier checks API keys against an in-memory copy of the stored records
// and implements neostore.CredentialVerifier. It also issues and revokes keys,
// so that its copy never lags behind what it wrote. Last-use times are kept in
// memory and written to the store in batches by FlushLastUsed.
type Verifier struct {
	store neostore.APIKeyStore
	now   func() time.Time

	// changeMu orders Reload, Create and Revoke, so a reload that read the
	// store before a create cannot drop the created key from memory.
	changeMu sync.Mutex
	mu       sync.RWMutex
	byHash   map[[sha256.Size]byte]*entry
	byID     map[string]*entry

	lookups  singleflight.Group // per hash
	limit    *rate.Limiter      // store look-ups of unknown keys
	negMu    sync.Mutex
	negative map[[sha256.Size]byte]time.Time // hash -> refused until
}

// entry is one cached key. principal is built once and shared by every
// request the key authenticates: it must not be modified.
type entry struct {
	record    neostore.APIKey
	principal *neostore.Principal
	lastUsed  atomic.Int64 // unix nanoseconds; 0 = not used since load
	flushed   atomic.Int64
}

// NewVerifier loads every API-key record from store.
func NewVerifier(ctx context.Context, store neostore.APIKeyStore, now func() time.Time) (*Verifier, error) {
	v := &Verifier{
		store:    store,
		now:      now,
		limit:    rate.NewLimiter(LookupRate, LookupBurst),
		negative: map[[sha256.Size]byte]time.Time{},
	}
	if err := v.Reload(ctx); err != nil {
		return nil, err
	}
	return v, nil
}

// Reload replaces the in-memory copy with the store's records. Nodes that
// share a store call it periodically to learn of keys another node changed.
func (v *Verifier) Reload(ctx context.Context) error {
	v.changeMu.Lock()
	defer v.changeMu.Unlock()
	return v.reload(ctx)
}

func (v *Verifier) reload(ctx context.Context) error {
	keys, err := v.store.ListAPIKeys(ctx, "")
	if err != nil {
		return fmt.Errorf("load api keys: %w", err)
	}
	byHash := make(map[[sha256.Size]byte]*entry, len(keys))
	byID := make(map[string]*entry, len(keys))
	v.mu.RLock()
	for _, k := range keys {
		e := newEntry(k)
		if old := v.byID[k.ID]; old != nil { // keep unflushed use times across reloads
			e.lastUsed.Store(old.lastUsed.Load())
			e.flushed.Store(old.flushed.Load())
		}
		if len(k.Hash) == sha256.Size {
			byHash[[sha256.Size]byte(k.Hash)] = e
		}
		byID[k.ID] = e
	}
	v.mu.RUnlock()
	v.mu.Lock()
	v.byHash, v.byID = byHash, byID
	v.mu.Unlock()
	return nil
}

func newEntry(k neostore.APIKey) *entry {
	e := &entry{record: k, principal: &neostore.Principal{
		Kind:    neostore.PrincipalAPIKey,
		ID:      k.ID,
		Name:    k.Name,
		Scopes:  k.Scopes,
		Tenants: []string{k.Tenant},
	}}
	if k.LastUsed.Set {
		e.flushed.Store(k.LastUsed.At.UnixNano())
	}
	return e
}

var errUnauthenticated = neostore.Errorf(neostore.EUNAUTHENTICATED, "The API key is not valid.")

// Verify returns the principal of an API key, or EUNAUTHENTICATED when the
// key is malformed, unknown, expired or revoked. A well-formed key missing
// from memory is looked up in the store (see LookupRate).
func (v *Verifier) Verify(ctx context.Context, credential string) (*neostore.Principal, error) {
	if !WellFormed(credential) {
		return nil, errUnauthenticated
	}
	hash := Hash(credential)
	v.mu.RLock()
	e := v.byHash[hash]
	v.mu.RUnlock()
	if e == nil {
		var err error
		if e, err = v.lookup(ctx, hash); err != nil {
			return nil, err
		}
	}
	if e == nil || subtle.ConstantTimeCompare(e.record.Hash, hash[:]) != 1 {
		return nil, errUnauthenticated
	}
	now := v.now()
	if !e.record.Usable(now) {
		return nil, errUnauthenticated
	}
	e.lastUsed.Store(now.UnixNano())
	return e.principal, nil
}

// lookup asks the store for a hash missing from memory, at most once at a
// time per hash, and adds a found record, revoked or not, to memory. It
// returns nil for an unknown hash, a recently unknown one, or when the rate
// limit is spent.
func (v *Verifier) lookup(ctx context.Context, hash [sha256.Size]byte) (*entry, error) {
	now := v.now()
	if v.knownUnknown(hash, now) {
		return nil, nil
	}
	res, err, _ := v.lookups.Do(string(hash[:]), func() (any, error) {
		// Refused before waiting on changeMu, so that a flood of random keys
		// does not queue behind a slow reload or look-up.
		if !v.limit.AllowN(now, 1) {
			return (*entry)(nil), nil
		}
		// Ordered with Reload, Create and Revoke: a record read here cannot
		// overwrite a newer one (a revocation) that a reload put in memory.
		v.changeMu.Lock()
		defer v.changeMu.Unlock()
		v.mu.RLock()
		e := v.byHash[hash]
		v.mu.RUnlock()
		if e != nil {
			return e, nil
		}
		// The flight is shared by every request waiting on this hash, so
		// one request giving up must not fail the others.
		rec, err := v.store.APIKeyByHash(context.WithoutCancel(ctx), hash[:])
		if neostore.ErrorCode(err) == neostore.ENOTFOUND {
			v.rememberUnknown(hash, now)
			return (*entry)(nil), nil
		}
		if err != nil {
			return nil, fmt.Errorf("look up api key: %w", err)
		}
		e = newEntry(rec)
		v.mu.Lock()
		v.byHash[hash] = e
		v.byID[rec.ID] = e
		v.mu.Unlock()
		return e, nil
	})
	if err != nil {
		return nil, err
	}
	return res.(*entry), nil
}

// knownUnknown reports whether the store did not know hash a moment ago.
func (v *Verifier) knownUnknown(hash [sha256.Size]byte, now time.Time) bool {
	v.negMu.Lock()
	defer v.negMu.Unlock()
	until, ok := v.negative[hash]
	return ok && now.Before(until)
}

func (v *Verifier) rememberUnknown(hash [sha256.Size]byte, now time.Time) {
	v.negMu.Lock()
	defer v.negMu.Unlock()
	if len(v.negative) >= negativeMax {
		for h, until := range v.negative {
			if !now.Before(until) {
				delete(v.negative, h)
			}
		}
		if len(v.negative) >= negativeMax {
			return
		}
	}
	v.negative[hash] = now.Add(NegativeTTL)
}

// Create implements neostore.APIKeyIssuer: it stores only the key's hash and
// adds the key to the in-memory copy before returning.
func (v *Verifier) Create(ctx context.Context, req neostore.NewAPIKey) (string, neostore.APIKey, error) {
	if !neostore.ValidTenantID(req.Tenant) {
		return "", neostore.APIKey{}, neostore.InvalidTenantID("tenant")
	}
	if req.Scopes == 0 || !(neostore.ScopeRead | neostore.ScopeWrite).Has(req.Scopes) {
		return "", neostore.APIKey{}, neostore.FieldError("scope", "At least one scope, Secret.Read or Secret.Write, is required.")
	}
	if len(req.Name) > 200 {
		return "", neostore.APIKey{}, neostore.FieldError("name", "The name must be at most 200 bytes.")
	}
	now := v.now().UTC()
	if req.ExpiresAt.Set && !req.ExpiresAt.At.After(now) {
		return "", neostore.APIKey{}, neostore.FieldError("expires", "The expiry must be in the future.")
	}
	v.changeMu.Lock()
	defer v.changeMu.Unlock()
	key, hash := Generate()
	rec := neostore.APIKey{
		ID:        NewID(),
		Name:      req.Name,
		Tenant:    req.Tenant,
		Scopes:    req.Scopes,
		Hash:      hash[:],
		CreatedAt: now,
		ExpiresAt: req.ExpiresAt,
	}
	if err := v.store.CreateAPIKey(ctx, rec); err != nil {
		return "", neostore.APIKey{}, fmt.Errorf("store api key: %w", err)
	}
	e := newEntry(rec)
	v.mu.Lock()
	v.byHash[hash] = e
	v.byID[rec.ID] = e
	v.mu.Unlock()
	return key, rec, nil
}

// List implements neostore.APIKeyIssuer, with last-use times as this node
// knows them, including those not yet flushed.
func (v *Verifier) List(ctx context.Context, tenant string) ([]neostore.APIKey, error) {
	keys, err := v.store.ListAPIKeys(ctx, tenant)
	if err != nil {
		return nil, err
	}
	v.mu.RLock()
	defer v.mu.RUnlock()
	for i := range keys {
		if e := v.byID[keys[i].ID]; e != nil {
			if used := e.lastUsed.Load(); used != 0 && (!keys[i].LastUsed.Set || used > keys[i].LastUsed.At.UnixNano()) {
				keys[i].LastUsed = neostore.At(time.Unix(0, used))
			}
		}
	}
	return keys, nil
}

// Revoke implements neostore.APIKeyIssuer. It first writes the key's
// unflushed last-use time: whoever checks whether a leaked key was used
// reads it after the revocation, possibly on another node.
func (v *Verifier) Revoke(ctx context.Context, id string) error {
	v.changeMu.Lock()
	defer v.changeMu.Unlock()
	v.mu.RLock()
	e := v.byID[id]
	v.mu.RUnlock()
	if e != nil {
		if used := e.lastUsed.Load(); used > e.flushed.Load() {
			if err := v.store.TouchAPIKeys(ctx, map[string]time.Time{id: time.Unix(0, used).UTC()}); err != nil {
				return fmt.Errorf("record api key use before revoking: %w", err)
			}
			e.flushed.Store(used)
		}
	}
	if err := v.store.RevokeAPIKey(ctx, id, v.now().UTC()); err != nil {
		return err
	}
	// Drop the key from the hash table before reloading its record: between
	// the two steps the key must already fail. Its entry stays in byID so
	// that the reload carries over a use that came after the flush above.
	v.mu.Lock()
	if e != nil {
		delete(v.byHash, [sha256.Size]byte(e.record.Hash))
	}
	v.mu.Unlock()
	return v.reload(ctx)
}

// FlushLastUsed writes the last-use times recorded since the previous flush.
func (v *Verifier) FlushLastUsed(ctx context.Context) error {
	used := map[string]time.Time{}
	var flushed []*entry
	v.mu.RLock()
	for id, e := range v.byID {
		if t := e.lastUsed.Load(); t > e.flushed.Load() {
			used[id] = time.Unix(0, t).UTC()
			flushed = append(flushed, e)
		}
	}
	v.mu.RUnlock()
	if len(used) == 0 {
		return nil
	}
	if err := v.store.TouchAPIKeys(ctx, used); err != nil {
		return fmt.Errorf("record api key use: %w", err)
	}
	for _, e := range flushed {
		e.flushed.Store(used[e.record.ID].UnixNano())
	}
	return nil
}
