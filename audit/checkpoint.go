package audit

import (
	"context"
	"log/slog"
	"time"
)

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

// checkpointTimeout bounds each load and save of a checkpoint, and the
// read of the journal on Open.
const checkpointTimeout = 10 * time.Second

// maybeCheckpoint saves the head when the chain moved and the interval
// since the last checkpoint has passed, first syncing what a checkpoint
// must not claim beyond the disk; otherwise it arms the timer that wakes
// the writer goroutine when the interval ends. A leader (mayBlock false)
// never fsyncs here: a checkpoint that needs an fsync is left to the
// writer goroutine, so that a request never pays for it.
func (w *writer) maybeCheckpoint(mayBlock bool) {
	if w.ckQueue == nil || w.seq == w.ckSeq {
		return
	}
	wait := w.ckEvery - w.now().Sub(w.ckLast)
	needsSync := w.durability == NoSync || w.seq > w.syncedSeq
	if wait > 0 || (needsSync && !mayBlock) {
		if !w.ckArmed {
			w.ckArmed = true
			w.ckTimer.Reset(max(wait, 0))
		}
		return
	}
	if w.durability == NoSync {
		// NoSync records were never synced; a checkpoint must not claim
		// more than the disk holds.
		if err := w.sink.Sync(); err != nil {
			w.failed(err)
			return
		}
	}
	if w.seq > w.syncedSeq && w.syncPending() != nil {
		return
	}
	w.checkpoint()
}

// checkpoint hands the head to the checkpoint saver, replacing one it has
// not taken yet.
func (w *writer) checkpoint() {
	if w.ckQueue == nil || w.seq == w.ckSeq {
		return
	}
	c := Checkpoint{Node: w.nodeID, Seq: w.seq, Hash: hashSlice(w.head)}
	select {
	case <-w.ckQueue:
	default:
	}
	w.ckQueue <- c
	w.ckSeq, w.ckLast = w.seq, w.now()
}

// saveCheckpoints saves the checkpoints of queue in store, off the writer
// goroutine, so a slow store delays no record. It returns when queue is
// closed.
func saveCheckpoints(store CheckpointStore, queue <-chan Checkpoint, log *slog.Logger) {
	for c := range queue {
		ctx, cancel := context.WithTimeout(context.Background(), checkpointTimeout)
		if err := store.SaveCheckpoint(ctx, c.Node, c.Seq, c.Hash); err != nil {
			log.Warn("audit: save checkpoint", "node", c.Node, "seq", c.Seq, "err", err)
		}
		cancel()
	}
}
