package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/neostore/neostore-secrets"
)

// The audit bucket holds the wrapped audit key under "key" and each node's
// checkpoint under "cp/<node>": 8 bytes of big-endian seq, then the hash.
// It is created on first write, so files of schema 1 need no migration.
var (
	bucketAudit       = []byte("audit")
	auditKeyName      = []byte("key")
	auditCheckpointPx = []byte("cp/")
)

// The audit journal holds, per node, the record lines of changes committed
// with the changes themselves (neostore.Change), under 8 bytes of
// big-endian seq, until a checkpoint says the trail holds them durably.
var bucketAuditJournal = []byte("auditjournal")

// journalAuditEntry stores e in tx.
func journalAuditEntry(tx *bbolt.Tx, e *neostore.AuditEntry) error {
	j, err := tx.CreateBucketIfNotExists(bucketAuditJournal)
	if err != nil {
		return err
	}
	node, err := j.CreateBucketIfNotExists([]byte(e.Node))
	if err != nil {
		return err
	}
	node.FillPercent = 1 // keys only grow: full pages, fewer of them per commit
	return node.Put(binary.BigEndian.AppendUint64(nil, e.Seq), e.Line)
}

// ChangeJournal returns s: the embedded store journals the audit entry of
// a change in the change's own transaction.
func (s *Store) ChangeJournal() neostore.ChangeJournal { return s }

// JournaledLines returns node's journaled record lines with a seq above
// after, in order (neostore.ChangeJournal).
func (s *Store) JournaledLines(ctx context.Context, node string, after uint64) ([][]byte, error) {
	tx, err := s.begin(ctx, false)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	var lines [][]byte
	if j := tx.Bucket(bucketAuditJournal); j != nil {
		if b := j.Bucket([]byte(node)); b != nil {
			c := b.Cursor()
			for k, v := c.Seek(binary.BigEndian.AppendUint64(nil, after+1)); k != nil; k, v = c.Next() {
				lines = append(lines, bytes.Clone(v))
			}
		}
	}
	return lines, nil
}

// trimAuditJournal drops node's journaled lines up to seq. The bucket is
// replaced by one holding the few lines after seq: deleting key by key
// through a cursor was a quarter of a write load's CPU, as bbolt's First
// walks every emptied leaf again.
func trimAuditJournal(tx *bbolt.Tx, node string, seq uint64) error {
	j := tx.Bucket(bucketAuditJournal)
	if j == nil {
		return nil
	}
	name := []byte(node)
	b := j.Bucket(name)
	if b == nil {
		return nil
	}
	var keep [][2][]byte
	c := b.Cursor()
	for k, v := c.Seek(binary.BigEndian.AppendUint64(nil, seq+1)); k != nil; k, v = c.Next() {
		keep = append(keep, [2][]byte{bytes.Clone(k), bytes.Clone(v)})
	}
	if err := j.DeleteBucket(name); err != nil {
		return err
	}
	if len(keep) == 0 {
		return nil
	}
	b, err := j.CreateBucket(name)
	if err != nil {
		return err
	}
	for _, kv := range keep {
		if err := b.Put(kv[0], kv[1]); err != nil {
			return err
		}
	}
	return nil
}

// GetAuditKey returns the wrapped audit key, or ENOTFOUND.
func (s *Store) GetAuditKey(ctx context.Context) ([]byte, error) {
	tx, err := s.begin(ctx, false)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	if b := tx.Bucket(bucketAudit); b != nil {
		if v := b.Get(auditKeyName); v != nil {
			return bytes.Clone(v), nil
		}
	}
	return nil, neostore.ErrAuditKeyNotFound
}

// CreateAuditKey stores wrapped unless an audit key exists, and returns the
// stored one.
func (s *Store) CreateAuditKey(ctx context.Context, wrapped []byte) ([]byte, error) {
	var stored []byte
	err := s.batch(ctx, func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketAudit)
		if err != nil {
			return err
		}
		if v := b.Get(auditKeyName); v != nil {
			stored = bytes.Clone(v)
			return nil
		}
		stored = bytes.Clone(wrapped)
		return b.Put(auditKeyName, bytes.Clone(wrapped))
	})
	if err != nil {
		return nil, fmt.Errorf("bolt: create audit key: %w", err)
	}
	return stored, nil
}

// SaveAuditCheckpoint records node's checkpoint unless a later one is
// stored, and drops the journaled lines it covers.
func (s *Store) SaveAuditCheckpoint(ctx context.Context, node string, seq uint64, hash []byte) error {
	rec := binary.BigEndian.AppendUint64(nil, seq)
	rec = append(rec, hash...)
	name := append(bytes.Clone(auditCheckpointPx), node...)
	err := s.batch(ctx, func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketAudit)
		if err != nil {
			return err
		}
		if v := b.Get(name); len(v) >= 8 && binary.BigEndian.Uint64(v) > seq {
			return nil
		}
		if err := trimAuditJournal(tx, node, seq); err != nil {
			return err
		}
		return b.Put(name, rec)
	})
	if err != nil {
		return fmt.Errorf("bolt: save audit checkpoint: %w", err)
	}
	return nil
}

// LoadAuditCheckpoint returns node's checkpoint.
func (s *Store) LoadAuditCheckpoint(ctx context.Context, node string) (uint64, []byte, bool, error) {
	tx, err := s.begin(ctx, false)
	if err != nil {
		return 0, nil, false, err
	}
	defer func() { _ = tx.Rollback() }()
	b := tx.Bucket(bucketAudit)
	if b == nil {
		return 0, nil, false, nil
	}
	v := b.Get(append(bytes.Clone(auditCheckpointPx), node...))
	if v == nil {
		return 0, nil, false, nil
	}
	if len(v) < 8 {
		return 0, nil, false, neostore.Errorf(neostore.EINTERNAL, "Corrupt audit checkpoint.")
	}
	return binary.BigEndian.Uint64(v), bytes.Clone(v[8:]), true, nil
}

// ListAuditCheckpoints returns every node's checkpoint, by node.
func (s *Store) ListAuditCheckpoints(ctx context.Context) ([]neostore.AuditCheckpoint, error) {
	tx, err := s.begin(ctx, false)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	cps := []neostore.AuditCheckpoint{}
	b := tx.Bucket(bucketAudit)
	if b == nil {
		return cps, nil
	}
	c := b.Cursor()
	for k, v := c.Seek(auditCheckpointPx); k != nil && bytes.HasPrefix(k, auditCheckpointPx); k, v = c.Next() {
		if len(v) < 8 {
			return nil, neostore.Errorf(neostore.EINTERNAL, "Corrupt audit checkpoint.")
		}
		cps = append(cps, neostore.AuditCheckpoint{Node: string(k[len(auditCheckpointPx):]), Seq: binary.BigEndian.Uint64(v), Hash: bytes.Clone(v[8:])})
	}
	return cps, nil
}
