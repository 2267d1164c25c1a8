package postgres_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/pgtest"
	"github.com/neostore/neostore-secrets/postgres"
)

// The calls the API makes per request, on a real server: GET of one secret
// (BenchmarkStore_GetSecret, and from 32 goroutines as the kit's c32 does)
// and the first chunk of a listing of 1,000 keys, as
// neostore.SecretService.ListEach reads it (BenchmarkStore_ListAfter).
// storetest.Benchmark has the calls every store shares; these are the
// PostgreSQL store's request paths, compared before and after a change with
// benchstat. Point NEOSTORE_TEST_POSTGRES_URL at a server of your own for
// figures that do not depend on the throwaway cluster's fsync=off.

func benchStore(b *testing.B, keys int) *postgres.Store {
	b.Helper()
	s := mustOpen(b, pgtest.Start(b), postgres.Options{})
	sealed := neostore.SealedSecret{Ciphertext: make([]byte, 128), Validity: neostore.Validity{}}
	for i := range keys {
		if err := s.PutSecret(b.Context(), "tenant", fmt.Sprintf("key-%04d", i), sealed, neostore.Change{}); err != nil {
			b.Fatalf("PutSecret: %v", err)
		}
	}
	return s
}

func BenchmarkStore_GetSecret(b *testing.B) {
	s := benchStore(b, 1)
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.GetSecret(ctx, "tenant", "key-0000"); err != nil {
			b.Fatalf("GetSecret: %v", err)
		}
	}
}

func BenchmarkStore_GetSecretParallel(b *testing.B) {
	s := benchStore(b, 1)
	ctx := b.Context()
	b.ReportAllocs()
	b.SetParallelism(16) // 32 clients on 2 cores, as the kit's c32
	b.ResetTimer()       // not the database's creation and the put
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.GetSecret(ctx, "tenant", "key-0000"); err != nil {
				b.Errorf("GetSecret: %v", err)
				return
			}
		}
	})
}

func BenchmarkStore_ListAfter(b *testing.B) {
	s := benchStore(b, 1000)
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		keys, err := s.ListSecretKeysAfter(ctx, "tenant", "", 1000)
		if err != nil {
			b.Fatalf("ListSecretKeysAfter: %v", err)
		}
		if len(keys) != 1000 {
			b.Fatalf("ListSecretKeysAfter returned %d keys, want 1000", len(keys))
		}
	}
}

// TestStore_ListSecretKeysAfterAllocations pins what a listing chunk costs
// in the server: a few allocations per chunk, not two per key (pgx.RowTo's
// were most of a 1,000-key listing's CPU time).
func TestStore_ListSecretKeysAfterAllocations(t *testing.T) {
	s := mustOpen(t, pgtest.Start(t), postgres.Options{})
	sealed := neostore.SealedSecret{Ciphertext: []byte("c")}
	for i := range 1000 {
		if err := s.PutSecret(t.Context(), "tenant", fmt.Sprintf("key-%04d", i), sealed, neostore.Change{}); err != nil {
			t.Fatalf("PutSecret: %v", err)
		}
	}
	var keys []string
	allocs := testing.AllocsPerRun(20, func() {
		var err error
		if keys, err = s.ListSecretKeysAfter(t.Context(), "tenant", "", 1000); err != nil {
			t.Fatalf("ListSecretKeysAfter: %v", err)
		}
	})
	if len(keys) != 1000 || keys[0] != "key-0000" || keys[999] != "key-0999" {
		t.Fatalf("ListSecretKeysAfter returned %d keys from %q to %q, want key-0000 to key-0999", len(keys), keys[0], keys[len(keys)-1])
	}
	if allocs > 100 {
		t.Errorf("ListSecretKeysAfter of 1,000 keys: %.0f allocations, want at most 100", allocs)
	}
}

// BenchmarkStore_GetSecretExecMode is GetSecret on a URL with
// default_query_exec_mode=exec, the setting for PgBouncer before 1.21 in
// transaction mode (doc.go): every read is parsed and planned anew.
func BenchmarkStore_GetSecretExecMode(b *testing.B) {
	url := pgtest.Start(b)
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	s := mustOpen(b, url+sep+"default_query_exec_mode=exec", postgres.Options{})
	if err := s.PutSecret(b.Context(), "tenant", "key-0000", neostore.SealedSecret{Ciphertext: make([]byte, 128)}, neostore.Change{}); err != nil {
		b.Fatalf("PutSecret: %v", err)
	}
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.GetSecret(ctx, "tenant", "key-0000"); err != nil {
			b.Fatalf("GetSecret: %v", err)
		}
	}
}
