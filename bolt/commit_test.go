package bolt

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/neostore/neostore-secrets"
)

// openCommitTest opens a store in a fresh file, closed on cleanup.
func openCommitTest(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "neostore.db"), Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// goroutineID returns the id runtime.Stack prints for the calling goroutine.
func goroutineID() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	id, _, _ := strings.Cut(strings.TrimPrefix(string(buf), "goroutine "), " ")
	return id
}

// holdCommit starts a write that keeps its transaction open until the
// returned release is called, and returns once that write leads the
// commit: writes made meanwhile queue behind it. wait returns its result.
func holdCommit(t *testing.T, s *Store) (release func(), wait func() error) {
	t.Helper()
	inside, out := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.batch(context.Background(), func(tx *bbolt.Tx) error {
			close(inside)
			<-out
			return nil
		})
	}()
	select {
	case <-inside:
	case <-time.After(10 * time.Second):
		t.Fatal("the holding write did not start")
	}
	var once sync.Once
	release = func() { once.Do(func() { close(out) }) }
	t.Cleanup(release)
	return release, func() error {
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			return errors.New("the holding write did not return")
		}
	}
}

// awaitQueued returns once n writes are queued behind the running commit.
func awaitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.commit.mu.Lock()
		got := len(s.commit.queue)
		s.commit.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued, want %d", got, n)
		}
		runtime.Gosched()
	}
}

// result is one queued write's outcome.
type result struct {
	i    int
	txID int
	err  error
	pnc  any
}

// queueWrites starts one write per fn while the commit is held, each
// recording the id of the transaction it last ran in, waits until all are
// queued, and returns a channel of their results.
func queueWrites(t *testing.T, s *Store, ctxs []context.Context, fns []func(tx *bbolt.Tx) error) <-chan result {
	t.Helper()
	out := make(chan result, len(fns))
	for i, fn := range fns {
		ctx := context.Background()
		if ctxs != nil && ctxs[i] != nil {
			ctx = ctxs[i]
		}
		go func() {
			var r result
			r.i = i
			defer func() {
				r.pnc = recover()
				out <- r
			}()
			r.err = s.batch(ctx, func(tx *bbolt.Tx) error {
				r.txID = tx.ID()
				return fn(tx)
			})
		}()
		awaitQueued(t, s, i+1) // one by one, so the queue keeps this order
	}
	return out
}

// collect receives n results, by index.
func collect(t *testing.T, results <-chan result, n int) []result {
	t.Helper()
	got := make([]result, n)
	for range n {
		select {
		case r := <-results:
			got[r.i] = r
		case <-time.After(10 * time.Second):
			t.Fatal("a queued write did not return")
		}
	}
	return got
}

func put(key string) func(tx *bbolt.Tx) error {
	return func(tx *bbolt.Tx) error {
		return putSecret(tx, "t", key, encodeSecret(neostore.SealedSecret{Ciphertext: []byte(key)}), 0)
	}
}

func stored(t *testing.T, s *Store, key string) bool {
	t.Helper()
	_, err := s.GetSecret(t.Context(), "t", key)
	if err != nil && !errors.Is(err, neostore.ErrSecretNotFound) {
		t.Fatalf("GetSecret(%q): %v", key, err)
	}
	return err == nil
}

func TestGroupCommit(t *testing.T) {
	t.Run("ALoneWriteRunsOnItsCallersGoroutine", func(t *testing.T) {
		s := openCommitTest(t)
		caller := goroutineID()
		var ran string
		if err := s.batch(t.Context(), func(tx *bbolt.Tx) error {
			ran = goroutineID()
			return put("k")(tx)
		}); err != nil {
			t.Fatalf("batch: %v", err)
		}
		if ran != caller {
			t.Errorf("the write ran on goroutine %s, its caller is %s: want no hand-off", ran, caller)
		}
		if !stored(t, s, "k") {
			t.Error("the write is not stored")
		}
	})

	t.Run("WritesQueuedDuringACommitShareTheNext", func(t *testing.T) {
		s := openCommitTest(t)
		release, wait := holdCommit(t, s)
		const n = 5
		fns := make([]func(tx *bbolt.Tx) error, n)
		entries := make([]*neostore.AuditEntry, n)
		for i := range fns {
			key := fmt.Sprintf("k%d", i)
			entries[i] = &neostore.AuditEntry{Node: "n1", Seq: uint64(i + 1), Line: []byte(key)}
			fns[i] = func(tx *bbolt.Tx) error {
				if err := journalAuditEntry(tx, entries[i]); err != nil {
					return err
				}
				return put(key)(tx)
			}
		}
		results := queueWrites(t, s, nil, fns)
		release()
		if err := wait(); err != nil {
			t.Fatalf("holding write: %v", err)
		}
		got := collect(t, results, n)
		for i, r := range got {
			if r.err != nil || r.pnc != nil {
				t.Errorf("write %d: err %v, panic %v", i, r.err, r.pnc)
			}
			if r.txID != got[0].txID {
				t.Errorf("write %d committed in transaction %d, write 0 in %d: want one shared", i, r.txID, got[0].txID)
			}
			if !stored(t, s, fmt.Sprintf("k%d", i)) {
				t.Errorf("write %d is not stored", i)
			}
		}
		lines, err := s.JournaledLines(t.Context(), "n1", 0)
		if err != nil || len(lines) != n {
			t.Errorf("journal holds %d lines (err %v), want %d", len(lines), err, n)
		}
	})

	t.Run("AFailingWriteFailsOnlyItself", func(t *testing.T) {
		s := openCommitTest(t)
		release, wait := holdCommit(t, s)
		errBad := errors.New("bad write")
		fns := []func(tx *bbolt.Tx) error{
			put("k0"),
			func(tx *bbolt.Tx) error {
				if err := put("bad")(tx); err != nil {
					return err
				}
				return errBad
			},
			put("k2"),
			func(tx *bbolt.Tx) error { panic("boom") },
			put("k4"),
		}
		results := queueWrites(t, s, nil, fns)
		release()
		if err := wait(); err != nil {
			t.Fatalf("holding write: %v", err)
		}
		got := collect(t, results, len(fns))
		for _, i := range []int{0, 2, 4} {
			if got[i].err != nil || got[i].pnc != nil {
				t.Errorf("good write %d: err %v, panic %v; want success", i, got[i].err, got[i].pnc)
			}
			if !stored(t, s, fmt.Sprintf("k%d", i)) {
				t.Errorf("good write %d is not stored", i)
			}
		}
		if got[0].txID != got[2].txID || got[2].txID != got[4].txID {
			t.Errorf("good writes committed in transactions %d, %d, %d: want them together", got[0].txID, got[2].txID, got[4].txID)
		}
		if !errors.Is(got[1].err, errBad) {
			t.Errorf("failing write: err %v, want its own error", got[1].err)
		}
		if stored(t, s, "bad") {
			t.Error("the failing write's change is stored")
		}
		if got[3].pnc != "boom" {
			t.Errorf("panicking write: caller got panic %v (err %v), want its own panic raised again", got[3].pnc, got[3].err)
		}
		// The store still commits, led by a new writer.
		if err := s.batch(t.Context(), put("after")); err != nil || !stored(t, s, "after") {
			t.Errorf("a write after the failures: %v", err)
		}
	})

	t.Run("AWriteCancelledWhileQueuedIsNotRun", func(t *testing.T) {
		s := openCommitTest(t)
		release, wait := holdCommit(t, s)
		ctx, cancel := context.WithCancel(t.Context())
		results := queueWrites(t, s, []context.Context{nil, ctx, nil}, []func(tx *bbolt.Tx) error{put("k0"), put("k1"), put("k2")})
		cancel()
		release()
		if err := wait(); err != nil {
			t.Fatalf("holding write: %v", err)
		}
		got := collect(t, results, 3)
		if !errors.Is(got[1].err, context.Canceled) {
			t.Errorf("cancelled write: err %v, want context.Canceled", got[1].err)
		}
		if stored(t, s, "k1") {
			t.Error("the cancelled write is stored")
		}
		for _, i := range []int{0, 2} {
			if got[i].err != nil || !stored(t, s, fmt.Sprintf("k%d", i)) {
				t.Errorf("write %d: err %v, want it stored", i, got[i].err)
			}
		}
	})

	t.Run("CloseCommitsTheQueueAndRefusesNewWrites", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "neostore.db")
		s, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		release, wait := holdCommit(t, s)
		results := queueWrites(t, s, nil, []func(tx *bbolt.Tx) error{put("k0"), put("k1")})
		closed := make(chan error, 1)
		go func() { closed <- s.Close() }()
		deadline := time.Now().Add(10 * time.Second)
		for !func() bool { s.commit.mu.Lock(); defer s.commit.mu.Unlock(); return s.commit.closed }() {
			if time.Now().After(deadline) {
				t.Fatal("Close did not begin")
			}
			runtime.Gosched()
		}
		if err := s.batch(t.Context(), put("late")); !errors.Is(err, errClosed) {
			t.Errorf("a write after Close began: %v, want errClosed", err)
		}
		release()
		if err := wait(); err != nil {
			t.Fatalf("holding write: %v", err)
		}
		for i, r := range collect(t, results, 2) {
			if r.err != nil {
				t.Errorf("queued write %d: %v, want committed before Close", i, r.err)
			}
		}
		select {
		case err := <-closed:
			if err != nil {
				t.Fatalf("Close: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Close did not return")
		}
		s, err = Open(path, Options{})
		if err != nil {
			t.Fatalf("re-open: %v", err)
		}
		defer s.Close()
		for _, k := range []string{"k0", "k1"} {
			if !stored(t, s, k) {
				t.Errorf("queued write %s is not in the file after Close", k)
			}
		}
	})
}
