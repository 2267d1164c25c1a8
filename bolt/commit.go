package bolt

import (
	"context"
	"errors"
	"fmt"
	"sync"

	bbolt "go.etcd.io/bbolt"

	"github.com/neostore/neostore-secrets"
)

// Group commit, led by the writers themselves (as a database's WAL writer
// is). bbolt's own DB.Batch waits MaxBatchDelay (10 ms by default) for
// company before it commits, so a lone writer pays 10 ms for every write. A
// committer goroutine with no delay costs a lone writer two wake-ups (queue
// to the committer, result back), which on two cores is a third of a PUT.
// Here the first writer to find no commit running leads: it runs its own
// transaction, commit and fsync on its own goroutine. Writers that arrive
// while a commit runs queue up; when the commit is done its leader wakes the
// first of them, which commits the whole queue in one transaction and one
// fsync, and so on. A lone write costs one fsync and no hand-off; N
// concurrent writes share about one fsync.

// maxBatch bounds how many writes share one transaction, so one commit
// cannot grow without limit under a flood; the rest wait for the next.
const maxBatch = 1024

var errClosed = errors.New("bolt: store is closed")

// committer is the state of the group commit, guarded by mu.
type committer struct {
	mu      sync.Mutex
	idle    sync.Cond // signalled when leading turns false; L is &mu
	leading bool      // a writer is committing; newcomers queue
	queue   []*write  // writes waiting for the next leader, in order
	closed  bool      // Close has begun: no write is accepted
}

// write is one caller's change.
type write struct {
	ctx  context.Context
	fn   func(tx *bbolt.Tx) error
	err  error     // its result, set before wake receives false
	wake chan bool // true: lead the queue; false: err is the result
}

// panicked carries a write function's panic to its own caller, as bbolt's
// Batch does: the leader's goroutine must not die of another's panic and
// leave the queue without a leader.
type panicked struct{ reason any }

func (p panicked) Error() string { return fmt.Sprintf("bolt: write function panicked: %v", p.reason) }

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
// and must be idempotent; a panic in fn is raised again in the caller.
func (s *Store) batch(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	w := &write{ctx: ctx, fn: fn}
	c := &s.commit
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errClosed
	}
	if !c.leading {
		// No commit runs: commit alone, here and now.
		c.leading = true
		c.mu.Unlock()
		one := [1]*write{w}
		s.lead(one[:], w)
	} else {
		w.wake = make(chan bool, 1)
		c.queue = append(c.queue, w)
		c.mu.Unlock()
		// Once queued, the write is waited for even if ctx ends: the
		// caller must not be told "failed" about a write that may commit.
		if lead := <-w.wake; lead {
			s.lead(s.takeQueue(), w)
		}
	}
	if p, ok := w.err.(panicked); ok {
		panic(p.reason)
	}
	if w.err != nil {
		return fmt.Errorf("commit: %w", w.err)
	}
	return nil
}

// takeQueue removes and returns up to maxBatch of the queued writes; the
// first is the caller's own (it was woken to lead).
func (s *Store) takeQueue() []*write {
	c := &s.commit
	c.mu.Lock()
	defer c.mu.Unlock()
	n := min(len(c.queue), maxBatch)
	batch := make([]*write, n)
	copy(batch, c.queue)
	rest := copy(c.queue, c.queue[n:])
	clear(c.queue[rest:]) // drop the references the leader now holds
	c.queue = c.queue[:rest]
	return batch
}

// lead commits batch, then passes the lead to the first queued write (or
// ends it), then gives every other write of batch its result. self is the
// leader's own write, which is not woken.
func (s *Store) lead(batch []*write, self *write) {
	s.apply(batch)
	c := &s.commit
	var next *write
	c.mu.Lock()
	if len(c.queue) > 0 {
		next = c.queue[0]
	} else {
		c.leading = false
		c.idle.Broadcast()
	}
	c.mu.Unlock()
	// The next commit starts before this batch's writers are woken: their
	// fsync is done, the queue's has not begun.
	if next != nil {
		next.wake <- true
	}
	for _, w := range batch {
		if w != self {
			w.wake <- false
		}
	}
	s.releaseMapped() // on the leader's time, after its batch is answered
}

// apply commits batch in one transaction and sets each write's err. A write
// whose context ended while it was queued is not run. If a write's function
// fails, the transaction is rolled back, the others are committed without
// it, and it runs alone after them, so that one bad write cannot fail the
// others and its error is its own (bbolt's Batch does the same). A failed
// commit fails every write of the transaction.
func (s *Store) apply(batch []*write) {
	if len(batch) > 1 || batch[0].ctx.Err() != nil {
		// A copy without the ended writes: the loop below removes writes,
		// and lead still answers every write of batch.
		live := make([]*write, 0, len(batch))
		for _, w := range batch {
			if err := w.ctx.Err(); err != nil {
				w.err = err
			} else {
				live = append(live, w)
			}
		}
		batch = live
	}
	var alone []*write
	for len(batch) > 0 {
		bad := -1
		err := s.db.Update(func(tx *bbolt.Tx) error {
			for i, w := range batch {
				if err := call(tx, w.fn); err != nil {
					bad = i
					return err
				}
			}
			return nil
		})
		if bad < 0 || len(batch) == 1 {
			for _, w := range batch {
				w.err = err
			}
			break
		}
		alone = append(alone, batch[bad])
		batch = append(batch[:bad], batch[bad+1:]...)
	}
	for _, w := range alone {
		w.err = s.db.Update(func(tx *bbolt.Tx) error { return call(tx, w.fn) })
	}
}

// call runs fn, turning a panic into a panicked error.
func call(tx *bbolt.Tx, fn func(tx *bbolt.Tx) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = panicked{p}
		}
	}()
	return fn(tx)
}

// closeCommitter refuses new writes and waits until the queued ones are
// committed.
func (s *Store) closeCommitter() {
	c := &s.commit
	c.mu.Lock()
	c.closed = true
	for c.leading {
		c.idle.Wait()
	}
	c.mu.Unlock()
}
