package bolt

import (
	"context"
	"fmt"
	"slices"

	bbolt "go.etcd.io/bbolt"

	"github.com/neostore/neostore-secrets"
)

// GetSecret returns the sealed secret stored under tenant and key, or
// ENOTFOUND. A record that does not decode is an internal error.
func (s *Store) GetSecret(ctx context.Context, tenant, key string) (neostore.SealedSecret, error) {
	tx, err := s.begin(ctx, false)
	if err != nil {
		return neostore.SealedSecret{}, err
	}
	defer func() { _ = tx.Rollback() }()
	return getSecret(tx, tenant, key)
}

// PutSecret stores sec under tenant and key, replacing value and validity of
// any previous secret, and journals c's audit entry in the same
// transaction. The same transaction moves the key's due index entries and,
// with c.Notice, records the change's event in the outbox when a
// subscription covers the tenant. Concurrent puts and deletes share one
// commit; a nil return means the write was fsync'd.
func (s *Store) PutSecret(ctx context.Context, tenant, key string, sec neostore.SealedSecret, c neostore.Change) error {
	// Encoded once, outside the batch function, which bbolt may run twice.
	// The fresh buffer also means the caller's slice is never stored.
	rec := encodeSecret(sec)
	if err := s.batchChange(ctx, c, func(tx *bbolt.Tx) error {
		old, present := storedHeader(tx, tenant, key)
		stored, r := sec, rec
		if old != nil {
			// A put over a secret does not make it new.
			stored.Times.CreatedOn = old.Times.CreatedOn
			r = encodeSecret(stored)
		}
		if err := putSecret(tx, tenant, key, r, s.maxKeys); err != nil {
			return err
		}
		if err := reindex(tx, tenant, key, old, &stored); err != nil {
			return err
		}
		return recordEvent(tx, c.Notice, neostore.EventSecretUpdated, tenant, key, sec.Validity, !present)
	}); err != nil {
		return fmt.Errorf("bolt: put secret: %w", err)
	}
	return nil
}

// DeleteSecret removes the secret under tenant and key, journaling c's
// audit entry with it, its due index entries and, with c.Notice, recording
// its event; removing an absent one succeeds and records nothing. A nil
// return means the deletion was fsync'd.
func (s *Store) DeleteSecret(ctx context.Context, tenant, key string, c neostore.Change) error {
	if err := s.batchChange(ctx, c, func(tx *bbolt.Tx) error {
		old, present := storedHeader(tx, tenant, key)
		if !present {
			return nil
		}
		if err := deleteSecret(tx, tenant, key); err != nil {
			return err
		}
		if err := reindex(tx, tenant, key, old, nil); err != nil {
			return err
		}
		var v neostore.Validity
		if old != nil {
			v = old.Validity
		}
		return recordEvent(tx, c.Notice, neostore.EventSecretDeleted, tenant, key, v, false)
	}); err != nil {
		return fmt.Errorf("bolt: delete secret: %w", err)
	}
	return nil
}

// ListTenants returns every tenant with a data key or a secret bucket, in
// ordinal byte order.
func (s *Store) ListTenants(ctx context.Context) ([]string, error) {
	tx, err := s.begin(ctx, false)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	seen := map[string]bool{}
	tenants := []string{}
	add := func(name []byte) {
		if !seen[string(name)] {
			seen[string(name)] = true
			tenants = append(tenants, string(name))
		}
	}
	if err := tx.Bucket(bucketTenantKeys).ForEach(func(k, _ []byte) error { add(k); return nil }); err != nil {
		return nil, fmt.Errorf("bolt: list tenants: %w", err)
	}
	if err := tx.Bucket(bucketSecrets).ForEachBucket(func(k []byte) error { add(k); return nil }); err != nil {
		return nil, fmt.Errorf("bolt: list tenants: %w", err)
	}
	slices.Sort(tenants)
	return tenants, nil
}

// ListSecretKeys returns tenant's key names in ordinal byte order (bbolt's
// key order), or an empty slice when the tenant has none.
func (s *Store) ListSecretKeys(ctx context.Context, tenant string) ([]string, error) {
	tx, err := s.begin(ctx, false)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	return listSecretKeys(tx, tenant), nil
}

// storedHeader returns the header of the secret stored under the key (nil
// when none is, or when its record does not decode: such a record is
// replaced or deleted as it is) and whether a record is stored at all.
func storedHeader(tx *bbolt.Tx, tenant, key string) (*neostore.SealedSecret, bool) {
	b := tx.Bucket(bucketSecrets).Bucket([]byte(tenant))
	if b == nil {
		return nil, false
	}
	data := b.Get([]byte(key))
	if data == nil {
		return nil, false
	}
	old, _, err := decodeHeader(data)
	if err != nil {
		return nil, true
	}
	return &old, true
}

// ListSecretAttributes returns the attributes of tenant's secrets in
// ordinal byte order, decoding each record's header only.
func (s *Store) ListSecretAttributes(ctx context.Context, tenant string) ([]neostore.SecretAttributes, error) {
	tx, err := s.begin(ctx, false)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	attrs := []neostore.SecretAttributes{}
	b := tx.Bucket(bucketSecrets).Bucket([]byte(tenant))
	if b == nil {
		return attrs, nil
	}
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v == nil {
			continue // a nested bucket, as in listSecretKeys
		}
		sec, _, err := decodeHeader(v)
		if err != nil {
			return nil, fmt.Errorf("bolt: secret %q of tenant %q: %w", k, tenant, err)
		}
		attrs = append(attrs, neostore.SecretAttributes{Key: string(k), Validity: sec.Validity, Times: sec.Times})
	}
	return attrs, nil
}

// ListSecretKeysAfter returns at most limit of tenant's key names after
// after, in one read transaction of its own: a transaction held while a
// response trickles out to a slow client would block bbolt's remap when a
// writer grows the file.
func (s *Store) ListSecretKeysAfter(ctx context.Context, tenant, after string, limit int) ([]string, error) {
	tx, err := s.begin(ctx, false)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	keys := make([]string, 0, min(max(limit, 0), 1024))
	b := tx.Bucket(bucketSecrets).Bucket([]byte(tenant))
	if b == nil {
		return keys, nil
	}
	c := b.Cursor()
	k, v := c.Seek([]byte(after))
	if k != nil && string(k) == after {
		k, v = c.Next()
	}
	for ; k != nil && len(keys) < limit; k, v = c.Next() {
		if v == nil {
			continue // a nested bucket; the layout has none, but it is no key
		}
		keys = append(keys, string(k))
	}
	return keys, nil
}

func getSecret(tx *bbolt.Tx, tenant, key string) (neostore.SealedSecret, error) {
	b := tx.Bucket(bucketSecrets).Bucket([]byte(tenant))
	if b == nil {
		return neostore.SealedSecret{}, neostore.ErrSecretNotFound
	}
	data := b.Get([]byte(key))
	if data == nil {
		return neostore.SealedSecret{}, neostore.ErrSecretNotFound
	}
	sec, err := decodeSecret(data)
	if err != nil {
		return neostore.SealedSecret{}, fmt.Errorf("bolt: secret %q of tenant %q: %w", key, tenant, err)
	}
	return sec, nil
}

// putSecret stores rec; with maxKeys > 0 a new key of a tenant that holds
// maxKeys already fails with ErrTenantFull.
func putSecret(tx *bbolt.Tx, tenant, key string, rec []byte, maxKeys int) error {
	b, err := tx.Bucket(bucketSecrets).CreateBucketIfNotExists([]byte(tenant))
	if err != nil {
		return err
	}
	if maxKeys > 0 && b.Get([]byte(key)) == nil && countKeys(b, maxKeys) >= maxKeys {
		return neostore.ErrTenantFull
	}
	return b.Put([]byte(key), rec)
}

// countKeys counts b's keys, stopping at limit. It walks a cursor rather
// than asking Bucket.Stats, which reads committed pages only and so would
// miss the keys put earlier in a shared (group-commit) transaction.
func countKeys(b *bbolt.Bucket, limit int) int {
	n := 0
	c := b.Cursor()
	for k, _ := c.First(); k != nil && n < limit; k, _ = c.Next() {
		n++
	}
	return n
}

// deleteSecret also drops the tenant's bucket once it is empty, so that
// tenants that come and go leave nothing behind.
func deleteSecret(tx *bbolt.Tx, tenant, key string) error {
	secrets := tx.Bucket(bucketSecrets)
	b := secrets.Bucket([]byte(tenant))
	if b == nil {
		return nil
	}
	if err := b.Delete([]byte(key)); err != nil {
		return err
	}
	if k, _ := b.Cursor().First(); k == nil {
		return secrets.DeleteBucket([]byte(tenant))
	}
	return nil
}

func listSecretKeys(tx *bbolt.Tx, tenant string) []string {
	keys := []string{}
	b := tx.Bucket(bucketSecrets).Bucket([]byte(tenant))
	if b == nil {
		return keys
	}
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v == nil {
			continue // a nested bucket; the layout has none, but it is no key
		}
		keys = append(keys, string(k))
	}
	return keys
}
