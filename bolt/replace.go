package bolt

import (
	"bytes"
	"context"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/neostore/neostore-secrets"
)

// Compare-and-swap writes, for key rotation. Each compares and writes in
// one write transaction; bbolt runs one writer at a time, so nothing can
// change the record between the comparison and the write.

// ReplaceTenantKey stores wrapped as tenant's data key if the stored one is
// still old, else returns ECONFLICT.
func (s *Store) ReplaceTenantKey(ctx context.Context, tenant string, old, wrapped []byte) error {
	return s.replace(ctx, "replace tenant key", neostore.ErrTenantKeyConflict, func(tx *bbolt.Tx) (bool, error) {
		b := tx.Bucket(bucketTenantKeys)
		if v := b.Get([]byte(tenant)); v == nil || !bytes.Equal(v, old) {
			return false, nil
		}
		return true, b.Put([]byte(tenant), bytes.Clone(wrapped))
	})
}

// ReplaceKeyCheck stores record if the stored key-check record is still
// old, else returns ECONFLICT.
func (s *Store) ReplaceKeyCheck(ctx context.Context, old, record []byte) error {
	return s.replace(ctx, "replace key check", neostore.ErrKeyCheckConflict, func(tx *bbolt.Tx) (bool, error) {
		b := tx.Bucket(bucketMeta)
		if v := b.Get(metaKeyCheck); v == nil || !bytes.Equal(v, old) {
			return false, nil
		}
		return true, b.Put(metaKeyCheck, bytes.Clone(record))
	})
}

// ReplaceAuditKey stores wrapped as the audit trail's key if the stored one
// is still old, else returns ECONFLICT. Rewrapping under a new master key
// uses it.
func (s *Store) ReplaceAuditKey(ctx context.Context, old, wrapped []byte) error {
	return s.replace(ctx, "replace audit key", neostore.ErrAuditKeyConflict, func(tx *bbolt.Tx) (bool, error) {
		b := tx.Bucket(bucketAudit)
		if b == nil {
			return false, nil
		}
		if v := b.Get(auditKeyName); v == nil || !bytes.Equal(v, old) {
			return false, nil
		}
		return true, b.Put(auditKeyName, bytes.Clone(wrapped))
	})
}

// replace runs a compare-and-swap in its own write transaction. swap
// reports whether the comparison held; when it did not, nothing is
// committed and replace returns conflict.
func (s *Store) replace(ctx context.Context, op string, conflict error, swap func(tx *bbolt.Tx) (bool, error)) error {
	tx, err := s.begin(ctx, true)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	swapped, err := swap(tx)
	if err != nil {
		return fmt.Errorf("bolt: %s: %w", op, err)
	}
	if !swapped {
		return conflict
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("bolt: %s: %w", op, err)
	}
	return nil
}

// ReplaceSecret stores sec under tenant and key if the stored secret's
// ciphertext is still old, else returns ECONFLICT; an absent secret is a
// conflict too, so a concurrent delete is never undone. Re-sealing a
// tenant calls it once per secret while the API writes, so it joins the
// group commit; a nil return means the write was fsync'd.
func (s *Store) ReplaceSecret(ctx context.Context, tenant, key string, old []byte, sec neostore.SealedSecret) error {
	rec := encodeSecret(sec)
	// The batch function may run twice (alone after a failed shared
	// commit); each run sets swapped, and the last run is the committed
	// one. A lost comparison is not an error, so that it does not roll
	// back the writes sharing its transaction.
	var swapped bool
	err := s.batch(ctx, func(tx *bbolt.Tx) error {
		swapped = false
		b := tx.Bucket(bucketSecrets).Bucket([]byte(tenant))
		if b == nil {
			return nil
		}
		data := b.Get([]byte(key))
		if data == nil {
			return nil
		}
		stored, err := decodeSecret(data)
		if err != nil {
			return fmt.Errorf("secret %q of tenant %q: %w", key, tenant, err)
		}
		if !bytes.Equal(stored.Ciphertext, old) {
			return nil
		}
		swapped = true
		if err := b.Put([]byte(key), rec); err != nil {
			return err
		}
		// A rotation keeps the window, so it records no event; the index
		// follows the record all the same, whatever times it was given.
		return reindex(tx, tenant, key, &stored, &sec)
	})
	if err != nil {
		return fmt.Errorf("bolt: replace secret: %w", err)
	}
	if !swapped {
		return neostore.ErrSecretConflict
	}
	return nil
}
