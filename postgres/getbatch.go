package postgres

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// selectSecret reads one secret: its arguments are tenant and key, its
// columns the ciphertext then timesColumns.
const selectSecret = `SELECT ciphertext, ` + timesColumns + `
		FROM secrets WHERE tenant = $1 AND key = $2`

// maxGetBatch bounds the reads one pipeline carries, so that one batch's
// results stay small and its leader returns soon.
const maxGetBatch = 64

// getBatcher groups concurrent GetSecret calls into pipelines: the reads
// of one batch go out in one write on one connection and come back in one
// read, instead of a round trip, two wake-ups of a PostgreSQL backend and
// four system calls each (most of a read's cost on both sides, by
// profile). It is leader-based, like a write-ahead log's group commit: a
// call that finds fewer than maxLeaders batches in flight leads, taking
// every read queued so far (its own included) into one batch; the others
// wait for a batch to answer them. A lone call therefore leads a batch of
// one, which is a plain query on its own goroutine: nothing is added at
// low load, and under load at most maxLeaders connections serve every
// read. A larger batch runs on a goroutine of its own (one hand-off per
// batch, shared by its reads), so that every caller may leave at its own
// deadline. A leader leads one batch only: when reads are still queued
// after it, the leadership passes to the first of them.
//
// Every read still runs on its own in the database, after its call began,
// so it sees every write committed before that, on any node.
type getBatcher struct {
	store      *Store
	maxLeaders int

	mu      sync.Mutex
	pending []*getCall
	leaders int // batches in flight or about to be
}

// getCall is one GetSecret waiting in a getBatcher.
type getCall struct {
	tenant, key string
	deadline    time.Time // its context's, or the call timeout's

	// wake is signalled when the call is answered or promoted. The
	// fields below it, up to found, are guarded by getBatcher.mu.
	wake      chan struct{}
	answered  bool // the result fields are set
	promoted  bool // taken off the queue to lead the next batch
	abandoned bool // its caller is gone while it was queued: skip it

	found      bool // the row exists (when err is nil)
	ciphertext []byte
	row        timesRow
	err        error // wrapped by Store.fail
}

// get reads tenant's key through the batcher and returns the answered
// call: found, or not, or err (for the caller, already wrapped by fail),
// which is EUNAVAILABLE when ctx ended while the call was queued.
// Every call, a leader's too, returns by ctx's deadline.
func (b *getBatcher) get(ctx context.Context, tenant, key string) *getCall {
	c := &getCall{tenant: tenant, key: key, wake: make(chan struct{}, 1)}
	if deadline, ok := ctx.Deadline(); ok {
		c.deadline = deadline
	} else {
		c.deadline = time.Now().Add(b.store.callTimeout)
	}
	b.mu.Lock()
	if b.leaders < b.maxLeaders {
		b.leaders++
		b.mu.Unlock()
		b.lead(ctx, c)
	} else {
		b.pending = append(b.pending, c)
		b.mu.Unlock()
	}
	for {
		b.mu.Lock()
		switch {
		case c.answered:
			b.mu.Unlock()
			return c
		case c.promoted:
			c.promoted = false
			b.mu.Unlock()
			b.lead(ctx, c)
			continue
		}
		b.mu.Unlock()
		select {
		case <-c.wake:
		case <-ctx.Done():
			b.mu.Lock()
			if !c.answered && !c.promoted {
				c.abandoned = true // queued: leaders skip it; in a batch: its answer is dropped
				b.mu.Unlock()
				return &getCall{err: b.store.fail(ctx, "get secret", ctx.Err())}
			}
			b.mu.Unlock()
		}
	}
}

// lead runs one batch: own, the leader's call, and the reads queued so
// far. A batch of one runs on the leader's goroutine, under its own
// context, as a plain query. A larger one answers other callers too, so it
// runs on a goroutine of its own until the latest of its calls' deadlines:
// each caller, the leader included, still waits only until its own (a
// caller with a short deadline must neither cut the others' reads short
// nor be held past it). When the batch is done, the leadership passes on.
func (b *getBatcher) lead(ctx context.Context, own *getCall) {
	batch := []*getCall{own}
	latest := own.deadline
	b.mu.Lock()
	for len(b.pending) > 0 && len(batch) < maxGetBatch {
		c := b.pending[0]
		b.pending[0] = nil
		b.pending = b.pending[1:]
		if !c.abandoned {
			batch = append(batch, c)
			if c.deadline.After(latest) {
				latest = c.deadline
			}
		}
	}
	b.mu.Unlock()

	if len(batch) == 1 {
		b.store.runGets(ctx, batch)
		b.finish(batch)
		return
	}
	bctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), latest)
	go func() {
		defer cancel()
		b.store.runGets(bctx, batch)
		b.finish(batch)
	}()
}

// finish answers the calls of a batch and hands the leadership on.
func (b *getBatcher) finish(batch []*getCall) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range batch {
		c.answered = true
		c.signal()
	}
	b.handOff()
}

// handOff makes the first live queued call the next leader, taking it off
// the queue, or, when none is queued, lets the leadership go. Called with
// b.mu held by a leader that is done.
func (b *getBatcher) handOff() {
	for len(b.pending) > 0 {
		c := b.pending[0]
		b.pending[0] = nil
		b.pending = b.pending[1:]
		if !c.abandoned {
			c.promoted = true
			c.signal()
			return
		}
	}
	b.pending = nil // drop the backing array's dead head
	b.leaders--
}

// signal wakes the call's goroutine; a signal already waiting is enough,
// since the state is in the fields. Called with getBatcher.mu held.
func (c *getCall) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// runGets reads batch, on one connection: a batch of one is a plain query,
// a larger one a pipeline of the same prepared statement. A failure that
// leaves the rest of the pipeline unread (the connection broke, a
// statement timed out and aborted the others) is the answer of every call
// not yet answered.
func (s *Store) runGets(ctx context.Context, batch []*getCall) {
	if len(batch) == 1 {
		c := batch[0]
		if err := c.scan(s.pool.QueryRow(ctx, selectSecret, c.tenant, c.key)); err != nil {
			c.err = s.fail(ctx, "get secret", err)
		}
		return
	}
	var pb pgx.Batch
	for _, c := range batch {
		pb.Queue(selectSecret, c.tenant, c.key)
	}
	results := s.pool.SendBatch(ctx, &pb)
	var failed error
	for _, c := range batch {
		if failed == nil {
			if err := c.scan(results.QueryRow()); err != nil {
				failed = s.fail(ctx, "get secret", err)
			}
		}
		c.err = failed
	}
	if err := results.Close(); err != nil && failed == nil {
		// Every row was read, but the pipeline did not end well: its
		// reads may not have run as they should.
		failed = s.fail(ctx, "get secret", err)
		for _, c := range batch {
			c.err = failed
		}
	}
}

// scan reads the call's row into it: found is false for a missing row,
// which is not an error.
func (c *getCall) scan(row pgx.Row) error {
	err := row.Scan(append([]any{&c.ciphertext}, c.row.dest()...)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	c.found = err == nil
	return err
}

// readLeaders is how many read batches may be in flight at once, of a
// pool of maxConns connections: a quarter, rounded up (4 of the default
// 16). Fewer leaders make larger batches, so cheaper reads under load, and
// leave connections to the writes; too few queue reads behind a stalled
// batch. Measured with 32 clients on 2 cores (docs/performance.md): CPU
// per read, server and database together, fell from about 100 µs to 60
// (2 leaders), 70 (4) and 85 (8).
func readLeaders(maxConns int32) int {
	return max(1, (int(maxConns)+3)/4)
}
