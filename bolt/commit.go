package bolt

import (
	"context"
	"errors"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/neostore/neostore-secrets"
)

// Group commit. bbolt's own DB.Batch waits MaxBatchDelay (10 ms by default)
// for company before it commits, so a lone writer pays 10 ms for every write;
// a shorter delay stops batches from forming under load. The committer below
// has no delay: one goroutine commits whatever writes are queued, and the
// writes that arrive while that commit's fsync runs form the next batch.
// A lone write costs one fsync; N concurrent writes share about one.

// maxBatch bounds how many writes share one transaction, so one commit
// cannot grow without limit under a flood.
const maxBatch = 1024

var errClosed = errors.New("bolt: store is closed")

// write is one queued change; done receives its result.
type write struct {
	fn   func(tx *bbolt.Tx) error
	done chan error
}

// commitLoop runs until stop is closed, then fails what is still queued.
func (s *Store) commitLoop() {
	defer close(s.loopDone)
	batch := make([]write, 0, maxBatch)
	for {
		select {
		case <-s.stop:
			for {
				select {
				case w := <-s.writes:
					w.done <- errClosed
				default:
					return
				}
			}
		case w := <-s.writes:
			batch = append(batch[:0], w)
		fill:
			for len(batch) < maxBatch {
				select {
				case w := <-s.writes:
					batch = append(batch, w)
				default:
					break fill
				}
			}
			s.commit(batch)
		}
	}
}

// commit applies batch in one transaction. If any write fails, the
// transaction is rolled back and each write is retried alone, so one bad
// write cannot fail the others (as bbolt's Batch does).
func (s *Store) commit(batch []write) {
	var failed error
	err := s.db.Update(func(tx *bbolt.Tx) error {
		for _, w := range batch {
			if err := w.fn(tx); err != nil {
				failed = err
				return err
			}
		}
		return nil
	})
	if err == nil || (failed == nil && len(batch) == 1) {
		for _, w := range batch {
			w.done <- err
		}
		return
	}
	if len(batch) == 1 {
		batch[0].done <- err
		return
	}
	for _, w := range batch {
		w.done <- s.db.Update(w.fn)
	}
}

// batchChange is batch for a change that commits c's records: the same
// transaction journals c's audit entry, which is marked committed once that
// transaction is durable.
func (s *Store) batchChange(ctx context.Context, c neostore.Change, fn func(tx *bbolt.Tx) error) error {
	if !c.Records() {
		return s.batch(ctx, fn)
	}
	err := s.batch(ctx, func(tx *bbolt.Tx) error {
		if err := journalAuditEntry(tx, c.Audit); err != nil {
			return err
		}
		return fn(tx)
	})
	if err == nil {
		c.Audit.Committed()
	}
	return err
}

// batch runs fn in a transaction that concurrent writers share, and returns
// once that transaction is committed and fsync'd. fn may run more than once
// and must be idempotent.
func (s *Store) batch(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	w := write{fn: fn, done: make(chan error, 1)}
	// The read lock orders every send before Close: once Close holds the
	// lock, no write can be queued that commitLoop would not drain.
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return errClosed
	}
	select {
	case s.writes <- w:
		s.closeMu.RUnlock()
	case <-ctx.Done():
		s.closeMu.RUnlock()
		return ctx.Err()
	}
	// Once queued, the write is waited for even if ctx ends: the caller
	// must not be told "failed" about a write that may commit.
	if err := <-w.done; err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
