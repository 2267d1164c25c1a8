package audit

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// watchdog refuses the callers of a batch that the sink has held for too
// long (a hung disk, a sink that never returns): callers wait on its stall
// channel beside their own, and it closes that channel once the writer (a
// leader or the writer goroutine) has been busy with one batch, or a
// background fsync with its records, for after. It bounds every waiting
// Audit call without a timer per call. Both mark themselves busy and idle;
// once neither is busy after a stall, a fresh channel is put in place, so
// callers wait again.
type watchdog struct {
	after  time.Duration
	now    func() time.Time
	log    *slog.Logger
	nodeID string

	busySince atomic.Int64 // UnixNano the writer took its batch; 0 while idle
	syncSince atomic.Int64 // UnixNano a background fsync started; 0 while none runs
	mu        sync.Mutex   // serializes closing and replacing stall
	stall     atomic.Pointer[chan struct{}]
	stalled   atomic.Bool
}

func newWatchdog(after time.Duration, now func() time.Time, log *slog.Logger, nodeID string) *watchdog {
	d := &watchdog{after: after, now: now, log: log, nodeID: nodeID}
	stall := make(chan struct{})
	d.stall.Store(&stall)
	return d
}

// stallC returns the channel that is closed when the current batch stalls.
// A caller takes it before it queues its record.
func (d *watchdog) stallC() <-chan struct{} { return *d.stall.Load() }

// isStalled reports whether the writer is stalled now, for Healthy.
func (d *watchdog) isStalled() bool { return d.stalled.Load() }

// run checks the writer four times per after, until quit is closed.
func (d *watchdog) run(quit <-chan struct{}) {
	tick := time.NewTicker(d.after / 4)
	defer tick.Stop()
	for {
		select {
		case <-quit:
			return
		case <-tick.C:
			since := d.busySince.Load()
			if s := d.syncSince.Load(); s != 0 && (since == 0 || s < since) {
				since = s
			}
			if since == 0 || d.now().UnixNano()-since < int64(d.after) {
				continue
			}
			d.mu.Lock()
			if !d.stalled.Load() {
				d.stalled.Store(true)
				close(*d.stall.Load())
				d.log.Error("audit: the sink has held a batch too long; refusing its requests", "node", d.nodeID, "after", d.after)
			}
			d.mu.Unlock()
		}
	}
}

// busy marks the writer busy with a batch from now on.
func (d *watchdog) busy() { d.busySince.Store(d.now().UnixNano()) }

// idle marks the writer idle; after a stall, callers may wait again.
func (d *watchdog) idle() {
	d.busySince.Store(0)
	d.recover()
}

// syncBusy and syncIdle mark a background fsync (BackgroundSyncer), which
// runs while the writer may be busy or idle, for the same bound.
func (d *watchdog) syncBusy() { d.syncSince.Store(d.now().UnixNano()) }

func (d *watchdog) syncIdle() {
	d.syncSince.Store(0)
	d.recover()
}

// recover ends a stall once neither the writer nor a background fsync is
// busy.
func (d *watchdog) recover() {
	if !d.stalled.Load() {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.stalled.Load() || d.busySince.Load() != 0 || d.syncSince.Load() != 0 {
		return
	}
	stall := make(chan struct{})
	d.stall.Store(&stall)
	d.stalled.Store(false)
	d.log.Info("audit: the sink returned after a stall", "node", d.nodeID)
}
