package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/neostore/neostore-secrets"
)

// errAPIKeyTaken is returned when an insert hits either unique constraint
// and the database does not say which.
var errAPIKeyTaken = neostore.Errorf(neostore.EINVALID, "An API key with this id or hash already exists.")

// apiKeyColumns is the column list that scanAPIKey reads.
const apiKeyColumns = "id, name, tenant, scopes, hash, created_at, expires_at, revoked_at, last_used"

// CreateAPIKey stores a new API-key record. It returns EINVALID when the id
// or the hash is already taken, or is empty. Times are kept to the
// microsecond (TIMESTAMPTZ), truncated.
func (s *Store) CreateAPIKey(ctx context.Context, k neostore.APIKey) error {
	switch {
	case k.ID == "":
		return neostore.ErrAPIKeyNoID
	case len(k.Hash) == 0:
		return neostore.ErrAPIKeyNoHash
	}
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return fmt.Errorf("postgres: create api key: %w", err)
	}
	defer cancel()
	_, err = s.pool.Exec(ctx, "INSERT INTO api_keys ("+apiKeyColumns+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
		k.ID, k.Name, k.Tenant, nonNilStrings(k.Scopes.Names()), k.Hash, k.CreatedAt.UTC(),
		k.ExpiresAt.Ptr(), k.RevokedAt.Ptr(), k.LastUsed.Ptr())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" { // unique_violation
		switch pgErr.ConstraintName {
		case "api_keys_pkey":
			return neostore.ErrAPIKeyIDTaken
		case "api_keys_hash_key":
			return neostore.ErrAPIKeyHashTaken
		}
		return errAPIKeyTaken // a server that does not name the constraint
	}
	if err != nil {
		return s.fail(ctx, "create api key", err)
	}
	return nil
}

// ListAPIKeys returns the records of tenant, or of every tenant when tenant
// is empty, ordered by creation time then id (byte order).
func (s *Store) ListAPIKeys(ctx context.Context, tenant string) ([]neostore.APIKey, error) {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: list api keys: %w", err)
	}
	defer cancel()
	var rows pgx.Rows
	if tenant == "" {
		rows, _ = s.pool.Query(ctx, "SELECT "+apiKeyColumns+" FROM api_keys ORDER BY created_at, id")
	} else {
		rows, _ = s.pool.Query(ctx, "SELECT "+apiKeyColumns+" FROM api_keys WHERE tenant = $1 ORDER BY created_at, id", tenant)
	}
	keys, err := pgx.CollectRows(rows, scanAPIKey)
	if err != nil {
		return nil, s.fail(ctx, "list api keys", err)
	}
	if keys == nil {
		keys = []neostore.APIKey{}
	}
	return keys, nil
}

// APIKeyByHash returns the record whose hash is hash, revoked or not, or
// ENOTFOUND. The hash column is unique, so this is one index probe.
func (s *Store) APIKeyByHash(ctx context.Context, hash []byte) (neostore.APIKey, error) {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return neostore.APIKey{}, fmt.Errorf("postgres: api key by hash: %w", err)
	}
	defer cancel()
	rows, _ := s.pool.Query(ctx, "SELECT "+apiKeyColumns+" FROM api_keys WHERE hash = $1", hash)
	k, err := pgx.CollectExactlyOneRow(rows, scanAPIKey)
	if errors.Is(err, pgx.ErrNoRows) {
		return neostore.APIKey{}, neostore.ErrAPIKeyNotFound
	}
	if err != nil {
		return neostore.APIKey{}, s.fail(ctx, "api key by hash", err)
	}
	return k, nil
}

// RevokeAPIKey marks the key revoked at at, in one statement that keeps an
// earlier revocation time. It returns ENOTFOUND for an unknown id.
func (s *Store) RevokeAPIKey(ctx context.Context, id string, at time.Time) error {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return fmt.Errorf("postgres: revoke api key: %w", err)
	}
	defer cancel()
	tag, err := s.pool.Exec(ctx, "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1", id, at.UTC())
	if err != nil {
		return s.fail(ctx, "revoke api key", err)
	}
	if tag.RowsAffected() == 0 {
		return neostore.ErrAPIKeyNotFound
	}
	return nil
}

// TouchAPIKeys records the last-use times of several keys in one
// statement; ids without a record are ignored. A time earlier than the
// one stored is ignored too, so that nodes flushing their batches in any
// order leave the latest use.
func (s *Store) TouchAPIKeys(ctx context.Context, lastUsed map[string]time.Time) error {
	if len(lastUsed) == 0 {
		return nil
	}
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return fmt.Errorf("postgres: touch api keys: %w", err)
	}
	defer cancel()
	// Sorted, so that concurrent batches lock rows in the same order.
	ids := make([]string, 0, len(lastUsed))
	for id := range lastUsed {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	times := make([]time.Time, len(ids))
	for i, id := range ids {
		times[i] = lastUsed[id].UTC()
	}
	_, err = s.pool.Exec(ctx, `UPDATE api_keys AS k SET last_used = u.at
		FROM unnest($1::text[], $2::timestamptz[]) AS u(id, at)
		WHERE k.id = u.id AND (k.last_used IS NULL OR k.last_used < u.at)`, ids, times)
	if err != nil {
		return s.fail(ctx, "touch api keys", err)
	}
	return nil
}

// scanAPIKey reads one row of apiKeyColumns. An unknown scope name is an
// internal error: a newer build wrote it, or the row was edited by hand.
func scanAPIKey(row pgx.CollectableRow) (neostore.APIKey, error) {
	var (
		k                              neostore.APIKey
		scopes                         []string
		expiresAt, revokedAt, lastUsed *time.Time
	)
	if err := row.Scan(&k.ID, &k.Name, &k.Tenant, &scopes, &k.Hash, &k.CreatedAt, &expiresAt, &revokedAt, &lastUsed); err != nil {
		return neostore.APIKey{}, err
	}
	k.CreatedAt = k.CreatedAt.UTC()
	k.ExpiresAt, k.RevokedAt, k.LastUsed = neostore.BoundOf(expiresAt), neostore.BoundOf(revokedAt), neostore.BoundOf(lastUsed)
	for _, name := range scopes {
		scope, ok := neostore.ParseScope(name)
		if !ok {
			return neostore.APIKey{}, fmt.Errorf("api key %q: corrupt row: unknown scope %q", k.ID, name)
		}
		k.Scopes |= scope
	}
	return k, nil
}

// nonNilStrings returns s, or an empty slice for nil: the scopes column is
// NOT NULL, and a key without scopes is still a key.
func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
