package envelope

import (
	"context"
	"crypto/rand"
	"fmt"

	"github.com/neostore/neostore-secrets"
)

// labelAuditKey is the associated data of the wrapped audit key.
const labelAuditKey = "neostore/auditkey/v1"

// auditKeySize is the length of the audit trail's HMAC-SHA256 key.
const auditKeySize = 32

// AuditKey returns the audit trail's HMAC key: a random key made on first
// use, wrapped by the master key and kept in store, so every node sharing a
// store signs with the same key and rotating the master key (which keeps
// old keys for unwrapping) does not change it. Without the master key the
// stored bytes are useless, so whoever can edit the audit file cannot forge
// its chain.
func (m *Master) AuditKey(ctx context.Context, store neostore.AuditStateStore) ([]byte, error) {
	wrapped, err := store.GetAuditKey(ctx)
	if neostore.ErrorCode(err) == neostore.ENOTFOUND {
		key := make([]byte, auditKeySize)
		rand.Read(key)
		fresh, err := m.current().aead.Encrypt(key, []byte(labelAuditKey))
		if err != nil {
			return nil, fmt.Errorf("envelope: wrap audit key: %w", err)
		}
		// Another node may have stored one meanwhile: use the stored one.
		if wrapped, err = store.CreateAuditKey(ctx, fresh); err != nil {
			return nil, fmt.Errorf("envelope: store audit key: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("envelope: read audit key: %w", err)
	}
	return m.UnwrapAuditKey(wrapped)
}

// UnwrapAuditKey opens a wrapped audit key as AuditKey stored it.
func (m *Master) UnwrapAuditKey(wrapped []byte) ([]byte, error) {
	key, err := m.current().aead.Decrypt(wrapped, []byte(labelAuditKey))
	if err != nil || len(key) != auditKeySize {
		return nil, fmt.Errorf("envelope: the audit key does not open with this master key: %w", errInternal())
	}
	return key, nil
}
