package neostore

import (
	"context"
	"time"
)

// Master-key statuses, as Tink names them.
const (
	KeyEnabled   = "enabled"
	KeyDisabled  = "disabled"
	KeyDestroyed = "destroyed"
)

// MasterKey describes one key of the master keyset, never its material.
type MasterKey struct {
	ID      uint32
	Status  string // KeyEnabled, KeyDisabled or KeyDestroyed
	Primary bool   // the key that wraps new tenant keys

	// TenantKeys counts the tenant data keys wrapped under this key;
	// KeyCheck and AuditKey say whether the key-check record and the audit
	// trail's key are sealed under it. All are zero when the keyset was
	// read without a store.
	TenantKeys int
	KeyCheck   bool
	AuditKey   bool
	// WebhookSecrets counts the webhook signing secrets sealed under it.
	WebhookSecrets int
}

// RewrapReport is what re-wrapping every tenant data key did.
type RewrapReport struct {
	Tenants          int  // tenant data keys examined
	Rewrapped        int  // wrapped anew under the primary master key
	KeyCheckResealed bool // the key-check record was sealed anew under the primary
	AuditKeyResealed bool // the audit trail's key was sealed anew under the primary
	WebhookSecrets   int  // webhook signing secrets sealed anew under the primary
}

// TenantKeyRotation is what rotating one tenant's data key did.
type TenantKeyRotation struct {
	Tenant        string
	NewKeyID      uint32   // the data key that now seals the tenant's secrets
	RemovedKeyIDs []uint32 // the data keys removed once nothing used them
	Secrets       int      // secrets examined
	Resealed      int      // secrets sealed anew under the new key
	Skipped       int      // secrets changed or deleted meanwhile by a client, who sealed with the new key
}

// KeyManager rotates keys without downtime: the master keyset, the wrapping
// of tenant data keys, and each tenant's data key. The operator's `keys`
// commands drive it, through a running server's admin socket or directly
// against a store.
type KeyManager interface {
	// MasterKeys returns the keys of the master keyset in use, each with
	// what it still protects.
	MasterKeys(ctx context.Context) ([]MasterKey, error)

	// ReloadMaster re-reads the master keyset from the file it was read
	// from and uses it from then on, for wrapping new tenant keys with its
	// primary. It returns EINVALID, keeping the keyset in use, when there
	// is no such file or the new keyset does not open the key-check record.
	ReloadMaster(ctx context.Context) ([]MasterKey, error)

	// Rewrap wraps every tenant data key and seals the key-check record
	// anew under the primary master key, while requests are served. It is
	// safe to re-run and to run concurrently with itself.
	Rewrap(ctx context.Context) (RewrapReport, error)

	// CheckMasterKeyRemoval returns nil when the master key id could be
	// removed from the keyset: no tenant data key, webhook signing secret,
	// key-check record or audit key depends on it, and it is not the primary. It returns ECONFLICT
	// naming what still depends on it, and ENOTFOUND for an unknown id.
	CheckMasterKeyRemoval(ctx context.Context, id uint32) error

	// RotateTenantKey gives tenant a new data key, seals every secret of
	// the tenant anew under it while requests are served, and removes the
	// old data keys once nothing uses them. grace is how long it waits
	// after storing the new key before it re-seals, so that every node has
	// stopped sealing with the old one. It returns ENOTFOUND when tenant
	// has no data key.
	RotateTenantKey(ctx context.Context, tenant string, grace time.Duration) (TenantKeyRotation, error)
}
