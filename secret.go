package neostore

import (
	"context"
	"time"
)

// MaxKeyNameLength and MaxTenantIDLength bound the identifiers of the API.
const (
	MaxKeyNameLength  = 127
	MaxTenantIDLength = 128
)

// ValidKeyName reports whether s is a secret key name: 1 to 127 ASCII letters,
// digits or hyphens. Names are case-sensitive.
func ValidKeyName(s string) bool {
	if len(s) == 0 || len(s) > MaxKeyNameLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) && s[i] != '-' {
			return false
		}
	}
	return true
}

// ValidTenantID reports whether s is a tenant id: 1 to 128 ASCII letters,
// digits, hyphens or underscores.
func ValidTenantID(s string) bool {
	if len(s) == 0 || len(s) > MaxTenantIDLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) && s[i] != '-' && s[i] != '_' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9')
}

// Bound is one optional end of a validity window. The zero Bound is unset,
// which is not the same as a Bound set to 0001-01-01T00:00:00Z.
type Bound struct {
	At  time.Time
	Set bool
}

// At returns a Bound set to t, in UTC.
func At(t time.Time) Bound { return Bound{At: t.UTC(), Set: true} }

// Ptr returns the bound's time in UTC, or nil when it is unset: the shape
// of an optional time in JSON records and SQL rows.
func (b Bound) Ptr() *time.Time {
	if !b.Set {
		return nil
	}
	t := b.At.UTC()
	return &t
}

// BoundOf returns the Bound of an optional time: unset for nil.
func BoundOf(t *time.Time) Bound {
	if t == nil {
		return Bound{}
	}
	return At(*t)
}

// Validity is the window in which a secret can be read: from NotBefore
// (inclusive) until ExpiresOn (exclusive). An unset end is open.
type Validity struct {
	NotBefore Bound
	ExpiresOn Bound
}

// Contains reports whether now lies inside the window.
func (v Validity) Contains(now time.Time) bool {
	if v.NotBefore.Set && now.Before(v.NotBefore.At) {
		return false
	}
	if v.ExpiresOn.Set && !now.Before(v.ExpiresOn.At) {
		return false
	}
	return true
}

// Validate returns an EINVALID error naming "options.expiresOn" when the
// window is empty, that is when ExpiresOn is not after NotBefore.
func (v Validity) Validate() error {
	if v.NotBefore.Set && v.ExpiresOn.Set && !v.ExpiresOn.At.After(v.NotBefore.At) {
		return FieldError("options.expiresOn", "expiresOn must be after notBefore.")
	}
	return nil
}

// SealedSecret is a secret as storage keeps it: the sealed value, its
// validity window and when it was written. Storage never sees the plaintext.
type SealedSecret struct {
	Ciphertext []byte
	Validity   Validity
	Times      SecretTimes
}

// SecretTimes says when a secret was written, by the service's clock, in
// UTC. An unset time is unknown: the secret was stored by a version that
// did not keep it.
type SecretTimes struct {
	// CreatedOn is when the key was first put. A put over an existing
	// secret keeps it; a delete and a put start anew.
	CreatedOn Bound
	// UpdatedOn is when the value or window was last put.
	UpdatedOn Bound
}

// SecretAttributes is what a secret's list entry shows without its value:
// the key name, the validity window and the times.
type SecretAttributes struct {
	Key      string
	Validity Validity
	Times    SecretTimes
}

// ErrTenantFull is returned by PutSecret when a new key would take a tenant
// over the store's per-tenant quota of keys.
var ErrTenantFull = Errorf(ECONFLICT, "The tenant already holds the most secrets this server allows; delete one before adding another.")

// SecretStore keeps sealed secrets by tenant and key name. Implementations
// hold no business logic: they neither seal nor authorize nor check validity.
// Tenant ids and key names arrive already validated.
type SecretStore interface {
	// GetSecret returns the sealed secret, or ENOTFOUND when none is stored
	// under that tenant and key.
	GetSecret(ctx context.Context, tenant, key string) (SealedSecret, error)

	// PutSecret stores s under tenant and key, replacing any previous secret,
	// and commits c's records in the same transaction. s.Times.UpdatedOn is
	// stored as given; s.Times.CreatedOn only when no secret is stored under
	// the key, else the stored one is kept (unknown stays unknown). When it
	// returns nil the write and c's records are durable; otherwise neither
	// is stored. A store with a per-tenant quota returns ErrTenantFull, and
	// stores nothing, for a new key of a tenant that already holds its
	// quota; replacing a key always succeeds. A store that cannot commit
	// records (see Store.ChangeJournal) returns ErrChangeRecords for a c
	// that carries some.
	PutSecret(ctx context.Context, tenant, key string, s SealedSecret, c Change) error

	// DeleteSecret removes the secret, and commits c's records like
	// PutSecret. It returns nil when none was stored. When it returns nil
	// the deletion and c's records are durable.
	DeleteSecret(ctx context.Context, tenant, key string, c Change) error

	// ListSecretKeys returns the key names stored for tenant, in ordinal
	// byte order, or an empty slice for a tenant without secrets.
	ListSecretKeys(ctx context.Context, tenant string) ([]string, error)

	// ListSecretKeysAfter returns at most limit of tenant's key names that
	// sort after after, in ordinal byte order; an empty after starts at the
	// first. Fewer than limit, or none, means no more follow. Each call is
	// one short read, so a listing in chunks holds no transaction (nor
	// memory) for the whole tenant.
	ListSecretKeysAfter(ctx context.Context, tenant, after string, limit int) ([]string, error)

	// ListSecretAttributes returns the attributes of tenant's secrets, in
	// ListSecretKeys' order, without reading a value out.
	ListSecretAttributes(ctx context.Context, tenant string) ([]SecretAttributes, error)

	// ReplaceSecret stores s, its times as given, under tenant and key only if the stored
	// secret's ciphertext is still old, atomically; re-sealing under a new
	// data key uses it so that it never overwrites a concurrent put or
	// resurrects a concurrent delete. It returns ECONFLICT when the stored
	// ciphertext differs or no secret is stored. When it returns nil the
	// write is durable.
	ReplaceSecret(ctx context.Context, tenant, key string, old []byte, s SealedSecret) error
}
