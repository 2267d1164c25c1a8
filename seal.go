package neostore

import "context"

// Sealer encrypts secret values before they reach storage and decrypts them
// after. A ciphertext is bound to its tenant and key name: opened under any
// other tenant or key it fails.
type Sealer interface {
	// Seal encrypts plaintext for tenant and key.
	Seal(ctx context.Context, tenant, key string, plaintext []byte) ([]byte, error)

	// Open decrypts ciphertext sealed for tenant and key. It returns
	// EINTERNAL when the ciphertext does not open (tampered, moved, or sealed
	// under another key).
	Open(ctx context.Context, tenant, key string, ciphertext []byte) ([]byte, error)
}

// TenantKeyStore keeps each tenant's data key, wrapped by the master key.
type TenantKeyStore interface {
	// GetTenantKey returns the wrapped data key of tenant, or ENOTFOUND.
	GetTenantKey(ctx context.Context, tenant string) ([]byte, error)

	// CreateTenantKey stores wrapped as the data key of tenant unless one is
	// already stored, and returns the one that is stored afterwards: two
	// callers racing to create a tenant's key both get the winner's.
	CreateTenantKey(ctx context.Context, tenant string, wrapped []byte) ([]byte, error)

	// ReplaceTenantKey stores wrapped as the data key of tenant only if the
	// stored one is still old, atomically: re-wrapping under a new master
	// key and rotating a data key use it so that two rotations never
	// overwrite each other. It returns ECONFLICT when the stored key differs
	// or none is stored.
	ReplaceTenantKey(ctx context.Context, tenant string, old, wrapped []byte) error
}

// KeyCheckStore keeps the key-check record: a value sealed with the master
// key when the store was created, so that a different master key is detected
// at start instead of at the first read.
type KeyCheckStore interface {
	// GetKeyCheck returns the key-check record, or ENOTFOUND for a new store.
	GetKeyCheck(ctx context.Context) ([]byte, error)

	// CreateKeyCheck stores record unless a key-check record is already
	// stored, and returns the one stored afterwards: of two nodes starting
	// on an empty shared store with different master keys, one fails.
	CreateKeyCheck(ctx context.Context, record []byte) ([]byte, error)

	// ReplaceKeyCheck stores record only if the stored key-check record is
	// still old, atomically, so that it can be sealed anew under a new
	// master key. It returns ECONFLICT when the stored record differs or
	// none is stored.
	ReplaceKeyCheck(ctx context.Context, old, record []byte) error
}
