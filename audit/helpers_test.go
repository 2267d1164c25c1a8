package audit_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/audit"
)

var (
	testKey  = bytes.Repeat([]byte{0x42}, 32)
	otherKey = bytes.Repeat([]byte{0x17}, 32)
)

// countingSink counts the calls that reach the sink it wraps.
type countingSink struct {
	audit.Sink
	writes, syncs atomic.Int64
}

func (s *countingSink) Write(p []byte) error { s.writes.Add(1); return s.Sink.Write(p) }
func (s *countingSink) Sync() error          { s.syncs.Add(1); return s.Sink.Sync() }

// Tail passes through, so that a counted FileSink still resumes its chain.
func (s *countingSink) Tail(node string) ([]byte, error) {
	if t, ok := s.Sink.(audit.Tailer); ok {
		return t.Tail(node)
	}
	return nil, nil
}

// faultySink fails Write or Sync on demand, and can block Write until
// released. Like a database table, it drops what was written since the last
// successful Sync when a Sync fails.
type faultySink struct {
	mu        sync.Mutex
	buf       bytes.Buffer
	synced    int
	writeErr  error
	syncErr   error
	block     chan struct{} // when non-nil, Write waits for it to close
	waiting   chan struct{} // when non-nil, gets a value whenever a Write starts to wait for block
	syncCalls int
}

func (s *faultySink) Write(p []byte) error {
	s.mu.Lock()
	block, waiting := s.block, s.waiting
	s.mu.Unlock()
	if block != nil {
		if waiting != nil {
			select {
			case waiting <- struct{}{}:
			default:
			}
		}
		<-block
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.writeErr != nil {
		return s.writeErr
	}
	s.buf.Write(p)
	return nil
}

func (s *faultySink) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.syncCalls++
	if s.syncErr != nil {
		s.buf.Truncate(s.synced)
		return s.syncErr
	}
	s.synced = s.buf.Len()
	return nil
}

func (s *faultySink) Close() error { return nil }

func (s *faultySink) set(f func(s *faultySink)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *faultySink) contents() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.buf.Bytes())
}

// memCheckpoints is an in-memory CheckpointStore; the real stores implement
// the same two methods and run the same contract in their own tests.
type memCheckpoints struct {
	mu    sync.Mutex
	saved map[string]audit.Checkpoint
	saves int
}

func newMemCheckpoints() *memCheckpoints {
	return &memCheckpoints{saved: map[string]audit.Checkpoint{}}
}

func (m *memCheckpoints) SaveCheckpoint(_ context.Context, node string, seq uint64, hash []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.saves++
	m.saved[node] = audit.Checkpoint{Node: node, Seq: seq, Hash: bytes.Clone(hash)}
	return nil
}

func (m *memCheckpoints) LoadCheckpoint(_ context.Context, node string) (uint64, []byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.saved[node]
	return c.Seq, bytes.Clone(c.Hash), ok, nil
}

func (m *memCheckpoints) get(node string) (audit.Checkpoint, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.saved[node], m.saves
}

// openFileSink opens an audit file and closes it at cleanup unless a Trail
// took it over.
func openFileSink(tb testing.TB, path string, maxBytes int64, keep int) *audit.FileSink {
	tb.Helper()
	s, err := audit.OpenFile(path, maxBytes, keep)
	if err != nil {
		tb.Fatalf("OpenFile: %v", err)
	}
	return s
}

// openTrail opens a trail with cfg's defaults filled for tests, and closes
// it at cleanup.
func openTrail(tb testing.TB, cfg audit.Config) *audit.Trail {
	tb.Helper()
	if cfg.NodeID == "" {
		cfg.NodeID = "node-a"
	}
	if cfg.Key == nil {
		cfg.Key = testKey
	}
	tr, err := audit.Open(cfg)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { tr.Close() })
	return tr
}

// rec returns a record whose fields all say which record it is.
func rec(i int) *neostore.AuditRecord {
	return &neostore.AuditRecord{
		Time:    time.Date(2026, 3, 1, 12, 0, 0, i, time.UTC),
		TraceID: fmt.Sprintf("trace-%d", i),
		Op:      neostore.OpSecretGet,
		Tenant:  "acme",
		Key:     fmt.Sprintf("key-%d", i),
		Principal: neostore.AuditPrincipal{
			Kind: neostore.PrincipalAPIKey, ID: "ak_0123456789abcdef", Name: "ci",
		},
		Status:     200,
		ClientAddr: "192.0.2.1:5555",
		UserAgent:  "test/1.0",
		Duration:   time.Duration(i) * time.Microsecond,
	}
}

// writeTrail writes n records to a new file at path with node and key, and
// returns the checkpoint of the chain's end.
func writeTrail(tb testing.TB, path, node string, key []byte, n int) audit.Checkpoint {
	tb.Helper()
	ck := newMemCheckpoints()
	tr, err := audit.Open(audit.Config{NodeID: node, Key: key, Sink: openFileSink(tb, path, 0, 0), Checkpoints: ck})
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	for i := 1; i <= n; i++ {
		if err := tr.Audit(context.Background(), rec(i)); err != nil {
			tb.Fatalf("Audit: %v", err)
		}
	}
	if err := tr.Close(); err != nil {
		tb.Fatalf("Close: %v", err)
	}
	c, _ := ck.get(node)
	return c
}

// writeTrailOf writes recs as a new chain of node sealed with key.
func writeTrailOf(tb testing.TB, path, node string, key []byte, recs []audit.Line) {
	tb.Helper()
	tr, err := audit.Open(audit.Config{NodeID: node, Key: key, Sink: openFileSink(tb, path, 0, 0)})
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	for _, l := range recs {
		if err := tr.Audit(context.Background(), &l.Record); err != nil {
			tb.Fatalf("Audit: %v", err)
		}
	}
	if err := tr.Close(); err != nil {
		tb.Fatalf("Close: %v", err)
	}
}

// readLines returns the lines of the file at path, without newlines.
func readLines(tb testing.TB, path string) []string {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	s := strings.TrimSuffix(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func writeLines(tb testing.TB, path string, lines []string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
}

// mustVerify fails the test unless the files verify.
func mustVerify(tb testing.TB, paths []string, checkpoints ...audit.Checkpoint) audit.Report {
	tb.Helper()
	r, err := audit.Verify(paths, testKey, checkpoints)
	if err != nil {
		tb.Fatalf("Verify: %v", err)
	}
	return r
}

// problemOf returns the *audit.Problem in err, failing the test if there is
// none.
func problemOf(tb testing.TB, err error) *audit.Problem {
	tb.Helper()
	var p *audit.Problem
	if !errors.As(err, &p) {
		tb.Fatalf("Verify error = %v, want a *audit.Problem", err)
	}
	return p
}

func tempPath(tb testing.TB) string { return filepath.Join(tb.TempDir(), "audit.log") }

// hungLeader starts an Audit that finds the trail idle and so writes its
// record itself, and returns once that write hangs in sink (whose block
// must be set), with the channel its result will arrive on.
func hungLeader(tb testing.TB, tr *audit.Trail, sink *faultySink) <-chan error {
	tb.Helper()
	waiting := make(chan struct{}, 1)
	sink.set(func(s *faultySink) { s.waiting = waiting })
	result := make(chan error, 1)
	go func() { result <- tr.Audit(context.Background(), rec(0)) }()
	select {
	case <-waiting:
	case <-time.After(5 * time.Second):
		tb.Fatal("the leader's write never reached the sink")
	}
	return result
}
