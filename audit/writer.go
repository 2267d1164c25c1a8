package audit

import (
	"bytes"
	"crypto/sha256"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/neostore/neostore-secrets"
)

// writer is what the holder of the trail's write lock (a leader, or the
// writer goroutine) alone touches once Open returns: the chain state (the
// last sequence number and line hash written and synced, the epochs of
// rollbacks), the buffers records are sealed into, and the schedules of
// read fsyncs and checkpoints. Other goroutines see the chain only through
// published (Trail.Head) and unhealthy (Trail.Healthy).
type writer struct {
	sink       Sink
	durability Durability
	node       []byte // NodeID as a JSON string
	nodeID     string
	now        func() time.Time
	log        *slog.Logger
	sealer     *sealer
	dog        *watchdog
	published  *publishedHead
	unhealthy  atomic.Bool // failing, for Healthy on other goroutines

	seq        uint64 // last record written
	head       [sha256.Size]byte
	syncedSeq  uint64 // last record synced (NoSync: written)
	syncedHead [sha256.Size]byte
	epoch      uint64   // counts rollbacks
	epochEnds  []uint64 // by epoch: the last synced seq when it was rolled back
	buf        []byte
	batchBuf   []byte     // the lines of a batch, for a LinesWriter
	failing    bool       // the last batch failed; for logging changes only
	spare      []*request // the queue's next backing array
	load       int        // recent batch sizes, halved towards each new one: above 1 under load

	// Both timers wake the writer goroutine; they are reset under the
	// write lock only while not armed.
	readSync      *time.Timer
	readSyncArmed bool // read records wait for their fsync

	ckEvery time.Duration
	ckQueue chan Checkpoint // nil without a CheckpointStore
	ckSeq   uint64
	ckLast  time.Time
	ckTimer *time.Timer
	ckArmed bool // a checkpoint waits for its interval, or for the writer goroutine's fsync

	closeErr error // read by Close once the writer ended
}

// publishedHead is the chain's head as Head reports it: set by the writer
// before it releases the callers of the records it covers.
type publishedHead struct {
	mu   sync.Mutex
	seq  uint64
	hash [sha256.Size]byte
}

func (h *publishedHead) set(seq uint64, hash [sha256.Size]byte) {
	h.mu.Lock()
	h.seq, h.hash = seq, hash
	h.mu.Unlock()
}

func (h *publishedHead) get() (uint64, [sha256.Size]byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seq, h.hash
}

func (w *writer) setHead() { w.published.set(w.seq, w.head) }

func hashSlice(h [sha256.Size]byte) []byte { return h[:] } // a copy

// newTimers makes the stopped timers of read fsyncs and checkpoints.
func (w *writer) newTimers() {
	w.readSync = time.NewTimer(time.Hour)
	w.readSync.Stop()
	w.ckTimer = time.NewTimer(time.Hour)
	w.ckTimer.Stop()
}

// writeBatch commits batch, gives its backing array back for the queue's
// next use, and schedules what the batch left to do: the fsync of read
// records under WriteSync, a checkpoint.
func (w *writer) writeBatch(batch []*request) {
	w.load = (w.load + len(batch)) / 2
	if len(batch) > 0 {
		w.dog.busy()
		w.commit(batch)
		w.dog.idle()
	}
	clear(batch)
	w.spare = batch[:0]
	if w.durability == WriteSync && w.seq > w.syncedSeq && !w.readSyncArmed {
		w.readSyncArmed = true
		w.readSync.Reset(ReadSyncDelay)
	}
	w.maybeCheckpoint(false)
}

// drain writes what is still queued once the trail closes, syncs it and
// saves the last checkpoint; a failure is kept for Close.
func (w *writer) drain(take func() []*request) {
	for {
		batch := take()
		if len(batch) == 0 {
			w.spare = batch
			break
		}
		w.commit(batch)
		clear(batch)
		w.spare = batch[:0]
	}
	if w.durability == NoSync && w.seq > w.ckSeq {
		if err := w.sink.Sync(); err != nil {
			w.closeErr = err
			return
		}
	}
	if w.seq > w.syncedSeq {
		if err := w.syncPending(); err != nil {
			w.closeErr = err
			return
		}
	}
	w.checkpoint()
}

// commit writes batch in order and releases its callers as Durability says.
// Sequence numbers, prev hashes and macs are assigned here, under the
// write lock, in the order the lines are written.
func (w *writer) commit(batch []*request) {
	written := 0
	var werr error
	if lw, ok := w.sink.(LinesWriter); ok && w.durability != EverySync && len(batch) > 1 {
		written, werr = w.writeLines(lw, batch)
	} else {
		var released bool
		if written, werr, released = w.writeEach(batch); released {
			return
		}
	}
	w.finish(batch, written, werr)
}

// writeLines seals the batch into one buffer and writes it at once. On
// failure nothing was kept, and the chain stays where it was.
func (w *writer) writeLines(lw LinesWriter, batch []*request) (int, error) {
	seq, head := w.seq, w.head
	buf := w.batchBuf[:0]
	for _, req := range batch {
		if req.barrier != nil {
			continue
		}
		line := w.sealer.seal(w.buf[:0], req.ts, w.node, seq+1, req.body, &head) // seal MACs all of its dst
		w.buf = line
		buf = append(buf, line...)
		seq++
		head = sha256.Sum256(line[:len(line)-1])
		w.fill(req.entry, seq, line)
	}
	w.batchBuf = buf
	if len(buf) == 0 {
		return len(batch), nil // barriers only
	}
	if err := lw.WriteLines(buf); err != nil {
		return 0, err
	}
	w.seq, w.head = seq, head
	return len(batch), nil
}

// writeEach writes the batch one record at a time; under EverySync it also
// syncs and releases each record. released reports that a failed sync
// already released every caller.
func (w *writer) writeEach(batch []*request) (written int, werr error, released bool) {
	for _, req := range batch {
		if req.barrier != nil {
			written++
			if w.durability == EverySync {
				req.done <- w.lost(req.barrier) // every record before it is synced
			}
			continue
		}
		line := w.sealer.seal(w.buf[:0], req.ts, w.node, w.seq+1, req.body, &w.head)
		w.buf = line
		if werr = w.sink.Write(line); werr != nil {
			break // the sink kept nothing of it, so the chain does not advance
		}
		w.seq++
		w.head = sha256.Sum256(line[:len(line)-1])
		w.fill(req.entry, w.seq, line)
		written++
		if w.durability == EverySync {
			if err := w.sink.Sync(); err != nil {
				w.rollback(err)
				release(batch[written-1:], err)
				return written, nil, true
			}
			w.syncedSeq, w.syncedHead = w.seq, w.head
			w.setHead()
			req.done <- nil
		}
	}
	return written, werr, false
}

// lost returns errLost when e's line is not durable after the syncs so far:
// a failed fsync rolled it back, or it is not synced yet.
func (w *writer) lost(e *neostore.AuditEntry) error {
	last := w.syncedSeq
	if e.Epoch < w.epoch {
		last = w.epochEnds[e.Epoch]
	}
	if e.Seq > last {
		return errLost
	}
	return nil
}

// fill tells a change's entry where its line went.
func (w *writer) fill(e *neostore.AuditEntry, seq uint64, line []byte) {
	if e == nil {
		return
	}
	e.Node, e.Seq, e.Epoch = w.nodeID, seq, w.epoch
	e.Line = bytes.Clone(line[:len(line)-1])
}

// finish syncs as Durability says and releases the callers of the written
// records, then fails those of the records that could not be written.
func (w *writer) finish(batch []*request, written int, werr error) {
	switch w.durability {
	case GroupSync:
		if written > 0 {
			if err := w.sink.Sync(); err != nil {
				w.rollback(err)
				release(batch, err)
				return
			}
		}
		fallthrough
	case NoSync:
		w.syncedSeq, w.syncedHead = w.seq, w.head
		w.setHead() // before release: Head covers every record whose Audit returned
		release(batch[:written], nil)
	case WriteSync:
		needSync := false
		for _, req := range batch[:written] {
			needSync = needSync || req.sync || (req.barrier != nil && req.barrier.Seq > w.syncedSeq)
		}
		if needSync && w.seq > w.syncedSeq {
			if err := w.sink.Sync(); err != nil {
				w.rollback(err)
				release(batch, err)
				return
			}
			w.syncedSeq, w.syncedHead = w.seq, w.head
		}
		w.setHead()
		for _, req := range batch[:written] {
			var err error
			if req.barrier != nil {
				err = w.lost(req.barrier)
			}
			req.done <- err
		}
	}
	if werr != nil {
		w.failed(werr)
		release(batch[written:], werr)
		return
	}
	if w.failing {
		w.log.Info("audit: the sink accepts records again", "node", w.nodeID)
		w.failing = false
		w.unhealthy.Store(false)
	}
}

// syncPending fsyncs read records written under WriteSync and not yet
// synced. Their callers were already released; on failure the chain rolls
// back as after any failed sync (a FileSink then refuses every later
// record, so no sequence number is used twice).
func (w *writer) syncPending() error {
	if w.seq == w.syncedSeq {
		return nil
	}
	if err := w.sink.Sync(); err != nil {
		w.rollback(err)
		return err
	}
	w.syncedSeq, w.syncedHead = w.seq, w.head
	return nil
}

// rollback returns the chain to its last synced record after a failed sync.
// By the Sink contract the unsynced records are then either gone (a
// transactional sink) or the sink refuses everything from now on (FileSink,
// since after a failed fsync the kernel may have dropped pages that a later
// fsync would not report); either way no seq is used twice in the sink.
func (w *writer) rollback(err error) {
	w.seq, w.head = w.syncedSeq, w.syncedHead
	w.epochEnds = append(w.epochEnds, w.syncedSeq)
	w.epoch++
	w.setHead()
	w.failed(err)
}

// failed logs the start of a run of sink failures.
func (w *writer) failed(err error) {
	if !w.failing {
		w.log.Error("audit: the sink refused records", "node", w.nodeID, "err", err)
		w.failing = true
		w.unhealthy.Store(true)
	}
}

func release(batch []*request, err error) {
	for _, req := range batch {
		req.done <- err
	}
}
