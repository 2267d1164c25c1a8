package bolt

import (
	"bytes"
	"context"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/neostore/neostore-secrets"
)

// GetTenantKey returns the wrapped data key of tenant, or ENOTFOUND.
func (s *Store) GetTenantKey(ctx context.Context, tenant string) ([]byte, error) {
	tx, err := s.begin(ctx, false)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	v := tx.Bucket(bucketTenantKeys).Get([]byte(tenant))
	if v == nil {
		return nil, neostore.ErrTenantKeyNotFound
	}
	return bytes.Clone(v), nil
}

// CreateTenantKey stores wrapped as tenant's data key unless one exists, and
// returns the stored key. bbolt runs one writer at a time, so of racing
// callers the first to commit wins and the others read its key.
func (s *Store) CreateTenantKey(ctx context.Context, tenant string, wrapped []byte) ([]byte, error) {
	tx, err := s.begin(ctx, true)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()

	stored, created, err := createTenantKey(tx, tenant, wrapped)
	if err != nil {
		return nil, fmt.Errorf("bolt: create tenant key: %w", err)
	}
	if !created {
		return stored, nil
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("bolt: create tenant key: %w", err)
	}
	return stored, nil
}

// createTenantKey returns a copy of the key stored for tenant, storing a
// copy of wrapped first when there is none.
func createTenantKey(tx *bbolt.Tx, tenant string, wrapped []byte) (stored []byte, created bool, err error) {
	b := tx.Bucket(bucketTenantKeys)
	if v := b.Get([]byte(tenant)); v != nil {
		return bytes.Clone(v), false, nil
	}
	if err := b.Put([]byte(tenant), bytes.Clone(wrapped)); err != nil {
		return nil, false, err
	}
	return bytes.Clone(wrapped), true, nil
}

// GetKeyCheck returns the key-check record, or ENOTFOUND for a new store.
func (s *Store) GetKeyCheck(ctx context.Context) ([]byte, error) {
	tx, err := s.begin(ctx, false)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	v := tx.Bucket(bucketMeta).Get(metaKeyCheck)
	if v == nil {
		return nil, neostore.ErrKeyCheckNotFound
	}
	return bytes.Clone(v), nil
}

// CreateKeyCheck stores record unless a key-check record exists, and
// returns the stored one.
func (s *Store) CreateKeyCheck(ctx context.Context, record []byte) ([]byte, error) {
	tx, err := s.begin(ctx, true)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	b := tx.Bucket(bucketMeta)
	if v := b.Get(metaKeyCheck); v != nil {
		return bytes.Clone(v), nil
	}
	if err := b.Put(metaKeyCheck, bytes.Clone(record)); err != nil {
		return nil, fmt.Errorf("bolt: create key check: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("bolt: create key check: %w", err)
	}
	return bytes.Clone(record), nil
}
