package audit_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/neostore/neostore-secrets/audit"
)

func benchmarkAudit(b *testing.B, d audit.Durability) {
	sink := &countingSink{Sink: openFileSink(b, filepath.Join(b.TempDir(), "audit.log"), 0, 0)}
	tr := openTrail(b, audit.Config{Sink: sink, Durability: d})
	r := rec(1)
	b.ReportAllocs()
	b.SetParallelism(32) // many requests in flight, as on a busy server
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := tr.Audit(context.Background(), r); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	if syncs := sink.syncs.Load(); syncs > 0 {
		b.ReportMetric(float64(b.N)/float64(syncs), "records/fsync")
	}
}

func BenchmarkAuditParallel(b *testing.B)  { benchmarkAudit(b, audit.GroupSync) }
func BenchmarkAuditEverySync(b *testing.B) { benchmarkAudit(b, audit.EverySync) }
func BenchmarkAuditNoSync(b *testing.B)    { benchmarkAudit(b, audit.NoSync) }
