package audit_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/audit"
)

// memJournal is what a store does with the audit entries of its changes:
// it keeps their lines when the change commits. bolt runs the store side
// of the same contract against bbolt in its own tests.
type memJournal struct {
	mu    sync.Mutex
	lines map[uint64][]byte
}

func newMemJournal() *memJournal { return &memJournal{lines: map[uint64][]byte{}} }

// commit is a store committing a change that carries e.
func (j *memJournal) commit(e *neostore.AuditEntry) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.lines[e.Seq] = bytes.Clone(e.Line)
	e.Committed()
}

func (j *memJournal) JournaledLines(_ context.Context, _ string, after uint64) ([][]byte, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	var seqs []uint64
	for s := range j.lines {
		if s > after {
			seqs = append(seqs, s)
		}
	}
	slices.Sort(seqs)
	var out [][]byte
	for _, s := range seqs {
		out = append(out, bytes.Clone(j.lines[s]))
	}
	return out, nil
}

// gatedSink is a FileSink whose Sync waits until the test opens the gate.
type gatedSink struct {
	*audit.FileSink
	gate chan struct{}
}

func (s *gatedSink) Sync() error { <-s.gate; return s.FileSink.Sync() }

// tailingFaultySink is a faultySink the journal accepts: it reads no tail.
type tailingFaultySink struct{ *faultySink }

func (tailingFaultySink) Tail(string) ([]byte, error) { return nil, nil }

func change(i int) *neostore.AuditRecord {
	r := rec(i)
	r.Op, r.Status = neostore.OpSecretPut, 204
	return r
}

func TestTrail_Journal(t *testing.T) {
	ctx := context.Background()

	t.Run("AChangeCommittedByTheStoreNeedsNoFsync", func(t *testing.T) {
		path := tempPath(t)
		sink := &gatedSink{FileSink: openFileSink(t, path, 0, 0), gate: make(chan struct{})}
		tr := openTrail(t, audit.Config{Sink: sink, Durability: audit.WriteSync, Journal: newMemJournal()})
		defer close(sink.gate)

		e, err := tr.AuditChange(ctx, change(1)) // returns with no fsync done: the gate is shut
		if err != nil || e == nil {
			t.Fatalf("AuditChange = %v, %v; want an entry", e, err)
		}
		if lines := readLines(t, path); len(lines) != 1 || lines[0] != string(e.Line) || e.Seq != 1 || e.Node != "node-a" {
			t.Fatalf("entry %s #%d %q; file %q", e.Node, e.Seq, e.Line, lines)
		}
		e.Committed()
		if err := tr.Durable(ctx, e); err != nil {
			t.Errorf("Durable of a committed entry: %v", err)
		}

		// Not committed by a store: Durable waits for the trail's fsync.
		e2, err := tr.AuditChange(ctx, change(2))
		if err != nil || e2 == nil || e2.Seq != 2 {
			t.Fatalf("AuditChange = %+v, %v", e2, err)
		}
		returned := make(chan error, 1)
		go func() { returned <- tr.Durable(ctx, e2) }()
		select {
		case err := <-returned:
			t.Fatalf("Durable returned %v before the fsync", err)
		case <-time.After(50 * time.Millisecond):
		}
		sink.gate <- struct{}{} // the sync the 10 ms timer or the barrier started
		select {
		case err := <-returned:
			if err != nil {
				t.Errorf("Durable after the fsync: %v", err)
			}
		case <-time.After(2 * time.Second):
			// The timer's sync went first; the barrier's is the next one.
			sink.gate <- struct{}{}
			if err := <-returned; err != nil {
				t.Errorf("Durable after the fsync: %v", err)
			}
		}
	})

	t.Run("ReadsAndOtherModesAreUnchanged", func(t *testing.T) {
		tr := openTrail(t, audit.Config{Sink: openFileSink(t, tempPath(t), 0, 0), Durability: audit.GroupSync, Journal: newMemJournal()})
		if e, err := tr.AuditChange(ctx, change(1)); e != nil || err != nil {
			t.Errorf("under GroupSync AuditChange = %v, %v; want nil entry (already durable)", e, err)
		}
		tr2 := openTrail(t, audit.Config{Sink: &syncTracker{}, Durability: audit.WriteSync})
		if e, err := tr2.AuditChange(ctx, change(1)); e != nil || err != nil {
			t.Errorf("without a journal AuditChange = %v, %v; want nil entry", e, err)
		}
	})

	t.Run("NeedsASinkWithATail", func(t *testing.T) {
		_, err := audit.Open(audit.Config{NodeID: "n", Key: testKey, Sink: &syncTracker{}, Durability: audit.WriteSync, Journal: newMemJournal()})
		if err == nil {
			t.Error("Open accepted a journal over a sink that cannot read its tail")
		}
	})

	t.Run("LostChangeRecordsAreWrittenBackOnOpen", func(t *testing.T) {
		path := tempPath(t)
		j := newMemJournal()
		tr := openTrail(t, audit.Config{Sink: openFileSink(t, path, 0, 0), Durability: audit.WriteSync, Journal: j})
		must(t, tr.Audit(ctx, rec(1)))
		must(t, tr.Audit(ctx, rec(2)))
		for i := 3; i <= 4; i++ {
			e, err := tr.AuditChange(ctx, change(i))
			must(t, err)
			j.commit(e)
			must(t, tr.Durable(ctx, e))
		}
		must(t, tr.Close())
		before := readLines(t, path)
		writeLines(t, path, before[:2]) // the OS lost the two unsynced change records

		tr = openTrail(t, audit.Config{Sink: openFileSink(t, path, 0, 0), Durability: audit.WriteSync, Journal: j})
		must(t, tr.Audit(ctx, rec(5)))
		must(t, tr.Close())
		after := readLines(t, path)
		if !slices.Equal(after[:4], before) || len(after) != 5 {
			t.Fatalf("after reopening the file holds %d lines, want the 4 written and 1 more", len(after))
		}
		if r := mustVerify(t, []string{path}); r.Chains[0].First != 1 || r.Chains[0].Last != 5 {
			t.Errorf("report = %+v, want one chain 1..5", r)
		}
	})

	t.Run("AGapOfLostReadsStaysVisible", func(t *testing.T) {
		path := tempPath(t)
		j := newMemJournal()
		tr := openTrail(t, audit.Config{Sink: openFileSink(t, path, 0, 0), Durability: audit.WriteSync, Journal: j})
		must(t, tr.Audit(ctx, rec(1)))
		e, err := tr.AuditChange(ctx, change(2))
		must(t, err)
		j.commit(e)
		must(t, tr.Audit(ctx, rec(3))) // a read: not journaled
		e, err = tr.AuditChange(ctx, change(4))
		must(t, err)
		j.commit(e)
		must(t, tr.Close())
		lines := readLines(t, path)
		writeLines(t, path, lines[:1]) // everything after the first record lost

		tr = openTrail(t, audit.Config{Sink: openFileSink(t, path, 0, 0), Durability: audit.WriteSync, Journal: j})
		must(t, tr.Close())
		got := readLines(t, path)
		if want := []string{lines[0], lines[1], lines[3]}; !slices.Equal(got, want) {
			t.Fatalf("file = %d lines, want records 1, 2 and 4", len(got))
		}
		_, err = audit.Verify([]string{path}, testKey, nil)
		if p := problemOf(t, err); p.Kind != audit.Removed || p.Seq != 4 {
			t.Errorf("Verify = %v, want record 3 reported removed before seq 4", err)
		}
	})

	t.Run("AForgedJournalLineIsRefused", func(t *testing.T) {
		path := tempPath(t)
		j := newMemJournal()
		tr := openTrail(t, audit.Config{Sink: openFileSink(t, path, 0, 0), Durability: audit.WriteSync, Journal: j})
		e, err := tr.AuditChange(ctx, change(1))
		must(t, err)
		e.Line = bytes.Replace(e.Line, []byte("key-1"), []byte("key-X"), 1)
		j.commit(e)
		must(t, tr.Close())
		writeLines(t, path, nil)
		sink := openFileSink(t, path, 0, 0)
		defer sink.Close()
		if _, err := audit.Open(audit.Config{NodeID: "node-a", Key: testKey, Sink: sink, Durability: audit.WriteSync, Journal: j}); err == nil {
			t.Error("Open wrote back a journal line whose mac does not verify")
		}
	})

	t.Run("AnEntryLostToAFailedFsyncIsRefused", func(t *testing.T) {
		sink := tailingFaultySink{&faultySink{}}
		tr := openTrail(t, audit.Config{Sink: sink, Durability: audit.WriteSync, Journal: newMemJournal()})
		e, err := tr.AuditChange(ctx, change(1))
		must(t, err)
		sink.set(func(s *faultySink) { s.syncErr = errors.New("disk gone") })
		if err := tr.Durable(ctx, e); neostore.ErrorCode(err) != neostore.EUNAVAILABLE {
			t.Errorf("Durable = %v, want EUNAVAILABLE", err)
		}
		// The sink (transactional, like a table) reuses seq 1 for the next
		// record; the lost entry still does not pass for durable.
		sink.set(func(s *faultySink) { s.syncErr = nil })
		e2, err := tr.AuditChange(ctx, change(2))
		must(t, err)
		must(t, tr.Durable(ctx, e2))
		if e2.Seq != e.Seq {
			t.Fatalf("seq %d then %d; the test wants the sink to reuse it", e.Seq, e2.Seq)
		}
		if err := tr.Durable(ctx, e); neostore.ErrorCode(err) != neostore.EUNAVAILABLE {
			t.Errorf("Durable of the lost entry after its seq was reused = %v, want EUNAVAILABLE", err)
		}
	})
}
