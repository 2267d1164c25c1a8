package audit_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/audit"
)

// linesCountingSink counts the writes and fsyncs of a FileSink and, unlike
// countingSink, keeps its WriteLines, so that a batch is one write as on a
// server.
type linesCountingSink struct {
	*audit.FileSink
	syncs, writes atomic.Int64
}

func (s *linesCountingSink) Write(p []byte) error { s.writes.Add(1); return s.FileSink.Write(p) }
func (s *linesCountingSink) WriteLines(p []byte) error {
	s.writes.Add(1)
	return s.FileSink.WriteLines(p)
}

func (s *linesCountingSink) Sync() error { s.syncs.Add(1); return s.FileSink.Sync() }

// SyncWritten counts background fsyncs (BackgroundSyncer) too.
func (s *linesCountingSink) SyncWritten() func() error {
	sync := s.FileSink.SyncWritten()
	return func() error { s.syncs.Add(1); return sync() }
}

// benchmarkAudit measures Audit of op's record under d: serially (one
// caller, as a lone client or a CLI sees it) or from 32 goroutines per core
// (a busy server).
func benchmarkAudit(b *testing.B, d audit.Durability, op string, parallel bool) {
	sink := &linesCountingSink{FileSink: openFileSink(b, filepath.Join(b.TempDir(), "audit.log"), 0, 0)}
	tr := openTrail(b, audit.Config{Sink: sink, Durability: d})
	r := rec(1)
	r.Op = op
	ctx := context.Background()
	b.ReportAllocs()
	if parallel {
		b.SetParallelism(32) // many requests in flight, as on a busy server
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := tr.Audit(ctx, r); err != nil {
					b.Error(err)
					return
				}
			}
		})
	} else {
		for b.Loop() {
			if err := tr.Audit(ctx, r); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	if err := tr.Close(); err != nil {
		b.Fatal(err)
	}
	if writes := sink.writes.Load(); writes > 0 {
		b.ReportMetric(float64(b.N)/float64(writes), "records/write")
	}
	if syncs := sink.syncs.Load(); syncs > 0 {
		b.ReportMetric(float64(b.N)/float64(syncs), "records/fsync")
	}
}

func BenchmarkAudit(b *testing.B) {
	for _, c := range []struct {
		name string
		d    audit.Durability
		op   string
	}{
		{"group", audit.GroupSync, neostore.OpSecretGet},
		{"writes-read", audit.WriteSync, neostore.OpSecretGet},
		{"writes-change", audit.WriteSync, neostore.OpSecretPut},
		{"every", audit.EverySync, neostore.OpSecretGet},
		{"none", audit.NoSync, neostore.OpSecretGet},
	} {
		b.Run(c.name+"/serial", func(b *testing.B) { benchmarkAudit(b, c.d, c.op, false) })
		b.Run(c.name+"/parallel32", func(b *testing.B) { benchmarkAudit(b, c.d, c.op, true) })
	}
}
