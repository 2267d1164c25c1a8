package audit_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/audit"
)

func TestTrail_Audit(t *testing.T) {
	t.Run("ConcurrentCallersShareSyncsAndGetContiguousSeq", func(t *testing.T) {
		path := tempPath(t)
		sink := &countingSink{Sink: openFileSink(t, path, 0, 0)}
		tr := openTrail(t, audit.Config{Sink: sink})
		const goroutines, each = 64, 40
		var wg sync.WaitGroup
		errs := make(chan error, goroutines*each)
		for g := range goroutines {
			wg.Go(func() {
				for i := range each {
					errs <- tr.Audit(context.Background(), rec(g*each+i))
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("Audit: %v", err)
			}
		}
		syncs := sink.syncs.Load() // before Close, which may sync once more
		if err := tr.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}

		const n = goroutines * each
		var seqs []uint64
		if err := audit.Search([]string{path}, audit.Filter{}, func(l audit.Line) error {
			seqs = append(seqs, l.Seq)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(seqs) != n {
			t.Fatalf("got %d records, want %d", len(seqs), n)
		}
		for i, seq := range seqs {
			if seq != uint64(i+1) {
				t.Fatalf("line %d has seq %d, want %d", i+1, seq, i+1)
			}
		}
		r := mustVerify(t, []string{path})
		if r.Records != n || len(r.Chains) != 1 || r.Chains[0].First != 1 || r.Chains[0].Last != n {
			t.Errorf("Verify report = %+v, want %d records in one chain 1..%d", r, n, n)
		}
		if syncs >= n {
			t.Errorf("got %d fsyncs for %d records, want fewer (group commit)", syncs, n)
		}
		t.Logf("%d records, %d fsyncs", n, syncs)
	})

	t.Run("EveryFieldRoundTrips", func(t *testing.T) {
		path := tempPath(t)
		tr := openTrail(t, audit.Config{Sink: openFileSink(t, path, 0, 0), NodeID: `node "β"`})
		want := neostore.AuditRecord{
			Time:    time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.FixedZone("CET", 3600)),
			TraceID: "4bf92f3577b34da6a3ce929d0e0e4736",
			Op:      neostore.OpSecretPut,
			Tenant:  "acme",
			Key:     "db-password",
			Principal: neostore.AuditPrincipal{
				Kind: neostore.PrincipalToken, ID: "user-1", Name: "Ada",
				Issuer: "https://idp.example", Subject: "user-1", ClientID: "cli-7",
			},
			Status:     403,
			ErrorCode:  neostore.EFORBIDDEN,
			ClientAddr: "[2001:db8::1]:443",
			UserAgent:  "curl/8.5 <\"quoted\">\t\u2028",
			Duration:   1500 * time.Millisecond,
		}
		if err := tr.Audit(context.Background(), &want); err != nil {
			t.Fatal(err)
		}
		tr.Close()
		lines := readLines(t, path)
		if len(lines) != 1 {
			t.Fatalf("got %d lines, want 1", len(lines))
		}
		got, err := audit.ParseLine([]byte(lines[0]))
		if err != nil {
			t.Fatal(err)
		}
		want.Time = want.Time.UTC()
		if got.Record != want {
			t.Errorf("record\n got %+v\nwant %+v", got.Record, want)
		}
		if got.Node != `node "β"` || got.Seq != 1 || got.Prev != strings.Repeat("0", 64) || len(got.MAC) != 64 {
			t.Errorf("chain fields = node %q seq %d prev %s mac %s, want node %q seq 1 prev zeros", got.Node, got.Seq, got.Prev, got.MAC, `node "β"`)
		}
		if !strings.HasPrefix(lines[0], `{"time":"2026-03-01T11:00:00.123456789Z","node":`) {
			t.Errorf("line starts %.60s, want the time in UTC with nine digits first", lines[0])
		}
	})

	t.Run("ZeroTimeIsStampedByNow", func(t *testing.T) {
		path := tempPath(t)
		now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
		tr := openTrail(t, audit.Config{Sink: openFileSink(t, path, 0, 0), Now: func() time.Time { return now }})
		r := rec(1)
		r.Time = time.Time{}
		if err := tr.Audit(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		tr.Close()
		got, _ := audit.ParseLine([]byte(readLines(t, path)[0]))
		if !got.Record.Time.Equal(now) {
			t.Errorf("time = %v, want %v", got.Record.Time, now)
		}
	})

	t.Run("LongFieldsAreClipped", func(t *testing.T) {
		path := tempPath(t)
		tr := openTrail(t, audit.Config{Sink: openFileSink(t, path, 0, 0)})
		r := rec(1)
		r.UserAgent = strings.Repeat("é", 5000)
		if err := tr.Audit(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		tr.Close()
		got, _ := audit.ParseLine([]byte(readLines(t, path)[0]))
		if n := len(got.Record.UserAgent); n > 1024 || n < 1000 {
			t.Errorf("user agent is %d bytes, want at most 1024", n)
		}
		mustVerify(t, []string{path})
	})

	t.Run("ContextCancelledWhileWaitingReturnsPromptly", func(t *testing.T) {
		sink := &faultySink{block: make(chan struct{})}
		tr := openTrail(t, audit.Config{Sink: sink})
		defer close(sink.block)
		hungLeader(t, tr, sink)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := tr.Audit(ctx, rec(1))
		if elapsed := time.Since(start); elapsed > time.Second {
			t.Errorf("Audit returned after %v, want about 50ms", elapsed)
		}
		if neostore.ErrorCode(err) != neostore.EUNAVAILABLE || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v (code %q), want EUNAVAILABLE wrapping DeadlineExceeded", err, neostore.ErrorCode(err))
		}
	})

	t.Run("HungSinkIsRefusedAfterStallTimeout", func(t *testing.T) {
		sink := &faultySink{block: make(chan struct{})}
		tr := openTrail(t, audit.Config{Sink: sink, StallTimeout: 100 * time.Millisecond})
		leader := hungLeader(t, tr, sink)
		start := time.Now()
		err := tr.Audit(context.Background(), rec(1)) // no deadline of its own
		if elapsed := time.Since(start); elapsed > 2*time.Second {
			t.Errorf("Audit returned after %v, want about the 100ms stall timeout", elapsed)
		}
		if neostore.ErrorCode(err) != neostore.EUNAVAILABLE {
			t.Errorf("err = %v, want EUNAVAILABLE", err)
		}
		if tr.Healthy() == nil {
			t.Error("Healthy() = nil while the sink hangs")
		}
		// Once stalled, a new record is refused at once.
		start = time.Now()
		if err := tr.Audit(context.Background(), rec(3)); neostore.ErrorCode(err) != neostore.EUNAVAILABLE {
			t.Errorf("while stalled: err = %v, want EUNAVAILABLE", err)
		}
		if elapsed := time.Since(start); elapsed > 50*time.Millisecond {
			t.Errorf("while stalled: refusal took %v, want immediate", elapsed)
		}
		close(sink.block)
		if err := <-leader; err != nil {
			t.Errorf("the leader whose write hung: %v once the sink returned, want nil", err)
		}
		for deadline := time.Now().Add(2 * time.Second); tr.Healthy() != nil; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("Healthy() = %v 2s after the sink returned", tr.Healthy())
			}
		}
		if err := tr.Audit(context.Background(), rec(2)); err != nil {
			t.Fatalf("after the sink returned: %v", err)
		}
		tr.Close()
		// The record refused after its wait was not lost: it was written
		// when the sink returned, after the leader's; the one refused at
		// once was never queued.
		if got := strings.Count(string(sink.contents()), "\n"); got != 3 {
			t.Errorf("sink holds %d records, want 3", got)
		}
	})

	t.Run("CancelledContextIsRefusedBeforeQueueing", func(t *testing.T) {
		sink := &faultySink{}
		tr := openTrail(t, audit.Config{Sink: sink})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := tr.Audit(ctx, rec(1)); !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
		tr.Close()
		if got := sink.contents(); len(got) != 0 {
			t.Errorf("sink got %q, want nothing", got)
		}
	})

	t.Run("FullQueueIsRefusedAtOnce", func(t *testing.T) {
		sink := &faultySink{block: make(chan struct{})}
		tr := openTrail(t, audit.Config{Sink: sink, QueueSize: 1})
		// One record blocks in the writer, one fills the queue.
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Go(func() { tr.Audit(context.Background(), rec(i)) })
			time.Sleep(20 * time.Millisecond)
		}
		start := time.Now()
		err := tr.Audit(context.Background(), rec(3))
		if neostore.ErrorCode(err) != neostore.EUNAVAILABLE {
			t.Errorf("err = %v, want EUNAVAILABLE", err)
		}
		if elapsed := time.Since(start); elapsed > 100*time.Millisecond {
			t.Errorf("refusal took %v, want immediate", elapsed)
		}
		close(sink.block)
		wg.Wait()
	})

	t.Run("AfterCloseIsRefused", func(t *testing.T) {
		tr := openTrail(t, audit.Config{Sink: &faultySink{}})
		tr.Close()
		if err := tr.Audit(context.Background(), rec(1)); neostore.ErrorCode(err) != neostore.EUNAVAILABLE {
			t.Errorf("err = %v, want EUNAVAILABLE", err)
		}
	})
}

func TestTrail_Durability(t *testing.T) {
	tests := []struct {
		durability audit.Durability
		wantSyncs  func(n int64) bool
		desc       string
	}{
		{audit.EverySync, func(n int64) bool { return n == 20 }, "one per record"},
		{audit.NoSync, func(n int64) bool { return n == 0 }, "none before Close"},
		{audit.GroupSync, func(n int64) bool { return n >= 1 && n <= 20 }, "at most one per record"},
	}
	for _, tt := range tests {
		t.Run(tt.durability.String(), func(t *testing.T) {
			path := tempPath(t)
			sink := &countingSink{Sink: openFileSink(t, path, 0, 0)}
			tr := openTrail(t, audit.Config{Sink: sink, Durability: tt.durability})
			for i := 1; i <= 20; i++ {
				if err := tr.Audit(context.Background(), rec(i)); err != nil {
					t.Fatal(err)
				}
			}
			if got := sink.syncs.Load(); !tt.wantSyncs(got) {
				t.Errorf("%d fsyncs for 20 records, want %s", got, tt.desc)
			}
			if err := tr.Close(); err != nil {
				t.Fatal(err)
			}
			if r := mustVerify(t, []string{path}); r.Records != 20 {
				t.Errorf("Records = %d, want 20", r.Records)
			}
		})
	}
}

func TestParseDurability(t *testing.T) {
	for _, d := range []audit.Durability{audit.GroupSync, audit.EverySync, audit.NoSync} {
		if got, err := audit.ParseDurability(d.String()); err != nil || got != d {
			t.Errorf("ParseDurability(%q) = %v, %v; want %v", d.String(), got, err, d)
		}
	}
	if _, err := audit.ParseDurability("fast"); err == nil {
		t.Error("ParseDurability(fast) succeeded, want an error")
	}
}

func TestTrail_SinkFailure(t *testing.T) {
	t.Run("WriteErrorFailsClosed", func(t *testing.T) {
		sink := &faultySink{writeErr: errors.New("disk full")}
		tr := openTrail(t, audit.Config{Sink: sink})
		err := tr.Audit(context.Background(), rec(1))
		if neostore.ErrorCode(err) != neostore.EUNAVAILABLE {
			t.Fatalf("err = %v, want EUNAVAILABLE", err)
		}
		if msg := neostore.ErrorMessage(err); strings.Contains(msg, "disk") {
			t.Errorf("client message %q leaks the cause", msg)
		}
		if tr.Dropped() != 0 {
			t.Errorf("Dropped = %d, want 0 when failing closed", tr.Dropped())
		}
	})

	t.Run("WriteErrorWithFailOpenIsCounted", func(t *testing.T) {
		sink := &faultySink{writeErr: errors.New("disk full")}
		tr := openTrail(t, audit.Config{Sink: sink, FailOpen: true})
		for range 3 {
			if err := tr.Audit(context.Background(), rec(1)); err != nil {
				t.Fatalf("err = %v, want nil with FailOpen", err)
			}
		}
		if tr.Dropped() != 3 {
			t.Errorf("Dropped = %d, want 3", tr.Dropped())
		}
	})

	t.Run("TransientWriteErrorRecoversWithoutGap", func(t *testing.T) {
		sink := &faultySink{}
		tr := openTrail(t, audit.Config{Sink: sink})
		must(t, tr.Audit(context.Background(), rec(1)))
		sink.set(func(s *faultySink) { s.writeErr = errors.New("disk full") })
		if err := tr.Audit(context.Background(), rec(2)); err == nil {
			t.Fatal("Audit succeeded on a failing sink")
		}
		sink.set(func(s *faultySink) { s.writeErr = nil })
		must(t, tr.Audit(context.Background(), rec(3)))
		tr.Close()
		r, err := audit.VerifyReader(bytes.NewReader(sink.contents()), "mem", testKey, nil)
		if err != nil || r.Records != 2 {
			t.Errorf("Verify = %+v, %v; want 2 records chained without a gap", r, err)
		}
	})

	t.Run("FailedSyncRollsTheChainBack", func(t *testing.T) {
		sink := &faultySink{}
		tr := openTrail(t, audit.Config{Sink: sink})
		must(t, tr.Audit(context.Background(), rec(1)))
		sink.set(func(s *faultySink) { s.syncErr = errors.New("connection reset") })
		if err := tr.Audit(context.Background(), rec(2)); neostore.ErrorCode(err) != neostore.EUNAVAILABLE {
			t.Fatalf("err = %v, want EUNAVAILABLE", err)
		}
		if seq, _ := tr.Head(); seq != 1 {
			t.Errorf("Head seq = %d after a failed sync, want 1", seq)
		}
		sink.set(func(s *faultySink) { s.syncErr = nil })
		must(t, tr.Audit(context.Background(), rec(3)))
		tr.Close()
		r, err := audit.VerifyReader(bytes.NewReader(sink.contents()), "mem", testKey, nil)
		if err != nil || r.Records != 2 || r.Chains[0].Last != 2 {
			t.Errorf("Verify = %+v, %v; want records 1 and 2 chained", r, err)
		}
	})

	t.Run("ClosedFileDescriptor", func(t *testing.T) {
		path := tempPath(t)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		f.Close() // every write now fails with "file already closed"
		tr := openTrail(t, audit.Config{Sink: audit.NewWriterSink(f)})
		if err := tr.Audit(context.Background(), rec(1)); neostore.ErrorCode(err) != neostore.EUNAVAILABLE {
			t.Errorf("err = %v, want EUNAVAILABLE", err)
		}
	})

	t.Run("ReadOnlyFile", func(t *testing.T) {
		path := tempPath(t)
		must(t, os.WriteFile(path, nil, 0o600))
		f, err := os.Open(path) // read-only: write(2) returns EBADF
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		tr := openTrail(t, audit.Config{Sink: audit.NewWriterSink(f)})
		err = tr.Audit(context.Background(), rec(1))
		if neostore.ErrorCode(err) != neostore.EUNAVAILABLE || !errors.Is(err, syscall.EBADF) {
			t.Errorf("err = %v, want EUNAVAILABLE wrapping EBADF", err)
		}
	})
}

func TestTrail_Open(t *testing.T) {
	t.Run("RestartContinuesSeqAndChain", func(t *testing.T) {
		path := tempPath(t)
		writeTrail(t, path, "node-a", testKey, 5)
		writeTrail(t, path, "node-a", testKey, 4)
		r := mustVerify(t, []string{path})
		if r.Records != 9 || r.Chains[0].First != 1 || r.Chains[0].Last != 9 {
			t.Errorf("report = %+v, want one chain 1..9", r)
		}
	})

	t.Run("RestartAfterRotationReadsTheRotatedFile", func(t *testing.T) {
		path := tempPath(t)
		writeTrail(t, path, "node-a", testKey, 3)
		must(t, os.Rename(path, path+".1")) // as if rotation stopped after the rename
		writeTrail(t, path, "node-a", testKey, 2)
		files, _ := audit.RotatedFiles(path)
		if r := mustVerify(t, files); r.Chains[0].Last != 5 {
			t.Errorf("report = %+v, want the chain to reach 5", r)
		}
	})

	t.Run("AnotherNodeInTheSameFileKeepsItsOwnChain", func(t *testing.T) {
		path := tempPath(t)
		writeTrail(t, path, "node-a", testKey, 3)
		writeTrail(t, path, "node-b", testKey, 2)
		writeTrail(t, path, "node-a", testKey, 1)
		r := mustVerify(t, []string{path})
		if len(r.Chains) != 2 || r.Chains[0].Last != 4 || r.Chains[1].Last != 2 {
			t.Errorf("report = %+v, want node-a 1..4 and node-b 1..2", r)
		}
	})

	t.Run("RefusesAChainSealedWithAnotherKey", func(t *testing.T) {
		path := tempPath(t)
		writeTrail(t, path, "node-a", otherKey, 2)
		sink := openFileSink(t, path, 0, 0)
		defer sink.Close()
		_, err := audit.Open(audit.Config{NodeID: "node-a", Key: testKey, Sink: sink})
		if err == nil || !strings.Contains(err.Error(), "does not verify") {
			t.Errorf("Open err = %v, want a refusal to extend the chain", err)
		}
	})

	t.Run("WriterSinkResumesFromCheckpoint", func(t *testing.T) {
		var out bytes.Buffer
		ck := newMemCheckpoints()
		for range 2 {
			tr := openTrail(t, audit.Config{Sink: audit.NewWriterSink(&out), Checkpoints: ck})
			for i := range 3 {
				must(t, tr.Audit(context.Background(), rec(i)))
			}
			must(t, tr.Close())
		}
		c, _ := ck.get("node-a")
		r, err := audit.VerifyReader(&out, "stdout", testKey, []audit.Checkpoint{c})
		if err != nil || r.Chains[0].Last != 6 {
			t.Errorf("Verify = %+v, %v; want one chain 1..6", r, err)
		}
	})

	t.Run("CheckpointAheadOfTheFileLeavesTheGapVisible", func(t *testing.T) {
		path := tempPath(t)
		writeTrail(t, path, "node-a", testKey, 5)
		lines := readLines(t, path)
		writeLines(t, path, lines[:3]) // records 4 and 5 cut
		ck := newMemCheckpoints()
		sum := sha256.Sum256([]byte(lines[4]))
		ck.SaveCheckpoint(context.Background(), "node-a", 5, sum[:])
		tr := openTrail(t, audit.Config{Sink: openFileSink(t, path, 0, 0), Checkpoints: ck})
		must(t, tr.Audit(context.Background(), rec(6)))
		must(t, tr.Close())
		_, err := audit.Verify([]string{path}, testKey, nil)
		if p := problemOf(t, err); p.Kind != audit.Removed || p.Line != 4 || p.Seq != 6 {
			t.Errorf("problem = %+v, want records removed before seq 6 at line 4", p)
		}
	})

	t.Run("Validation", func(t *testing.T) {
		sink := &faultySink{}
		for name, cfg := range map[string]audit.Config{
			"NoNode":   {Key: testKey, Sink: sink},
			"ShortKey": {NodeID: "n", Key: testKey[:16], Sink: sink},
			"NoSink":   {NodeID: "n", Key: testKey},
			"BadMode":  {NodeID: "n", Key: testKey, Sink: sink, Durability: 7},
		} {
			if _, err := audit.Open(cfg); err == nil {
				t.Errorf("%s: Open succeeded, want an error", name)
			}
		}
	})
}

func TestTrail_Checkpoints(t *testing.T) {
	t.Run("SavedThrottledAndOnClose", func(t *testing.T) {
		path := tempPath(t)
		ck := newMemCheckpoints()
		tr := openTrail(t, audit.Config{Sink: openFileSink(t, path, 0, 0), Checkpoints: ck, CheckpointInterval: time.Hour})
		for i := range 50 {
			must(t, tr.Audit(context.Background(), rec(i)))
		}
		seq, hash := tr.Head()
		must(t, tr.Close())
		c, saves := ck.get("node-a")
		if saves > 2 {
			t.Errorf("%d checkpoint saves for 50 records with a 1h interval, want at most 2 (first sync and Close)", saves)
		}
		if c.Seq != 50 || seq != 50 || !bytes.Equal(c.Hash, hash) {
			t.Errorf("checkpoint = %d %x, head = %d %x; want both at seq 50", c.Seq, c.Hash, seq, hash)
		}
		lines := readLines(t, path)
		sum := sha256.Sum256([]byte(lines[len(lines)-1]))
		if !bytes.Equal(c.Hash, sum[:]) {
			t.Errorf("checkpoint hash %x, want the hash of the last line %s", c.Hash, hex.EncodeToString(sum[:]))
		}
	})

	t.Run("NoSyncSyncsBeforeEachCheckpoint", func(t *testing.T) {
		path := tempPath(t)
		sink := &countingSink{Sink: openFileSink(t, path, 0, 0)}
		ck := newMemCheckpoints()
		tr := openTrail(t, audit.Config{Sink: sink, Durability: audit.NoSync, Checkpoints: ck, CheckpointInterval: -1})
		must(t, tr.Audit(context.Background(), rec(1)))
		deadline := time.Now().Add(2 * time.Second)
		for c, _ := ck.get("node-a"); c.Seq != 1; c, _ = ck.get("node-a") {
			if time.Now().After(deadline) {
				t.Fatal("no checkpoint saved")
			}
			time.Sleep(5 * time.Millisecond)
		}
		if sink.syncs.Load() == 0 {
			t.Error("a checkpoint was saved for a record that was never synced")
		}
	})

	t.Run("SavedWhenIdleAfterTheInterval", func(t *testing.T) {
		ck := newMemCheckpoints()
		tr := openTrail(t, audit.Config{Sink: &faultySink{}, Checkpoints: ck, CheckpointInterval: 30 * time.Millisecond})
		must(t, tr.Audit(context.Background(), rec(1)))
		must(t, tr.Audit(context.Background(), rec(2))) // inside the interval: not saved yet
		deadline := time.Now().Add(2 * time.Second)
		for {
			if c, _ := ck.get("node-a"); c.Seq == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("checkpoint did not reach seq 2 while the trail was idle")
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

func TestTrail_Healthy(t *testing.T) {
	sink := &flakySink{}
	trail := openTrail(t, audit.Config{Sink: sink})
	if err := trail.Healthy(); err != nil {
		t.Fatalf("Healthy on a new trail: %v", err)
	}
	sink.fail.Store(true)
	if err := trail.Audit(context.Background(), &neostore.AuditRecord{Op: neostore.OpSecretGet}); err == nil {
		t.Fatal("Audit succeeded on a failing sink")
	}
	if err := trail.Healthy(); err == nil {
		t.Errorf("Healthy = nil after the sink refused a record")
	}
	sink.fail.Store(false)
	if err := trail.Audit(context.Background(), &neostore.AuditRecord{Op: neostore.OpSecretGet}); err != nil {
		t.Fatal(err)
	}
	if err := trail.Healthy(); err != nil {
		t.Errorf("Healthy = %v after the sink recovered", err)
	}
	trail.Close()
	if err := trail.Healthy(); err == nil {
		t.Errorf("Healthy = nil on a closed trail")
	}
}

// flakySink keeps records in memory and refuses writes while fail is set.
type flakySink struct {
	fail  atomic.Bool
	lines [][]byte
}

func (s *flakySink) Write(p []byte) error {
	if s.fail.Load() {
		return errors.New("disk full")
	}
	s.lines = append(s.lines, bytes.Clone(p))
	return nil
}
func (s *flakySink) Sync() error  { return nil }
func (s *flakySink) Close() error { return nil }

// syncTracker counts written lines and how many of them the last Sync
// covered.
type syncTracker struct {
	mu              sync.Mutex
	written, synced int
	syncs           int
}

func (s *syncTracker) Write([]byte) error { s.mu.Lock(); s.written++; s.mu.Unlock(); return nil }
func (s *syncTracker) Sync() error {
	s.mu.Lock()
	s.synced, s.syncs = s.written, s.syncs+1
	s.mu.Unlock()
	return nil
}
func (s *syncTracker) Close() error { return nil }
func (s *syncTracker) state() (written, synced, syncs int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.written, s.synced, s.syncs
}

func TestTrail_WriteSync(t *testing.T) {
	sink := &syncTracker{}
	tr := openTrail(t, audit.Config{Sink: sink, Durability: audit.WriteSync})
	ctx := context.Background()

	t.Run("ReadsDoNotWaitForTheFsync", func(t *testing.T) {
		for range 50 {
			if err := tr.Audit(ctx, &neostore.AuditRecord{Op: neostore.OpSecretGet, Status: 200}); err != nil {
				t.Fatal(err)
			}
		}
		written, _, syncs := sink.state()
		if written != 50 || syncs >= 25 {
			t.Errorf("50 reads: %d written, %d fsyncs; want 50 written and far fewer fsyncs than reads", written, syncs)
		}
		deadline := time.Now().Add(time.Second)
		for {
			if _, synced, _ := sink.state(); synced == 50 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("read records not fsync'd within 1s (ReadSyncDelay is %v)", audit.ReadSyncDelay)
			}
			time.Sleep(time.Millisecond)
		}
	})
	t.Run("ChangesAreFsyncdBeforeAuditReturns", func(t *testing.T) {
		for _, op := range []string{neostore.OpSecretPut, neostore.OpSecretDelete, neostore.OpAPIKeyCreate, neostore.OpAPIKeyRevoke} {
			if err := tr.Audit(ctx, &neostore.AuditRecord{Op: op, Status: 204}); err != nil {
				t.Fatal(err)
			}
			if written, synced, _ := sink.state(); synced != written {
				t.Errorf("%s: Audit returned with %d of %d records fsync'd", op, synced, written)
			}
		}
	})
}

func TestParseDurability_Writes(t *testing.T) {
	if d, err := audit.ParseDurability("writes"); err != nil || d != audit.WriteSync || d.String() != "writes" {
		t.Errorf("ParseDurability(writes) = %v, %v", d, err)
	}
}

// bgSyncSink is a BackgroundSyncer whose fsyncs, background or not, wait
// for release while block is set, and fail while fail is set; like
// FileSink it refuses everything after a failed fsync.
type bgSyncSink struct {
	mu      sync.Mutex
	lines   int
	synced  int
	block   chan struct{}
	fail    bool
	broken  bool
	syncing chan struct{} // gets a value when an fsync starts
}

func (s *bgSyncSink) Write([]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken {
		return errors.New("broken")
	}
	s.lines++
	return nil
}

func (s *bgSyncSink) Sync() error { return s.SyncWritten()() }

func (s *bgSyncSink) SyncWritten() func() error {
	s.mu.Lock()
	n := s.lines
	s.mu.Unlock()
	return func() error {
		s.mu.Lock()
		block, syncing := s.block, s.syncing
		s.mu.Unlock()
		if syncing != nil {
			select {
			case syncing <- struct{}{}:
			default:
			}
		}
		if block != nil {
			<-block
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.fail || s.broken {
			s.broken = true
			return errors.New("fsync failed")
		}
		s.synced = max(s.synced, n)
		return nil
	}
}

func (s *bgSyncSink) Close() error { return nil }

func TestTrail_BackgroundSync(t *testing.T) {
	ctx := context.Background()
	read := func() *neostore.AuditRecord { return &neostore.AuditRecord{Op: neostore.OpSecretGet, Status: 200} }

	t.Run("ReadsAreWrittenWhileTheirFsyncRuns", func(t *testing.T) {
		sink := &bgSyncSink{block: make(chan struct{}), syncing: make(chan struct{}, 1)}
		tr := openTrail(t, audit.Config{Sink: sink, Durability: audit.WriteSync})
		defer close(sink.block)
		must(t, tr.Audit(ctx, read()))
		select {
		case <-sink.syncing: // the fsync of the first read's record hangs
		case <-time.After(5 * time.Second):
			t.Fatalf("no fsync of a read's record within 5s (ReadSyncDelay is %v)", audit.ReadSyncDelay)
		}
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		for i := range 10 {
			if err := tr.Audit(wctx, read()); err != nil {
				t.Fatalf("read %d while the fsync of earlier ones runs: %v", i, err)
			}
		}
	})

	t.Run("FailedFsyncRefusesLaterRecords", func(t *testing.T) {
		sink := &bgSyncSink{fail: true, syncing: make(chan struct{}, 1)}
		tr := openTrail(t, audit.Config{Sink: sink, Durability: audit.WriteSync})
		must(t, tr.Audit(ctx, read()))
		select {
		case <-sink.syncing:
		case <-time.After(5 * time.Second):
			t.Fatal("no fsync of a read's record within 5s")
		}
		deadline := time.Now().Add(5 * time.Second)
		for tr.Healthy() == nil {
			if time.Now().After(deadline) {
				t.Fatal("Healthy() = nil 5s after a failed fsync")
			}
			time.Sleep(time.Millisecond)
		}
		err := tr.Audit(ctx, &neostore.AuditRecord{Op: neostore.OpSecretPut, Status: 204})
		if neostore.ErrorCode(err) != neostore.EUNAVAILABLE {
			t.Errorf("a change after a failed fsync: err = %v, want EUNAVAILABLE", err)
		}
		if seq, _ := tr.Head(); seq != 0 {
			t.Errorf("Head() = %d after the fsync of record 1 failed, want 0 (rolled back)", seq)
		}
	})
}
