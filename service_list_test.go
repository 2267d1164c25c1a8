package neostore_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/bolt"
)

// countingStore counts the chunked reads a listing makes of a real store.
type countingStore struct {
	neostore.Store
	reads int
}

func (s *countingStore) ListSecretKeysAfter(ctx context.Context, tenant, after string, limit int) ([]string, error) {
	s.reads++
	return s.Store.ListSecretKeysAfter(ctx, tenant, after, limit)
}

// TestSecretService_ListEachReadsOnceForAFullChunk: a tenant of exactly
// 1,000 keys (one chunk) is one read of the store, not a second read that
// finds nothing; on PostgreSQL each read is a round trip.
func TestSecretService_ListEachReadsOnceForAFullChunk(t *testing.T) {
	for _, tc := range []struct{ keys, reads, chunks int }{{0, 1, 1}, {999, 1, 1}, {1000, 1, 1}, {1001, 2, 2}, {2000, 2, 2}, {2500, 3, 3}} {
		t.Run(fmt.Sprint(tc.keys), func(t *testing.T) {
			b, err := bolt.Open(filepath.Join(t.TempDir(), "secrets.db"), bolt.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			for i := range tc.keys {
				if err := b.PutSecret(t.Context(), "demo", fmt.Sprintf("k%05d", i), neostore.SealedSecret{Ciphertext: []byte("x")}, neostore.Change{}); err != nil {
					t.Fatal(err)
				}
			}
			store := &countingStore{Store: b}
			svc := neostore.NewSecretService(store, nil, time.Now)
			var got []string
			chunks := 0
			err = svc.ListEach(t.Context(), "demo", func(keys []string) error {
				chunks++
				if len(keys) > 1000 {
					t.Errorf("a chunk of %d keys, want at most 1,000", len(keys))
				}
				got = append(got, keys...)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.keys {
				t.Fatalf("listed %d keys, want %d", len(got), tc.keys)
			}
			for i, k := range got {
				if want := fmt.Sprintf("k%05d", i); k != want {
					t.Fatalf("key %d = %q, want %q", i, k, want)
				}
			}
			if store.reads != tc.reads || chunks != tc.chunks {
				t.Errorf("%d reads and %d chunks, want %d and %d", store.reads, chunks, tc.reads, tc.chunks)
			}
		})
	}
}
