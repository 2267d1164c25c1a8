package postgres

import (
	"context"
	"fmt"

	"github.com/neostore/neostore-secrets"
)

// Compare-and-swap writes, for key rotation. Each is one UPDATE whose WHERE
// clause compares the stored bytes: the row lock it takes makes the
// comparison and the write atomic against any concurrent writer on any
// node, and no row (changed, deleted or never stored) means a conflict.

// ReplaceTenantKey stores wrapped as tenant's data key if the stored one is
// still old, else returns ECONFLICT.
func (s *Store) ReplaceTenantKey(ctx context.Context, tenant string, old, wrapped []byte) error {
	return s.compareAndSwap(ctx, "replace tenant key", neostore.ErrTenantKeyConflict,
		"UPDATE tenant_keys SET wrapped = $3 WHERE tenant = $1 AND wrapped = $2",
		tenant, nonNil(old), nonNil(wrapped))
}

// ReplaceKeyCheck stores record if the stored key-check record is still
// old, else returns ECONFLICT.
func (s *Store) ReplaceKeyCheck(ctx context.Context, old, record []byte) error {
	return s.compareAndSwap(ctx, "replace key check", neostore.ErrKeyCheckConflict,
		"UPDATE key_check SET record = $2 WHERE id AND record = $1",
		nonNil(old), nonNil(record))
}

// ReplaceAuditKey stores wrapped as the audit trail's key if the stored one
// is still old, else returns ECONFLICT. Rewrapping under a new master key
// uses it.
func (s *Store) ReplaceAuditKey(ctx context.Context, old, wrapped []byte) error {
	return s.compareAndSwap(ctx, "replace audit key", neostore.ErrAuditKeyConflict,
		"UPDATE audit_key SET wrapped = $2 WHERE id AND wrapped = $1",
		nonNil(old), nonNil(wrapped))
}

// ReplaceSecret stores sec under tenant and key if the stored ciphertext is
// still old, value, window and times in one statement, else returns
// ECONFLICT; a deleted secret is a conflict, so a concurrent delete is
// never undone.
func (s *Store) ReplaceSecret(ctx context.Context, tenant, key string, old []byte, sec neostore.SealedSecret) error {
	nb, eo := encodeBound(sec.Validity.NotBefore), encodeBound(sec.Validity.ExpiresOn)
	co, uo := encodeBound(sec.Times.CreatedOn), encodeBound(sec.Times.UpdatedOn)
	return s.compareAndSwap(ctx, "replace secret", neostore.ErrSecretConflict,
		`UPDATE secrets SET ciphertext = $4,
			not_before_s = $5, not_before_ns = $6, expires_on_s = $7, expires_on_ns = $8,
			created_on_s = $9, created_on_ns = $10, updated_on_s = $11, updated_on_ns = $12
		WHERE tenant = $1 AND key = $2 AND ciphertext = $3`,
		tenant, key, nonNil(old), nonNil(sec.Ciphertext), nb.s, nb.ns, eo.s, eo.ns, co.s, co.ns, uo.s, uo.ns)
}

// compareAndSwap runs update, which changes at most one row, and returns
// conflict when it changed none.
func (s *Store) compareAndSwap(ctx context.Context, op string, conflict error, update string, args ...any) error {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return fmt.Errorf("postgres: %s: %w", op, err)
	}
	defer cancel()
	tag, err := s.pool.Exec(ctx, update, args...)
	if err != nil {
		return s.fail(ctx, op, err)
	}
	if tag.RowsAffected() == 0 {
		return conflict
	}
	return nil
}
