// Package audit keeps the audit trail: one JSON line per request or admin
// action, chained per node by hashes and sealed with an HMAC, so that an
// edit, a removal, an insertion, a reordering or a cut tail is detected by
// Verify. It never sees a secret value or a credential: neostore.AuditRecord
// has no field that could hold one.
//
// A Trail has one writer goroutine. Callers of Audit encode their record,
// queue it and wait; the writer takes everything queued, assigns sequence
// numbers, chains and seals the lines in that order, writes them and syncs
// once for all of them (group commit), then releases the callers. Nothing
// waits for a batch to fill: a lone record is written at once, and a batch
// forms only from records that arrive while the previous sync runs.
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
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/neostore/neostore-secrets"
)

// Durability says how durable a record is when Audit returns.
type Durability int

const (
	// GroupSync, the default, returns once the record is fsync'd; the records
	// of concurrent callers share one write and one fsync. A crash loses no
	// record whose Audit returned.
	GroupSync Durability = iota
	// EverySync fsyncs after each record. Same promise as GroupSync, at one
	// fsync per record; for sinks or disks where batching is not wanted.
	EverySync
	// NoSync returns once the record is handed to the operating system. A
	// process crash loses nothing; an OS crash or power loss loses what the
	// OS had not yet written back (on Linux typically up to 30 s), except
	// that the sink is synced before every checkpoint is saved.
	NoSync
	// WriteSync returns once a record of a change (anything but a read:
	// secret.put, secret.delete, API-key and key operations) is fsync'd,
	// like GroupSync, and once a record of a read is handed to the
	// operating system; read records are fsync'd with the next change's
	// batch or within ReadSyncDelay, whichever comes first. A process crash
	// loses nothing; an OS crash or power loss can lose the records of the
	// reads of the last ReadSyncDelay, never the record of a change. Reads
	// then cost no fsync wait, which is most of a read's latency. With a
	// Config.Journal, a change's record is made durable by the store's
	// commit instead of an fsync of the sink (AuditChange, Durable).
	WriteSync
)

// ReadSyncDelay bounds how long a read's record may stay unsynced under
// WriteSync.
const ReadSyncDelay = 10 * time.Millisecond

// isRead reports whether op only reads: under WriteSync its record is not
// waited for until fsync'd.
func isRead(op string) bool {
	switch op {
	case neostore.OpSecretGet, neostore.OpSecretList, neostore.OpAPIKeyList, neostore.OpUnknownRoute:
		return true
	}
	return false
}

// String returns the name ParseDurability reads.
func (d Durability) String() string {
	switch d {
	case GroupSync:
		return "group"
	case EverySync:
		return "every"
	case NoSync:
		return "none"
	case WriteSync:
		return "writes"
	}
	return fmt.Sprintf("Durability(%d)", int(d))
}

// ParseDurability reads "group", "every", "none" or "writes" (see Durability).
func ParseDurability(s string) (Durability, error) {
	for _, d := range []Durability{GroupSync, EverySync, NoSync, WriteSync} {
		if s == d.String() {
			return d, nil
		}
	}
	return 0, fmt.Errorf("audit: unknown durability %q (want group, every, none or writes)", s)
}

// CheckpointStore keeps, per node, how far its chain has reached, apart from
// the trail itself, so that Verify can tell a cut tail from a quiet night.
// The stores implement it.
type CheckpointStore interface {
	// SaveCheckpoint records that node's chain reached seq, whose line hashes
	// to hash (SHA-256).
	SaveCheckpoint(ctx context.Context, node string, seq uint64, hash []byte) error
	// LoadCheckpoint returns the last checkpoint saved for node; found is
	// false when there is none.
	LoadCheckpoint(ctx context.Context, node string) (seq uint64, hash []byte, found bool, err error)
}

// Checkpoint is a point a node's chain is known to have reached.
type Checkpoint struct {
	Node string
	Seq  uint64
	Hash []byte // SHA-256 of the line with sequence number Seq
}

// Defaults of Config.
const (
	DefaultQueueSize          = 4096
	DefaultCheckpointInterval = time.Second
	DefaultStallTimeout       = 10 * time.Second
	checkpointTimeout         = 10 * time.Second
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
	// StallTimeout is how long the writer may spend on one batch (a hung
	// disk, a sink that never returns) before the callers waiting for it
	// are refused with EUNAVAILABLE and the trail reports unhealthy;
	// default DefaultStallTimeout. It bounds every Audit call without a
	// timer per call.
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
	// Now stamps records whose Time is zero; default time.Now.
	Now func() time.Time
	// Logger receives sink failures and chain resumption warnings; default
	// discards them. It never receives record contents.
	Logger *slog.Logger
}

// Trail is a neostore.Auditor that writes a hash-chained, HMAC-sealed
// record per call. It is safe for concurrent use.
type Trail struct {
	sink       Sink
	node       []byte // NodeID as a JSON string
	nodeID     string
	durability Durability
	failOpen   bool
	now        func() time.Time
	log        *slog.Logger
	ckStore    CheckpointStore
	ckEvery    time.Duration
	journal    neostore.ChangeJournal

	mu     sync.RWMutex // held for reading while sending on queue
	closed bool
	queue  chan *request
	quit   chan struct{}
	done   chan struct{} // closed when the writer and checkpoint saver ended

	dropped atomic.Uint64
	reqs    sync.Pool // of *request
	stamp   stamper

	// A watchdog closes *stall once the writer has been busy with one batch
	// for stallAfter; waiting callers then give up. The writer puts a fresh
	// channel in place when it moves again.
	stallAfter time.Duration
	busySince  atomic.Int64 // UnixNano the writer took its batch; 0 while idle
	stallMu    sync.Mutex
	stall      atomic.Pointer[chan struct{}]
	stalled    atomic.Bool

	headMu   sync.Mutex
	headSeq  uint64
	headHash [sha256.Size]byte

	// Owned by the writer goroutine.
	sealer     *sealer
	seq        uint64 // last record written
	head       [sha256.Size]byte
	syncedSeq  uint64 // last record synced (NoSync: written)
	syncedHead [sha256.Size]byte
	epoch      uint64   // counts rollbacks
	epochEnds  []uint64 // by epoch: the last synced seq when it was rolled back
	buf        []byte
	batchBuf   []byte      // the lines of a batch, for a LinesWriter
	failing    bool        // the last batch failed; for logging changes only
	unhealthy  atomic.Bool // failing, for Healthy on other goroutines
	ckSeq      uint64
	ckLast     time.Time
	ckQueue    chan Checkpoint
	closeErr   error
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
	switch {
	case cfg.NodeID == "":
		return nil, errors.New("audit: no node id")
	case len(cfg.Key) < 32:
		return nil, errors.New("audit: the audit key must be at least 32 bytes")
	case cfg.Sink == nil:
		return nil, errors.New("audit: no sink")
	case cfg.Durability < GroupSync || cfg.Durability > WriteSync:
		return nil, fmt.Errorf("audit: unknown durability %d", cfg.Durability)
	}
	if _, ok := cfg.Sink.(Tailer); cfg.Journal != nil && !ok {
		return nil, errors.New("audit: a journal needs a sink that can read its tail")
	}
	t := &Trail{
		sink:       cfg.Sink,
		node:       quoteJSON(cfg.NodeID),
		nodeID:     cfg.NodeID,
		durability: cfg.Durability,
		failOpen:   cfg.FailOpen,
		now:        cfg.Now,
		log:        cfg.Logger,
		ckStore:    cfg.Checkpoints,
		ckEvery:    cfg.CheckpointInterval,
		journal:    cfg.Journal,
		quit:       make(chan struct{}),
		done:       make(chan struct{}),
		sealer:     newSealer(cfg.Key),
	}
	if t.now == nil {
		t.now = time.Now
	}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	if t.ckEvery == 0 {
		t.ckEvery = DefaultCheckpointInterval
	}
	t.stallAfter = cfg.StallTimeout
	if t.stallAfter <= 0 {
		t.stallAfter = DefaultStallTimeout
	}
	stall := make(chan struct{})
	t.stall.Store(&stall)
	size := cfg.QueueSize
	if size <= 0 {
		size = DefaultQueueSize
	}
	t.queue = make(chan *request, size)
	t.reqs.New = func() any { return &request{done: make(chan error, 1)} }
	if err := t.resume(); err != nil {
		return nil, err
	}
	t.setHead()
	t.ckSeq = t.seq
	t.syncedSeq, t.syncedHead = t.seq, t.head

	var wg sync.WaitGroup
	if t.ckStore != nil {
		t.ckQueue = make(chan Checkpoint, 1)
		wg.Go(t.saveCheckpoints)
	}
	wg.Go(t.run)
	wg.Go(t.watch)
	go func() { wg.Wait(); close(t.done) }()
	return t, nil
}

// resume sets t.seq and t.head from the sink's tail and the checkpoint.
func (t *Trail) resume() error {
	var (
		tailSeq   uint64
		tailHash  [sha256.Size]byte
		tailFound bool
		tailer    bool
	)
	if tl, ok := t.sink.(Tailer); ok {
		tailer = true
		line, err := tl.Tail(t.nodeID)
		if err != nil {
			return fmt.Errorf("audit: read the end of the trail: %w", err)
		}
		if line != nil {
			l, err := ParseLine(line)
			if err != nil || !t.sealer.verify(line) {
				return errors.New("audit: the last record of this node does not verify with the audit key " +
					"(another master key, or an altered trail); run audit verify, and move the file aside to start a new chain")
			}
			tailSeq, tailHash, tailFound = l.Seq, sha256.Sum256(line), true
		}
	}
	var (
		ckSeq   uint64
		ckHash  [sha256.Size]byte
		ckFound bool
	)
	if t.ckStore != nil {
		ctx, cancel := context.WithTimeout(context.Background(), checkpointTimeout)
		seq, hash, found, err := t.ckStore.LoadCheckpoint(ctx, t.nodeID)
		cancel()
		if err != nil {
			return fmt.Errorf("audit: load checkpoint: %w", err)
		}
		if found && seq > 0 {
			if len(hash) != sha256.Size {
				return errors.New("audit: the saved checkpoint has no SHA-256 hash")
			}
			ckSeq, ckFound = seq, true
			copy(ckHash[:], hash)
		}
	}
	switch {
	case tailFound && ckFound && ckSeq > tailSeq:
		// Records the server once wrote are gone from the sink. Continuing
		// from the checkpoint leaves the gap where it happened, for Verify
		// to report.
		t.log.Error("audit: the trail ends before its checkpoint; records are missing",
			"node", t.nodeID, "trailSeq", tailSeq, "checkpointSeq", ckSeq)
		t.seq, t.head = ckSeq, ckHash
	case tailFound && ckFound && ckSeq == tailSeq && ckHash != tailHash:
		t.log.Error("audit: the last record differs from the checkpoint; the trail was rewritten",
			"node", t.nodeID, "seq", tailSeq)
		t.seq, t.head = tailSeq, tailHash
	case tailFound:
		t.seq, t.head = tailSeq, tailHash
	case ckFound:
		if tailer {
			t.log.Error("audit: the trail holds no record of this node but a checkpoint exists; continuing from it",
				"node", t.nodeID, "checkpointSeq", ckSeq)
		}
		t.seq, t.head = ckSeq, ckHash
	}
	if t.journal != nil {
		return t.restoreJournal()
	}
	return nil
}

// restoreJournal writes back, after the chain's end, the lines of changes
// that the store journaled and the sink does not hold: records whose fsync
// had not happened when the machine went down. The records of reads written
// just before them may be lost (WriteSync does not journal reads); a
// journaled line is then written back after the gap, which is logged here
// and reported by Verify as removed records.
func (t *Trail) restoreJournal() error {
	ctx, cancel := context.WithTimeout(context.Background(), checkpointTimeout)
	defer cancel()
	lines, err := t.journal.JournaledLines(ctx, t.nodeID, t.seq)
	if err != nil {
		return fmt.Errorf("audit: read the journal: %w", err)
	}
	if len(lines) == 0 {
		return nil
	}
	for _, line := range lines {
		l, err := ParseLine(line)
		if err != nil || l.Node != t.nodeID || l.Seq <= t.seq || !t.sealer.verify(line) {
			return errors.New("audit: a record in the store's journal does not verify with the audit key; refusing to continue the chain")
		}
		if l.Seq != t.seq+1 || l.Prev != hex.EncodeToString(t.head[:]) {
			t.log.Error("audit: records are missing before a journaled change record; writing it back after the gap",
				"node", t.nodeID, "missingFrom", t.seq+1, "missingTo", l.Seq-1)
		}
		if err := t.sink.Write(append(bytes.Clone(line), '\n')); err != nil {
			return fmt.Errorf("audit: write back journaled records: %w", err)
		}
		t.seq, t.head = l.Seq, sha256.Sum256(line)
	}
	if err := t.sink.Sync(); err != nil {
		return fmt.Errorf("audit: write back journaled records: %w", err)
	}
	t.log.Warn("audit: wrote back change records the trail had lost, from the store's journal",
		"node", t.nodeID, "records", len(lines), "lastSeq", t.seq)
	return nil
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

// wait queues req and waits for the writer to release it.
func (t *Trail) wait(ctx context.Context, req *request) error {
	stall := *t.stall.Load()
	if err := t.enqueue(req); err != nil {
		req.entry, req.barrier = nil, nil
		t.reqs.Put(req)
		return t.refuse(err)
	}
	var err error
	select {
	case err = <-req.done:
	case <-ctx.Done():
		return &unavailableError{ctx.Err()} // req stays with the writer
	case <-stall:
		return t.refuse(errStalled) // req stays with the writer
	}
	req.entry, req.barrier = nil, nil
	t.reqs.Put(req)
	if err != nil {
		return t.refuse(err)
	}
	return nil
}

var (
	errClosed    = errors.New("audit: trail closed")
	errQueueFull = errors.New("audit: queue full")
	errStalled   = errors.New("audit: the sink has not returned for too long")
	errLost      = errors.New("audit: the record was lost to a failed fsync")
)

func (t *Trail) enqueue(req *request) error {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closed {
		return errClosed
	}
	select {
	case t.queue <- req:
		return nil
	default:
		return errQueueFull
	}
}

func (t *Trail) refuse(err error) error {
	if t.failOpen {
		t.dropped.Add(1)
		return nil
	}
	return &unavailableError{err}
}

// errUnavailable is what a client is told; the cause stays in the chain for logs.
var errUnavailable = &neostore.Error{Code: neostore.EUNAVAILABLE, Message: "The audit trail cannot record this request; try again later."}

// unavailableError is an EUNAVAILABLE *neostore.Error (for errors.As) that
// also wraps its cause (for errors.Is and logs).
type unavailableError struct{ cause error }

func (e *unavailableError) Error() string   { return "audit: unavailable: " + e.cause.Error() }
func (e *unavailableError) Unwrap() []error { return []error{errUnavailable, e.cause} }

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
	case t.unhealthy.Load():
		return errors.New("audit: the sink refused the last records")
	case t.stalled.Load():
		return errStalled
	}
	return nil
}

// watch is the stall watchdog: it refuses the callers of a batch that the
// sink has held for longer than stallAfter.
func (t *Trail) watch() {
	tick := time.NewTicker(t.stallAfter / 4)
	defer tick.Stop()
	for {
		select {
		case <-t.quit:
			return
		case now := <-tick.C:
			since := t.busySince.Load()
			if since == 0 || now.UnixNano()-since < int64(t.stallAfter) {
				continue
			}
			t.stallMu.Lock()
			if !t.stalled.Load() {
				t.stalled.Store(true)
				close(*t.stall.Load())
				t.log.Error("audit: the sink has held a batch too long; refusing its requests", "node", t.nodeID, "after", t.stallAfter)
			}
			t.stallMu.Unlock()
		}
	}
}

// busy marks the writer busy with a batch (at > 0) or idle (0). Going
// idle after a stall lets callers wait again.
func (t *Trail) busy(at int64) {
	t.busySince.Store(at)
	if at == 0 && t.stalled.Load() {
		t.stallMu.Lock()
		stall := make(chan struct{})
		t.stall.Store(&stall)
		t.stalled.Store(false)
		t.stallMu.Unlock()
		t.log.Info("audit: the sink returned after a stall", "node", t.nodeID)
	}
}

// Dropped returns how many records FailOpen has let go unrecorded.
func (t *Trail) Dropped() uint64 { return t.dropped.Load() }

// Head returns the sequence number and line hash of the last record
// written; seq is 0 before the chain's first record.
func (t *Trail) Head() (seq uint64, hash []byte) {
	t.headMu.Lock()
	defer t.headMu.Unlock()
	return t.headSeq, hashSlice(t.headHash)
}

func hashSlice(h [sha256.Size]byte) []byte { return h[:] } // a copy

func (t *Trail) setHead() {
	t.headMu.Lock()
	t.headSeq, t.headHash = t.seq, t.head
	t.headMu.Unlock()
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
	return errors.Join(t.closeErr, t.sink.Close())
}

// run is the writer goroutine.
func (t *Trail) run() {
	if t.ckQueue != nil {
		defer close(t.ckQueue)
	}
	batch := make([]*request, 0, cap(t.queue))
	var (
		timer     *time.Timer
		timerC    <-chan time.Time
		readSync  = time.NewTimer(time.Hour)
		readSyncC <-chan time.Time // armed while read records wait for their fsync
	)
	readSync.Stop()
	for {
		select {
		case req := <-t.queue:
			// Let the goroutines that are about to queue records do so,
			// so that one write (and one fsync) takes them all; this costs
			// no fixed delay when nobody else is running.
			runtime.Gosched()
			batch = t.gather(append(batch[:0], req))
			t.busy(time.Now().UnixNano())
			t.commit(batch)
			t.busy(0)
			clear(batch)
			if t.durability == WriteSync && t.seq > t.syncedSeq && readSyncC == nil {
				readSync.Reset(ReadSyncDelay)
				readSyncC = readSync.C
			}
		case <-readSyncC:
			readSyncC = nil
			t.busy(time.Now().UnixNano())
			t.syncPending()
			t.busy(0)
		case <-timerC:
			timerC = nil
		case <-t.quit:
			for {
				batch = t.gather(batch[:0])
				if len(batch) == 0 {
					break
				}
				t.commit(batch)
				clear(batch)
			}
			if t.durability == NoSync && t.seq > t.ckSeq {
				if err := t.sink.Sync(); err != nil {
					t.closeErr = err
					return
				}
			}
			if t.seq > t.syncedSeq {
				if err := t.syncPending(); err != nil {
					t.closeErr = err
					return
				}
			}
			t.checkpoint()
			return
		}
		if t.ckQueue == nil || t.seq == t.ckSeq {
			continue
		}
		if wait := t.ckEvery - time.Since(t.ckLast); wait > 0 {
			if timerC == nil {
				if timer == nil {
					timer = time.NewTimer(wait)
				} else {
					timer.Reset(wait)
				}
				timerC = timer.C
			}
			continue
		}
		if t.durability == NoSync {
			// NoSync records were never synced; a checkpoint must not claim
			// more than the disk holds.
			if err := t.sink.Sync(); err != nil {
				t.failed(err)
				continue
			}
		}
		if t.seq > t.syncedSeq && t.syncPending() != nil {
			continue
		}
		t.checkpoint()
	}
}

// gather appends to batch everything queued, without waiting.
func (t *Trail) gather(batch []*request) []*request {
	for len(batch) < cap(batch) {
		select {
		case req := <-t.queue:
			batch = append(batch, req)
		default:
			return batch
		}
	}
	return batch
}

// commit writes batch in order and releases its callers as Durability says.
// Sequence numbers, prev hashes and macs are assigned here, on the one
// writer goroutine, in the order the lines are written.
func (t *Trail) commit(batch []*request) {
	written := 0
	var werr error
	if lw, ok := t.sink.(LinesWriter); ok && t.durability != EverySync && len(batch) > 1 {
		written, werr = t.writeLines(lw, batch)
	} else {
		var released bool
		if written, werr, released = t.writeEach(batch); released {
			return
		}
	}
	t.finish(batch, written, werr)
}

// LinesWriter is implemented by sinks that take the lines of several whole
// records in one call (one system call for a batch instead of one per
// record). Like Write, it keeps all of p or nothing.
type LinesWriter interface {
	WriteLines(p []byte) error
}

// writeLines seals the batch into one buffer and writes it at once. On
// failure nothing was kept, and the chain stays where it was.
func (t *Trail) writeLines(lw LinesWriter, batch []*request) (int, error) {
	seq, head := t.seq, t.head
	buf := t.batchBuf[:0]
	for _, req := range batch {
		if req.barrier != nil {
			continue
		}
		line := t.sealer.seal(t.buf[:0], req.ts, t.node, seq+1, req.body, &head) // seal MACs all of its dst
		t.buf = line
		buf = append(buf, line...)
		seq++
		head = sha256.Sum256(line[:len(line)-1])
		t.fill(req.entry, seq, line)
	}
	t.batchBuf = buf
	if len(buf) == 0 {
		return len(batch), nil // barriers only
	}
	if err := lw.WriteLines(buf); err != nil {
		return 0, err
	}
	t.seq, t.head = seq, head
	return len(batch), nil
}

// writeEach writes the batch one record at a time; under EverySync it also
// syncs and releases each record. released reports that a failed sync
// already released every caller.
func (t *Trail) writeEach(batch []*request) (written int, werr error, released bool) {
	for _, req := range batch {
		if req.barrier != nil {
			written++
			if t.durability == EverySync {
				req.done <- t.lost(req.barrier) // every record before it is synced
			}
			continue
		}
		line := t.sealer.seal(t.buf[:0], req.ts, t.node, t.seq+1, req.body, &t.head)
		t.buf = line
		if werr = t.sink.Write(line); werr != nil {
			break // the sink kept nothing of it, so the chain does not advance
		}
		t.seq++
		t.head = sha256.Sum256(line[:len(line)-1])
		t.fill(req.entry, t.seq, line)
		written++
		if t.durability == EverySync {
			if err := t.sink.Sync(); err != nil {
				t.rollback(err)
				release(batch[written-1:], err)
				return written, nil, true
			}
			t.syncedSeq, t.syncedHead = t.seq, t.head
			t.setHead()
			req.done <- nil
		}
	}
	return written, werr, false
}

// lost returns errLost when e's line is not durable after the syncs so far:
// a failed fsync rolled it back, or it is not synced yet.
func (t *Trail) lost(e *neostore.AuditEntry) error {
	last := t.syncedSeq
	if e.Epoch < t.epoch {
		last = t.epochEnds[e.Epoch]
	}
	if e.Seq > last {
		return errLost
	}
	return nil
}

// fill tells a change's entry where its line went.
func (t *Trail) fill(e *neostore.AuditEntry, seq uint64, line []byte) {
	if e == nil {
		return
	}
	e.Node, e.Seq, e.Epoch = t.nodeID, seq, t.epoch
	e.Line = bytes.Clone(line[:len(line)-1])
}

// finish syncs as Durability says and releases the callers of the written
// records, then fails those of the records that could not be written.
func (t *Trail) finish(batch []*request, written int, werr error) {
	switch t.durability {
	case GroupSync:
		if written > 0 {
			if err := t.sink.Sync(); err != nil {
				t.rollback(err)
				release(batch, err)
				return
			}
		}
		fallthrough
	case NoSync:
		t.syncedSeq, t.syncedHead = t.seq, t.head
		t.setHead() // before release: Head covers every record whose Audit returned
		release(batch[:written], nil)
	case WriteSync:
		needSync := false
		for _, req := range batch[:written] {
			needSync = needSync || req.sync || (req.barrier != nil && req.barrier.Seq > t.syncedSeq)
		}
		if needSync && t.seq > t.syncedSeq {
			if err := t.sink.Sync(); err != nil {
				t.rollback(err)
				release(batch, err)
				return
			}
			t.syncedSeq, t.syncedHead = t.seq, t.head
		}
		t.setHead()
		for _, req := range batch[:written] {
			var err error
			if req.barrier != nil {
				err = t.lost(req.barrier)
			}
			req.done <- err
		}
	}
	if werr != nil {
		t.failed(werr)
		release(batch[written:], werr)
		return
	}
	if t.failing {
		t.log.Info("audit: the sink accepts records again", "node", t.nodeID)
		t.failing = false
		t.unhealthy.Store(false)
	}
}

// syncPending fsyncs read records written under WriteSync and not yet
// synced. Their callers were already released; on failure the chain rolls
// back as after any failed sync (a FileSink then refuses every later
// record, so no sequence number is used twice).
func (t *Trail) syncPending() error {
	if t.seq == t.syncedSeq {
		return nil
	}
	if err := t.sink.Sync(); err != nil {
		t.rollback(err)
		return err
	}
	t.syncedSeq, t.syncedHead = t.seq, t.head
	return nil
}

// rollback returns the chain to its last synced record after a failed sync.
// By the Sink contract the unsynced records are then either gone (a
// transactional sink) or the sink refuses everything from now on (FileSink,
// since after a failed fsync the kernel may have dropped pages that a later
// fsync would not report); either way no seq is used twice in the sink.
func (t *Trail) rollback(err error) {
	t.seq, t.head = t.syncedSeq, t.syncedHead
	t.epochEnds = append(t.epochEnds, t.syncedSeq)
	t.epoch++
	t.setHead()
	t.failed(err)
}

// failed logs the start of a run of sink failures.
func (t *Trail) failed(err error) {
	if !t.failing {
		t.log.Error("audit: the sink refused records", "node", t.nodeID, "err", err)
		t.failing = true
		t.unhealthy.Store(true)
	}
}

func release(batch []*request, err error) {
	for _, req := range batch {
		req.done <- err
	}
}

// checkpoint hands the head to the checkpoint saver, replacing one it has
// not taken yet.
func (t *Trail) checkpoint() {
	if t.ckQueue == nil || t.seq == t.ckSeq {
		return
	}
	c := Checkpoint{Node: t.nodeID, Seq: t.seq, Hash: hashSlice(t.head)}
	select {
	case <-t.ckQueue:
	default:
	}
	t.ckQueue <- c
	t.ckSeq, t.ckLast = t.seq, time.Now()
}

// saveCheckpoints saves checkpoints off the writer goroutine, so a slow
// store delays no record.
func (t *Trail) saveCheckpoints() {
	for c := range t.ckQueue {
		ctx, cancel := context.WithTimeout(context.Background(), checkpointTimeout)
		if err := t.ckStore.SaveCheckpoint(ctx, c.Node, c.Seq, c.Hash); err != nil {
			t.log.Warn("audit: save checkpoint", "node", c.Node, "seq", c.Seq, "err", err)
		}
		cancel()
	}
}
