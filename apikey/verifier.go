package apikey

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/neostore/neostore-secrets"
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
	v := &Verifier{store: store, now: now}
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
// key is malformed, unknown, expired or revoked.
func (v *Verifier) Verify(ctx context.Context, credential string) (*neostore.Principal, error) {
	if !WellFormed(credential) {
		return nil, errUnauthenticated
	}
	hash := Hash(credential)
	v.mu.RLock()
	e := v.byHash[hash]
	v.mu.RUnlock()
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

// Revoke implements neostore.APIKeyIssuer.
func (v *Verifier) Revoke(ctx context.Context, id string) error {
	v.changeMu.Lock()
	defer v.changeMu.Unlock()
	if err := v.store.RevokeAPIKey(ctx, id, v.now().UTC()); err != nil {
		return err
	}
	// Drop the key from memory before reloading its record: between the two
	// steps the key must already fail.
	v.mu.Lock()
	if e := v.byID[id]; e != nil {
		delete(v.byHash, [sha256.Size]byte(e.record.Hash))
		delete(v.byID, id)
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
