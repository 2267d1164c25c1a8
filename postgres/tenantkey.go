package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/neostore/neostore-secrets"
)

// GetTenantKey returns the wrapped data key of tenant, or ENOTFOUND.
func (s *Store) GetTenantKey(ctx context.Context, tenant string) ([]byte, error) {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: get tenant key: %w", err)
	}
	defer cancel()
	var wrapped []byte
	err = s.pool.QueryRow(ctx, "SELECT wrapped FROM tenant_keys WHERE tenant = $1", tenant).Scan(&wrapped)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, neostore.ErrTenantKeyNotFound
	} else if err != nil {
		return nil, s.fail(ctx, "get tenant key", err)
	}
	return wrapped, nil
}

// CreateTenantKey stores wrapped as tenant's data key unless one exists,
// and returns the stored key: of callers racing on any number of nodes,
// every one gets the key of the one whose insert committed first.
func (s *Store) CreateTenantKey(ctx context.Context, tenant string, wrapped []byte) ([]byte, error) {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: create tenant key: %w", err)
	}
	defer cancel()
	stored, err := s.putIfAbsent(ctx,
		"INSERT INTO tenant_keys (tenant, wrapped) VALUES ($1, $2) ON CONFLICT (tenant) DO NOTHING RETURNING wrapped",
		"SELECT wrapped FROM tenant_keys WHERE tenant = $1",
		[]any{tenant, nonNil(wrapped)}, []any{tenant})
	if err != nil {
		return nil, s.fail(ctx, "create tenant key", err)
	}
	return stored, nil
}

// GetKeyCheck returns the key-check record, or ENOTFOUND for a new store.
func (s *Store) GetKeyCheck(ctx context.Context) ([]byte, error) {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: get key check: %w", err)
	}
	defer cancel()
	var record []byte
	err = s.pool.QueryRow(ctx, "SELECT record FROM key_check WHERE id").Scan(&record)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, neostore.ErrKeyCheckNotFound
	} else if err != nil {
		return nil, s.fail(ctx, "get key check", err)
	}
	return record, nil
}

// CreateKeyCheck stores record unless a key-check record exists, and
// returns the stored one: of nodes starting at once on an empty database
// with different master keys, all but one see another key's record.
func (s *Store) CreateKeyCheck(ctx context.Context, record []byte) ([]byte, error) {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: create key check: %w", err)
	}
	defer cancel()
	stored, err := s.putIfAbsent(ctx,
		"INSERT INTO key_check (id, record) VALUES (TRUE, $1) ON CONFLICT (id) DO NOTHING RETURNING record",
		"SELECT record FROM key_check WHERE id",
		[]any{nonNil(record)}, nil)
	if err != nil {
		return nil, s.fail(ctx, "create key check", err)
	}
	return stored, nil
}

// putIfAbsent runs insert (INSERT ... ON CONFLICT DO NOTHING RETURNING
// value) and, when a row was already there, get. They are two statements
// on purpose: when the insert waited for a concurrent one and then did
// nothing, only a new statement's snapshot sees the winner's row under
// READ COMMITTED. Rows of these tables are never deleted, and are changed
// only by a rotation (ReplaceTenantKey, ReplaceKeyCheck), after which the
// get returns the rotated value, which is as valid an answer: no
// transaction is needed between the two.
func (s *Store) putIfAbsent(ctx context.Context, insert, get string, insertArgs, getArgs []any) ([]byte, error) {
	var stored []byte
	err := s.pool.QueryRow(ctx, insert, insertArgs...).Scan(&stored)
	if errors.Is(err, pgx.ErrNoRows) {
		err = s.pool.QueryRow(ctx, get, getArgs...).Scan(&stored)
	}
	if err != nil {
		return nil, err
	}
	return stored, nil
}

// nonNil returns b, or an empty slice for nil: pgx sends a nil slice as
// NULL, and the BYTEA columns are NOT NULL, while an empty value is still
// a value.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
