package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// AuditSink keeps audit records in the audit_log table, so that every
// node's chain is in one place. It implements the audit trail's sink
// contract: Write buffers a record line, Sync inserts the buffered lines in
// one transaction (the group commit of the records of concurrent requests),
// and a failed Sync discards them, as the contract requires of a
// transactional sink. It also reads back a node's last line (Tail).
type AuditSink struct {
	store   *Store
	pending [][]byte
	rows    []auditRow
}

// auditRow is the part of a record line the table indexes.
type auditRow struct {
	Node   string    `json:"node"`
	Seq    int64     `json:"seq"`
	Time   time.Time `json:"time"`
	Tenant string    `json:"tenant"`
}

// NewAuditSink returns a sink writing to s's database.
func (s *Store) NewAuditSink() *AuditSink { return &AuditSink{store: s} }

// Write buffers one record line (a JSON object and a newline).
func (a *AuditSink) Write(p []byte) error {
	line := bytes.TrimSuffix(p, []byte("\n"))
	var row auditRow
	if err := json.Unmarshal(line, &row); err != nil || row.Node == "" || row.Seq <= 0 {
		return errors.New("postgres: audit sink: not a record line")
	}
	a.pending = append(a.pending, bytes.Clone(line))
	a.rows = append(a.rows, row)
	return nil
}

// Sync inserts every buffered line in one transaction; on failure none is
// kept.
func (a *AuditSink) Sync() error {
	if len(a.pending) == 0 {
		return nil
	}
	pending, rows := a.pending, a.rows
	a.pending, a.rows = nil, nil
	ctx, cancel, err := a.store.call(context.Background())
	if err != nil {
		return fmt.Errorf("postgres: audit sink: %w", err)
	}
	defer cancel()
	nodes := make([]string, len(rows))
	seqs := make([]int64, len(rows))
	times := make([]time.Time, len(rows))
	tenants := make([]string, len(rows))
	lines := make([]string, len(rows))
	for i, r := range rows {
		nodes[i], seqs[i], times[i], tenants[i], lines[i] = r.Node, r.Seq, r.Time, r.Tenant, string(pending[i])
	}
	_, err = a.store.pool.Exec(ctx, `
		INSERT INTO audit_log (node, seq, time, tenant, line)
		SELECT * FROM unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::text[], $5::text[])`,
		nodes, seqs, times, tenants, lines)
	if err != nil {
		return a.store.fail(ctx, "audit sink", err)
	}
	return nil
}

// Close drops what was not synced; the store stays open.
func (a *AuditSink) Close() error {
	a.pending, a.rows = nil, nil
	return nil
}

// Tail returns node's last record line, or nil when it has none.
func (a *AuditSink) Tail(node string) ([]byte, error) {
	ctx, cancel, err := a.store.call(context.Background())
	if err != nil {
		return nil, fmt.Errorf("postgres: audit tail: %w", err)
	}
	defer cancel()
	var line string
	err = a.store.pool.QueryRow(ctx, "SELECT line FROM audit_log WHERE node = $1 ORDER BY seq DESC LIMIT 1", node).Scan(&line)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	} else if err != nil {
		return nil, a.store.fail(ctx, "audit tail", err)
	}
	return []byte(line), nil
}

// AuditLines calls fn with every record line in the table, node by node in
// sequence order (each chain in the order it was written). tenant, when not
// empty, restricts the lines to that tenant's records.
func (s *Store) AuditLines(ctx context.Context, tenant string, fn func(line []byte) error) error {
	if err := s.check(ctx); err != nil {
		return fmt.Errorf("postgres: audit lines: %w", err)
	}
	rows, err := s.pool.Query(ctx, "SELECT line FROM audit_log WHERE $1 = '' OR tenant = $1 ORDER BY node, seq", tenant)
	if err != nil {
		return s.fail(ctx, "audit lines", err)
	}
	defer rows.Close()
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return s.fail(ctx, "audit lines", err)
		}
		if err := fn([]byte(line)); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return s.fail(ctx, "audit lines", err)
	}
	return nil
}
