package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/neostore/neostore-secrets"
)

// RunQuota runs the cases of a per-tenant key quota as subtests of t. open
// returns a fresh, empty store that holds at most maxKeys keys per tenant,
// with its cleanup registered.
func RunQuota(t *testing.T, open func(t *testing.T, maxKeys int) neostore.Store) {
	v := neostore.SealedSecret{Ciphertext: []byte("v")}
	t.Run("NewKeyOverQuota", func(t *testing.T) {
		s := open(t, 3)
		for _, k := range []string{"a", "b", "c"} {
			mustPut(t, s, "tenant", k, v)
		}
		err := s.PutSecret(t.Context(), "tenant", "d", v, neostore.Change{})
		if !errors.Is(err, neostore.ErrTenantFull) || neostore.ErrorCode(err) != neostore.ECONFLICT {
			t.Fatalf("PutSecret of a fourth key = %v, want ErrTenantFull", err)
		}
		if got := mustList(t, s, "tenant"); !slices.Equal(got, []string{"a", "b", "c"}) {
			t.Errorf("keys after the refused put = %q, want [a b c]", got)
		}
		// Replacing a key of a full tenant, and other tenants, are fine.
		mustPut(t, s, "tenant", "b", neostore.SealedSecret{Ciphertext: []byte("v2")})
		checkSecret(t, mustGet(t, s, "tenant", "b"), neostore.SealedSecret{Ciphertext: []byte("v2")})
		mustPut(t, s, "other", "d", v)
		// A delete makes room again.
		if err := s.DeleteSecret(t.Context(), "tenant", "a", neostore.Change{}); err != nil {
			t.Fatal(err)
		}
		mustPut(t, s, "tenant", "d", v)
	})
	t.Run("ConcurrentPutsStayWithin", func(t *testing.T) {
		const quota, writers = 10, 40
		s := open(t, quota)
		var ok, full atomic.Int64
		var wg sync.WaitGroup
		for i := range writers {
			wg.Go(func() {
				err := s.PutSecret(t.Context(), "tenant", fmt.Sprintf("k%02d", i), v, neostore.Change{})
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, neostore.ErrTenantFull):
					full.Add(1)
				default:
					t.Errorf("PutSecret: %v", err)
				}
			})
		}
		wg.Wait()
		if got := len(mustList(t, s, "tenant")); got != quota || ok.Load() != quota || full.Load() != writers-quota {
			t.Errorf("%d concurrent new keys under a quota of %d: %d stored, %d accepted, %d refused; want %d, %d, %d",
				writers, quota, got, ok.Load(), full.Load(), quota, quota, writers-quota)
		}
	})
}
