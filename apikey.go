package neostore

import (
	"context"
	"time"
)

// APIKey is the stored record of an API key. The key itself is never stored:
// only its SHA-256 hash, which is what requests are matched against.
type APIKey struct {
	ID        string // public identifier, shown by list and used by revoke
	Name      string // operator's label
	Tenant    string // the one tenant the key may touch
	Scopes    Scope
	Hash      []byte // SHA-256 of the key
	CreatedAt time.Time
	ExpiresAt Bound // unset: never expires
	RevokedAt Bound // unset: not revoked
	LastUsed  Bound // approximate; updated in batches, not per request
}

// Usable reports whether the key may authenticate a request at now.
func (k *APIKey) Usable(now time.Time) bool {
	if k.RevokedAt.Set {
		return false
	}
	return !k.ExpiresAt.Set || now.Before(k.ExpiresAt.At)
}

// APIKeyStore keeps API-key records.
type APIKeyStore interface {
	// CreateAPIKey stores a new record. It returns EINVALID when the id or the
	// hash is already taken.
	CreateAPIKey(ctx context.Context, k APIKey) error

	// ListAPIKeys returns the records of tenant, or of every tenant when
	// tenant is empty, ordered by creation time then id.
	ListAPIKeys(ctx context.Context, tenant string) ([]APIKey, error)

	// APIKeyByHash returns the record whose hash is hash, revoked or not. It
	// returns ENOTFOUND when no record has that hash. A node asks it for a
	// well-formed key it does not know yet: one another node just issued.
	APIKeyByHash(ctx context.Context, hash []byte) (APIKey, error)

	// RevokeAPIKey marks the key revoked at the given time. It returns
	// ENOTFOUND when no key has that id; revoking twice keeps the first time.
	RevokeAPIKey(ctx context.Context, id string, at time.Time) error

	// TouchAPIKeys records the last-use times of several keys at once;
	// ids without a record are ignored.
	TouchAPIKeys(ctx context.Context, lastUsed map[string]time.Time) error
}

// NewAPIKey describes an API key to issue.
type NewAPIKey struct {
	Tenant    string
	Scopes    Scope
	Name      string
	ExpiresAt Bound // unset: never expires
}

// APIKeyIssuer issues, lists and revokes API keys: the operator's commands.
type APIKeyIssuer interface {
	// Create issues a key and returns it (shown once, never stored) with its
	// record. It returns EINVALID for an invalid tenant, no scope, or an
	// expiry in the past.
	Create(ctx context.Context, req NewAPIKey) (key string, rec APIKey, err error)

	// List returns the records of tenant's keys, or of every tenant's when
	// tenant is empty. Records never contain the key.
	List(ctx context.Context, tenant string) ([]APIKey, error)

	// Revoke revokes a key; requests with it fail from the moment Revoke
	// returns. It returns ENOTFOUND for an unknown id.
	Revoke(ctx context.Context, id string) error
}

// Store is everything a node keeps: secrets, tenant data keys, the key-check
// record, API keys and webhook notifications. The embedded (bbolt) and
// PostgreSQL stores implement it.
type Store interface {
	SecretStore
	TenantKeyStore
	KeyCheckStore
	APIKeyStore
	AuditStateStore
	WebhookStore

	// ListTenants returns, in ordinal byte order, every tenant that has a
	// data key or a secret. Moving a store (migrate-store) and rewrapping
	// every tenant key walk it.
	ListTenants(ctx context.Context) ([]string, error)

	// ChangeJournal returns the journal of the records the store commits
	// with its changes (Change), or nil when it cannot commit them in a
	// change's transaction; its write methods then refuse a Change that
	// carries records. Every wrapper of a Store forwards it, so that the
	// capability is seen through wrappers.
	ChangeJournal() ChangeJournal

	// Ping returns nil when the store can serve requests.
	Ping(ctx context.Context) error

	// Close releases the store. Calls after Close fail.
	Close() error
}
