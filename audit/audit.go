// Package audit keeps the audit trail: one JSON line per request or admin
// action, chained per node by hashes and sealed with an HMAC, so that an
// edit, a removal, an insertion, a reordering or a cut tail is detected by
// Verify. It never sees a secret value or a credential: neostore.AuditRecord
// has no field that could hold one.
//
// Records are written by leader-based group commit, as database WAL
// writers do. Callers of Audit encode their record and queue it; the first
// caller to find nobody writing becomes the leader: on its own goroutine it
// takes everything queued (its own record among it), assigns sequence
// numbers, chains and seals the lines in that order, writes them and syncs
// once for all of them, and releases their callers. Records that queued
// while it wrote are handed to the trail's writer goroutine, which writes
// them the same way until the queue is empty, so that no caller writes
// more than one batch of others' records. A lone record thus costs no
// hand-off between goroutines, and under load records still share one
// write and one fsync. Nothing waits for a batch to fill.
//
// A line reads
//
//	{"time":"2026-03-01T12:00:00.000000000Z","node":"n1","seq":42,"traceId":…,"op":"secret.get",
//	 "tenant":…,"key":…,"principal":{…},"status":200,"errorCode":…,"clientAddr":…,
//	 "userAgent":…,"durationNs":…,"prev":"<64 hex>","mac":"<64 hex>"}
//
// where seq counts per node from 1 across restarts and rotations, prev is
// the SHA-256 of the node's previous line (64 zeros for its first), and mac
// is HMAC-SHA256 under the audit key over the line's bytes without the mac
// member (everything before `,"mac":` followed by `}`).
package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/neostore/neostore-secrets"
)

// Where the parts of a trail live: the callers' side (Audit, the queue,
// leading a batch, the writer goroutine, Close) here; the chain state and
// what the holder of the write lock does with it in writer.go; the stall
// watchdog in watchdog.go; durability modes in durability.go; resuming a
// chain and writing the journal back in recovery.go; checkpoints in
// checkpoint.go; errors in errors.go.

// Defaults of Config.
const (
	DefaultQueueSize          = 4096
	DefaultCheckpointInterval = time.Second
	DefaultStallTimeout       = 10 * time.Second
)

// Config configures Open. NodeID, Key and Sink are required; the zero value
// of every other field is its documented default.
type Config struct {
	// NodeID names this node's chain. Every node writing audit records
	// needs its own, stable across restarts.
	NodeID string
	// Key is the HMAC-SHA256 key, at least 32 bytes, derived by the caller
	// from the master key. Without it nobody can forge a chain that verifies.
	Key []byte
	// Sink receives the record lines. The Trail closes it on Close.
	Sink Sink
	// Durability is when Audit returns; default GroupSync.
	Durability Durability
	// FailOpen makes Audit return nil when a record cannot be recorded
	// (queue full, sink failing, trail closed), counting it in Dropped,
	// instead of returning EUNAVAILABLE. Default false: fail closed, so the
	// caller refuses the request. Cancellation of the caller's context is
	// still returned as an error.
	FailOpen bool
	// QueueSize bounds the records waiting for the writer; when it is full
	// Audit refuses at once. Default DefaultQueueSize.
	QueueSize int
	// Checkpoints, when set, receives the chain's head after a successful
	// sync, at most once per CheckpointInterval, and on Close. Records
	// written after the last saved checkpoint are the window in which a cut
	// tail goes unnoticed by Verify.
	Checkpoints CheckpointStore
	// CheckpointInterval is the least time between two checkpoints; default
	// DefaultCheckpointInterval. Negative saves after every sync (tests).
	CheckpointInterval time.Duration
	// StallTimeout is how long the writer may spend on one batch or one
	// background fsync (a hung disk, a sink that never returns) before the
	// callers waiting for it are refused with EUNAVAILABLE, new records are
	// refused at once and the trail reports unhealthy; default
	// DefaultStallTimeout. It bounds every Audit call without a timer per
	// call, except the leader's whose own sink call hangs: that one
	// returns when the sink does.
	StallTimeout time.Duration
	// Journal, the store's neostore.Store.ChangeJournal, when set makes
	// the trail a neostore.ChangeAuditor under WriteSync: the record of a
	// change is not fsync'd before AuditChange returns, because the store
	// commits a copy with the change (neostore.Change); the trail fsyncs it
	// within ReadSyncDelay like a read's. On Open, journaled lines the sink lost (an OS crash before
	// that fsync) are written back. It needs a Tailer sink that refuses
	// every record after a failed Sync (FileSink), and the store that
	// journals must drop entries as checkpoints are saved.
	Journal neostore.ChangeJournal
	// Now is the trail's clock: it stamps records whose Time is zero, and
	// times the checkpoint interval and the stall watchdog; default
	// time.Now.
	Now func() time.Time
	// Logger receives sink failures and chain resumption warnings; default
	// discards them. It never receives record contents.
	Logger *slog.Logger
}

// Trail is a neostore.Auditor that writes a hash-chained, HMAC-sealed
// record per call. It is safe for concurrent use.
type Trail struct {
	// Set by Open, read-only after.
	nodeID     string
	durability Durability
	failOpen   bool
	now        func() time.Time
	journal    neostore.ChangeJournal

	// Callers queue and lead under mu held for reading, so that Close
	// (holding it for writing) knows no leader is left.
	mu     sync.RWMutex
	closed bool

	// The queue. qmu guards pending and leading; leading is set while a
	// leader or the writer goroutine owns the queue: only the owner takes
	// records from it, and it hands the queue back (leading false) only
	// when it finds the queue empty.
	qmu       sync.Mutex
	pending   []*request
	leading   bool
	queueSize int
	// wlock, a channel so that a leader can give up waiting for it, is
	// held by whoever touches the chain state in w: a leader, or the
	// writer goroutine.
	wlock chan struct{}
	kick  chan struct{} // hands the queue to the writer goroutine
	quit  chan struct{}
	done  chan struct{} // closed when the writer, the watchdog and the checkpoint saver ended

	// Safe for concurrent use by themselves.
	dropped atomic.Uint64
	reqs    sync.Pool // of *request
	stamp   stamper
	head    publishedHead
	dog     *watchdog

	// w is touched only under wlock after Open, except through its atomic
	// unhealthy flag.
	w *writer
}

// request is one record on its way to the writer, or a barrier: a wait
// for an earlier record to be fsync'd.
type request struct {
	ts      []byte
	body    []byte               // kept for the next record when the request is pooled
	sync    bool                 // under WriteSync: the caller waits for the fsync
	entry   *neostore.AuditEntry // filled in when written, for the store to journal
	barrier *neostore.AuditEntry // not a record: released once this entry is fsync'd
	done    chan error           // buffered: the writer never blocks on an abandoned caller
	tsb     [len(timeLayout)]byte
}

var _ neostore.ChangeAuditor = (*Trail)(nil)

// Open starts a trail over cfg.Sink. The chain continues where it ended:
// from the last record of cfg.NodeID the sink holds (when it is a Tailer),
// or from the saved checkpoint when that is further on or the sink cannot
// tell. Open refuses to extend a chain whose last record does not verify
// with cfg.Key (a different master key, or an altered trail). When Open
// fails, the caller still owns cfg.Sink.
func Open(cfg Config) (*Trail, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	t := &Trail{
		nodeID:     cfg.NodeID,
		durability: cfg.Durability,
		failOpen:   cfg.FailOpen,
		now:        cfg.Now,
		journal:    cfg.Journal,
		queueSize:  cfg.QueueSize,
		wlock:      make(chan struct{}, 1),
		kick:       make(chan struct{}, 1),
		quit:       make(chan struct{}),
		done:       make(chan struct{}),
		dog:        newWatchdog(cfg.StallTimeout, cfg.Now, cfg.Logger, cfg.NodeID),
	}
	t.reqs.New = func() any { return &request{done: make(chan error, 1)} }
	w := &writer{
		sink:       cfg.Sink,
		durability: cfg.Durability,
		node:       quoteJSON(cfg.NodeID),
		nodeID:     cfg.NodeID,
		now:        cfg.Now,
		log:        cfg.Logger,
		sealer:     newSealer(cfg.Key),
		dog:        t.dog,
		published:  &t.head,
		ckEvery:    cfg.CheckpointInterval,
	}
	if err := w.resume(cfg.Checkpoints, cfg.Journal); err != nil {
		return nil, err
	}
	w.setHead()
	w.newTimers()
	w.ckSeq = w.seq
	w.syncedSeq, w.syncedHead = w.seq, w.head
	t.w = w

	var wg sync.WaitGroup
	if cfg.Checkpoints != nil {
		queue := make(chan Checkpoint, 1)
		w.ckQueue = queue
		wg.Go(func() { saveCheckpoints(cfg.Checkpoints, queue, cfg.Logger) })
	}
	wg.Go(t.run)
	wg.Go(func() { t.dog.run(t.quit) })
	go func() { wg.Wait(); close(t.done) }()
	return t, nil
}

// check returns what makes cfg unusable.
func (cfg *Config) check() error {
	switch {
	case cfg.NodeID == "":
		return errors.New("audit: no node id")
	case len(cfg.Key) < 32:
		return errors.New("audit: the audit key must be at least 32 bytes")
	case cfg.Sink == nil:
		return errors.New("audit: no sink")
	case cfg.Durability < GroupSync || cfg.Durability > WriteSync:
		return fmt.Errorf("audit: unknown durability %d", cfg.Durability)
	}
	if _, ok := cfg.Sink.(Tailer); cfg.Journal != nil && !ok {
		return errors.New("audit: a journal needs a sink that can read its tail")
	}
	return nil
}

// setDefaults fills in the documented default of every zero field.
func (cfg *Config) setDefaults() {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.CheckpointInterval == 0 {
		cfg.CheckpointInterval = DefaultCheckpointInterval
	}
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = DefaultStallTimeout
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = DefaultQueueSize
	}
}

// Audit appends r to the trail. It returns once the record is as durable as
// the configured Durability promises, or an EUNAVAILABLE error when it
// cannot be recorded (with FailOpen: nil, and Dropped counts it), or when
// ctx ends first; a record whose caller gave up may still be written. Audit
// does not keep r.
func (t *Trail) Audit(ctx context.Context, r *neostore.AuditRecord) error {
	return t.audit(ctx, r, nil)
}

// AuditChange appends r like Audit. With a Journal under WriteSync it
// returns once r's line is written, with the entry the store journals;
// the caller then calls Durable before it answers. Otherwise it returns a
// nil entry once r is as durable as Audit makes it.
func (t *Trail) AuditChange(ctx context.Context, r *neostore.AuditRecord) (*neostore.AuditEntry, error) {
	if t.journal == nil || t.durability != WriteSync {
		return nil, t.audit(ctx, r, nil)
	}
	e := &neostore.AuditEntry{}
	if err := t.audit(ctx, r, e); err != nil || e.Line == nil {
		return nil, err // refused, or dropped under FailOpen
	}
	return e, nil
}

// Durable returns once e's record is durable: at once when the store
// committed it, otherwise after the trail fsync'd it. It returns
// EUNAVAILABLE (or nil under FailOpen) when the record was lost to a
// failed fsync.
func (t *Trail) Durable(ctx context.Context, e *neostore.AuditEntry) error {
	if e == nil || e.IsCommitted() {
		return nil
	}
	req := t.reqs.Get().(*request)
	req.barrier = e
	return t.wait(ctx, req)
}

func (t *Trail) audit(ctx context.Context, r *neostore.AuditRecord, e *neostore.AuditEntry) error {
	if err := ctx.Err(); err != nil {
		return &unavailableError{err}
	}
	req := t.reqs.Get().(*request)
	req.body = appendBody(req.body[:0], r) // the pooled request's buffer
	req.entry = e
	req.sync = e == nil && !isRead(r.Op)
	ts := r.Time
	if ts.IsZero() {
		ts = t.now()
	}
	req.ts = t.stamp.append(req.tsb[:0], ts)
	return t.wait(ctx, req)
}

// wait queues req and waits until it is released: when this caller is the
// first to find nobody writing, it writes the queue itself (lead).
func (t *Trail) wait(ctx context.Context, req *request) error {
	stall := t.dog.stallC()
	t.mu.RLock()
	lead, err := t.enqueue(req)
	if err != nil {
		t.mu.RUnlock()
		req.entry, req.barrier = nil, nil
		t.reqs.Put(req)
		return t.refuse(err)
	}
	if lead {
		gaveUp := t.lead(ctx, stall, t.durability == GroupSync || req.sync)
		t.mu.RUnlock()
		switch {
		case gaveUp == errStalled:
			return t.refuse(errStalled) // req stays with the writer goroutine
		case gaveUp != nil:
			return &unavailableError{gaveUp} // req stays with the writer goroutine
		}
		err = <-req.done // released by this caller's own batch
	} else {
		t.mu.RUnlock()
		select {
		case err = <-req.done:
		case <-ctx.Done():
			return &unavailableError{ctx.Err()} // req stays with the writer
		case <-stall:
			return t.refuse(errStalled) // req stays with the writer
		}
	}
	req.entry, req.barrier = nil, nil
	t.reqs.Put(req)
	if err != nil {
		return t.refuse(err)
	}
	return nil
}

// enqueue queues req; lead reports that the caller now owns the queue.
// The caller holds mu for reading.
func (t *Trail) enqueue(req *request) (lead bool, _ error) {
	switch {
	case t.closed:
		return false, errClosed
	case t.dog.isStalled():
		// The sink has held a write or an fsync too long: a record
		// written now might never be durable.
		return false, errStalled
	}
	t.qmu.Lock()
	defer t.qmu.Unlock()
	if len(t.pending) >= t.queueSize {
		return false, errQueueFull
	}
	t.pending = append(t.pending, req)
	lead = !t.leading
	t.leading = true
	return lead, nil
}

// lead writes one batch, everything queued, on the caller's goroutine, and
// hands what queued meanwhile to the writer goroutine. The write lock is
// usually free; while the writer goroutine holds it (an fsync of reads'
// records, a checkpoint) the leader waits as a follower would, giving up
// when ctx ends or the trail stalls: it then returns ctx's error or
// errStalled, the caller's record is left queued and the writer goroutine
// owns the queue. A leader whose batch will be fsync'd (yield), or that
// writes under load (recent batches of more than one record), first lets
// the goroutines about to queue records do so, as the writer goroutine
// does: otherwise under load every other batch would be a leader's lone
// record, with a write and maybe an fsync of its own. A lone client's
// leader (reads under WriteSync, batches of one) does not yield.
func (t *Trail) lead(ctx context.Context, stall <-chan struct{}, yield bool) error {
	select {
	case t.wlock <- struct{}{}:
	default:
		select {
		case t.wlock <- struct{}{}:
		case <-ctx.Done():
			t.handOff()
			return ctx.Err()
		case <-stall:
			t.handOff()
			return errStalled
		}
	}
	if yield || t.w.load > 1 {
		runtime.Gosched()
	}
	t.w.writeBatch(t.take())
	<-t.wlock
	t.handOff()
	return nil
}

// take returns everything queued and empties the queue; the caller holds
// wlock and owns the queue.
func (t *Trail) take() []*request {
	t.qmu.Lock()
	defer t.qmu.Unlock()
	batch := t.pending
	t.pending = t.w.spare[:0]
	t.w.spare = nil
	return batch
}

// handOff ends a leader's ownership of the queue: given back when the
// queue is empty, else passed to the writer goroutine.
func (t *Trail) handOff() {
	t.qmu.Lock()
	if len(t.pending) == 0 {
		t.leading = false
		t.qmu.Unlock()
		return
	}
	t.qmu.Unlock()
	t.kick <- struct{}{} // never blocks: only an owner kicks, and the writer goroutine takes each kick before it owns the queue
}

// run is the writer goroutine: it writes the queues leaders hand it, fsyncs
// read records within ReadSyncDelay, saves due checkpoints and, once the
// trail closes, writes what is left.
func (t *Trail) run() {
	w := t.w
	if w.ckQueue != nil {
		defer close(w.ckQueue)
	}
	for {
		select {
		case <-t.kick:
			t.writeQueued()
		case <-w.readSync.C:
			t.syncReads()
		case <-w.ckTimer.C:
			t.wlock <- struct{}{}
			w.ckArmed = false
			w.maybeCheckpoint(true)
			<-t.wlock
		case <-t.quit:
			// Close holds mu: no leader is left, so this goroutine owns
			// whatever is queued.
			t.wlock <- struct{}{}
			w.drain(t.take)
			<-t.wlock
			return
		}
	}
}

// syncReads fsyncs the read records written under WriteSync. With a
// BackgroundSyncer sink the fsync runs without the write lock, so that
// leaders go on writing meanwhile: a request that arrives during it does
// not wait for it (an fsync every ReadSyncDelay was most of a lone
// client's p99).
func (t *Trail) syncReads() {
	w := t.w
	t.wlock <- struct{}{}
	defer func() { <-t.wlock }()
	w.readSyncArmed = false
	bs, ok := w.sink.(BackgroundSyncer)
	if !ok || w.seq == w.syncedSeq {
		w.dog.busy()
		w.syncPending()
		w.dog.idle()
		w.maybeCheckpoint(true)
		return
	}
	seq, head, epoch := w.seq, w.head, w.epoch
	syncWritten := bs.SyncWritten()
	<-t.wlock
	w.dog.syncBusy()
	err := syncWritten()
	w.dog.syncIdle()
	t.wlock <- struct{}{}
	switch {
	case epoch != w.epoch:
		// A failed sync of a leader already rolled the chain back.
	case err != nil:
		w.rollback(err)
	case seq > w.syncedSeq:
		w.syncedSeq, w.syncedHead = seq, head
	}
	if w.seq > w.syncedSeq && !w.readSyncArmed {
		// Read records written during the fsync wait for the next one.
		w.readSyncArmed = true
		w.readSync.Reset(ReadSyncDelay)
	}
	w.maybeCheckpoint(true)
}

// writeQueued writes batches until the queue is empty, then gives it back.
func (t *Trail) writeQueued() {
	t.wlock <- struct{}{}
	defer func() { <-t.wlock }()
	for {
		t.qmu.Lock()
		if len(t.pending) == 0 {
			t.leading = false
			t.qmu.Unlock()
			return
		}
		t.qmu.Unlock()
		// Under load: let the goroutines about to queue records do so, so
		// that one write (and one fsync) takes them all; this costs no
		// fixed delay when nobody else is running. A lone leader never
		// gets here.
		runtime.Gosched()
		t.w.writeBatch(t.take())
	}
}

// Healthy returns nil while the trail accepts records: it is open and its
// last batch reached the sink. A failing trail recovers (and turns healthy)
// with the first batch the sink accepts again. For readiness probes.
func (t *Trail) Healthy() error {
	t.mu.RLock()
	closed := t.closed
	t.mu.RUnlock()
	switch {
	case closed:
		return errClosed
	case t.w.unhealthy.Load():
		return errors.New("audit: the sink refused the last records")
	case t.dog.isStalled():
		return errStalled
	}
	return nil
}

// Dropped returns how many records FailOpen has let go unrecorded.
func (t *Trail) Dropped() uint64 { return t.dropped.Load() }

// Head returns the sequence number and line hash of the last record
// written; seq is 0 before the chain's first record.
func (t *Trail) Head() (seq uint64, hash []byte) {
	seq, h := t.head.get()
	return seq, hashSlice(h)
}

// Close writes what is queued, syncs, saves a last checkpoint and closes
// the sink. Audit calls after Close are refused. It is safe to call twice.
func (t *Trail) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		<-t.done
		return nil
	}
	t.closed = true
	t.mu.Unlock()
	close(t.quit)
	<-t.done
	return errors.Join(t.w.closeErr, t.w.sink.Close())
}
