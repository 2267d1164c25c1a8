package storetest

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/neostore/neostore-secrets"
)

// benchParallelism multiplies GOMAXPROCS into the number of PutParallel
// writers, so that the benchmark sees the many concurrent clients of a
// server rather than one writer per core.
const benchParallelism = 16

// Benchmark measures the store's hot paths as sub-benchmarks of b. Each
// sub-benchmark calls open for a fresh store, which open must close with
// b.Cleanup. Ciphertexts are 128 bytes, about a sealed 64-byte secret.
func Benchmark(b *testing.B, open func(b *testing.B) neostore.Store) {
	sealed := neostore.SealedSecret{
		Ciphertext: patterned(128),
		Validity:   neostore.Validity{ExpiresOn: neostore.At(t2)},
	}

	b.Run("Get", func(b *testing.B) {
		s := open(b)
		ctx := b.Context()
		if err := s.PutSecret(ctx, "tenant", "key", sealed, neostore.Change{}); err != nil {
			b.Fatalf("PutSecret: %v", err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.GetSecret(ctx, "tenant", "key"); err != nil {
				b.Fatalf("GetSecret: %v", err)
			}
		}
	})

	b.Run("Put", func(b *testing.B) {
		s := open(b)
		ctx := b.Context()
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if err := s.PutSecret(ctx, "tenant", "key-"+strconv.Itoa(i), sealed, neostore.Change{}); err != nil {
				b.Fatalf("PutSecret: %v", err)
			}
		}
	})

	b.Run("PutParallel", func(b *testing.B) {
		s := open(b)
		ctx := b.Context()
		var n atomic.Int64
		b.ReportAllocs()
		b.SetParallelism(benchParallelism)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := s.PutSecret(ctx, "tenant", "key-"+strconv.FormatInt(n.Add(1), 10), sealed, neostore.Change{}); err != nil {
					b.Errorf("PutSecret: %v", err)
					return
				}
			}
		})
	})

	b.Run("List1000", func(b *testing.B) {
		s := open(b)
		ctx := b.Context()
		putMany(b, s, "tenant", 1000, sealed)
		b.ReportAllocs()
		for b.Loop() {
			keys, err := s.ListSecretKeys(ctx, "tenant")
			if err != nil {
				b.Fatalf("ListSecretKeys: %v", err)
			}
			if len(keys) != 1000 {
				b.Fatalf("ListSecretKeys returned %d keys, want 1000", len(keys))
			}
		}
	})
}

// putMany stores n secrets from concurrent writers, so that a store that
// groups commits fills quickly.
func putMany(b *testing.B, s neostore.Store, tenant string, n int, sealed neostore.SealedSecret) {
	const writers = 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := w; i < n; i += writers {
				if err := s.PutSecret(b.Context(), tenant, "key-"+strconv.Itoa(i), sealed, neostore.Change{}); err != nil {
					b.Errorf("PutSecret: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
}
