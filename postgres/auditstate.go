package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/neostore/neostore-secrets"
)

// GetAuditKey returns the wrapped audit key, or ENOTFOUND.
func (s *Store) GetAuditKey(ctx context.Context) ([]byte, error) {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: get audit key: %w", err)
	}
	defer cancel()
	var wrapped []byte
	err = s.pool.QueryRow(ctx, "SELECT wrapped FROM audit_key WHERE id").Scan(&wrapped)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, neostore.ErrAuditKeyNotFound
	} else if err != nil {
		return nil, s.fail(ctx, "get audit key", err)
	}
	return wrapped, nil
}

// CreateAuditKey stores wrapped unless an audit key exists, and returns the
// stored one: nodes racing at first start all get the same key.
func (s *Store) CreateAuditKey(ctx context.Context, wrapped []byte) ([]byte, error) {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: create audit key: %w", err)
	}
	defer cancel()
	stored, err := s.putIfAbsent(ctx,
		"INSERT INTO audit_key (id, wrapped) VALUES (TRUE, $1) ON CONFLICT (id) DO NOTHING RETURNING wrapped",
		"SELECT wrapped FROM audit_key WHERE id",
		[]any{nonNil(wrapped)}, nil)
	if err != nil {
		return nil, s.fail(ctx, "create audit key", err)
	}
	return stored, nil
}

// SaveAuditCheckpoint records node's checkpoint unless a later one is
// stored.
func (s *Store) SaveAuditCheckpoint(ctx context.Context, node string, seq uint64, hash []byte) error {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return fmt.Errorf("postgres: save audit checkpoint: %w", err)
	}
	defer cancel()
	_, err = s.pool.Exec(ctx, `
		INSERT INTO audit_checkpoints (node, seq, hash) VALUES ($1, $2, $3)
		ON CONFLICT (node) DO UPDATE SET seq = excluded.seq, hash = excluded.hash
		WHERE audit_checkpoints.seq <= excluded.seq`, node, int64(seq), nonNil(hash))
	if err != nil {
		return s.fail(ctx, "save audit checkpoint", err)
	}
	return nil
}

// LoadAuditCheckpoint returns node's checkpoint.
func (s *Store) LoadAuditCheckpoint(ctx context.Context, node string) (uint64, []byte, bool, error) {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return 0, nil, false, fmt.Errorf("postgres: load audit checkpoint: %w", err)
	}
	defer cancel()
	var seq int64
	var hash []byte
	err = s.pool.QueryRow(ctx, "SELECT seq, hash FROM audit_checkpoints WHERE node = $1", node).Scan(&seq, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil, false, nil
	} else if err != nil {
		return 0, nil, false, s.fail(ctx, "load audit checkpoint", err)
	}
	return uint64(seq), hash, true, nil
}

// ListAuditCheckpoints returns every node's checkpoint, by node.
func (s *Store) ListAuditCheckpoints(ctx context.Context) ([]neostore.AuditCheckpoint, error) {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: list audit checkpoints: %w", err)
	}
	defer cancel()
	cps := []neostore.AuditCheckpoint{}
	rows, err := s.pool.Query(ctx, "SELECT node, seq, hash FROM audit_checkpoints ORDER BY node")
	if err != nil {
		return nil, s.fail(ctx, "list audit checkpoints", err)
	}
	defer rows.Close()
	for rows.Next() {
		var cp neostore.AuditCheckpoint
		var seq int64
		if err := rows.Scan(&cp.Node, &seq, &cp.Hash); err != nil {
			return nil, s.fail(ctx, "list audit checkpoints", err)
		}
		cp.Seq = uint64(seq)
		cps = append(cps, cp)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(ctx, "list audit checkpoints", err)
	}
	return cps, nil
}
