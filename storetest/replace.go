package storetest

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	"github.com/neostore/neostore-secrets"
)

// replaceCases check the compare-and-swap writes that key rotation relies
// on: a swap succeeds only against the exact stored bytes, loses (ECONFLICT)
// to any concurrent change, never creates what is absent, and of racing
// swaps from the same old value exactly one wins.
var replaceCases = []testCase{
	{"TenantKeySwaps", func(t *testing.T, s neostore.Store) {
		mustCreateTenantKey(t, s, "tenant", []byte("wrapped-1"))
		if err := s.ReplaceTenantKey(t.Context(), "tenant", []byte("wrapped-1"), []byte("wrapped-2")); err != nil {
			t.Fatalf("ReplaceTenantKey from the stored key: %v", err)
		}
		wantTenantKey(t, s, "tenant", "wrapped-2")
		if tenants, err := s.ListTenants(t.Context()); err != nil || len(tenants) != 1 || tenants[0] != "tenant" {
			t.Errorf("ListTenants = %q, %v; want [tenant]", tenants, err)
		}
	}},
	{"TenantKeyConflictAfterConcurrentChange", func(t *testing.T, s neostore.Store) {
		mustCreateTenantKey(t, s, "tenant", []byte("wrapped-1"))
		// Another rotation got there first.
		if err := s.ReplaceTenantKey(t.Context(), "tenant", []byte("wrapped-1"), []byte("theirs")); err != nil {
			t.Fatal(err)
		}
		err := s.ReplaceTenantKey(t.Context(), "tenant", []byte("wrapped-1"), []byte("mine"))
		wantCode(t, "ReplaceTenantKey from a stale key", err, neostore.ECONFLICT)
		wantTenantKey(t, s, "tenant", "theirs")
		// A prefix or an extension of the stored bytes is not a match.
		for _, old := range []string{"their", "theirs!", ""} {
			err := s.ReplaceTenantKey(t.Context(), "tenant", []byte(old), []byte("mine"))
			wantCode(t, fmt.Sprintf("ReplaceTenantKey from %q", old), err, neostore.ECONFLICT)
		}
		wantTenantKey(t, s, "tenant", "theirs")
	}},
	{"TenantKeyAbsentIsConflict", func(t *testing.T, s neostore.Store) {
		mustCreateTenantKey(t, s, "other", []byte("wrapped"))
		err := s.ReplaceTenantKey(t.Context(), "tenant", []byte("wrapped"), []byte("new"))
		wantCode(t, "ReplaceTenantKey of a tenant without a key", err, neostore.ECONFLICT)
		_, err = s.GetTenantKey(t.Context(), "tenant")
		wantCode(t, "GetTenantKey after a failed replace", err, neostore.ENOTFOUND)
		wantTenantKey(t, s, "other", "wrapped")
	}},
	{"TenantKeyRacingSwapsOneWinner", func(t *testing.T, s neostore.Store) {
		mustCreateTenantKey(t, s, "tenant", []byte("old"))
		winners := race(t, 16, func(i int) error {
			return s.ReplaceTenantKey(t.Context(), "tenant", []byte("old"), fmt.Appendf(nil, "new-%02d", i))
		})
		if len(winners) != 1 {
			t.Fatalf("%d swaps from the same old key succeeded, want exactly 1", len(winners))
		}
		wantTenantKey(t, s, "tenant", fmt.Sprintf("new-%02d", winners[0]))
	}},
	{"KeyCheckSwaps", func(t *testing.T, s neostore.Store) {
		if _, err := s.CreateKeyCheck(t.Context(), []byte("record-1")); err != nil {
			t.Fatal(err)
		}
		if err := s.ReplaceKeyCheck(t.Context(), []byte("record-1"), []byte("record-2")); err != nil {
			t.Fatalf("ReplaceKeyCheck from the stored record: %v", err)
		}
		err := s.ReplaceKeyCheck(t.Context(), []byte("record-1"), []byte("record-3"))
		wantCode(t, "ReplaceKeyCheck from a stale record", err, neostore.ECONFLICT)
		if got, err := s.GetKeyCheck(t.Context()); err != nil || string(got) != "record-2" {
			t.Errorf("GetKeyCheck = %q, %v; want %q", got, err, "record-2")
		}
		// CreateKeyCheck still keeps what is stored.
		if got, err := s.CreateKeyCheck(t.Context(), []byte("record-4")); err != nil || string(got) != "record-2" {
			t.Errorf("CreateKeyCheck after a replace = %q, %v; want the stored %q", got, err, "record-2")
		}
	}},
	{"KeyCheckAbsentIsConflict", func(t *testing.T, s neostore.Store) {
		err := s.ReplaceKeyCheck(t.Context(), []byte("record"), []byte("new"))
		wantCode(t, "ReplaceKeyCheck on a new store", err, neostore.ECONFLICT)
		_, err = s.GetKeyCheck(t.Context())
		wantCode(t, "GetKeyCheck after a failed replace", err, neostore.ENOTFOUND)
	}},
	{"KeyCheckRacingSwapsOneWinner", func(t *testing.T, s neostore.Store) {
		if _, err := s.CreateKeyCheck(t.Context(), []byte("old")); err != nil {
			t.Fatal(err)
		}
		winners := race(t, 16, func(i int) error {
			return s.ReplaceKeyCheck(t.Context(), []byte("old"), []byte{byte(i)})
		})
		if len(winners) != 1 {
			t.Fatalf("%d swaps from the same old record succeeded, want exactly 1", len(winners))
		}
		if got, err := s.GetKeyCheck(t.Context()); err != nil || !bytes.Equal(got, []byte{byte(winners[0])}) {
			t.Errorf("GetKeyCheck = %x, %v; want the winner's %x", got, err, winners[0])
		}
	}},
	{"AuditKeySwaps", func(t *testing.T, s neostore.Store) {
		r := s
		err := r.ReplaceAuditKey(t.Context(), []byte("wrapped-1"), []byte("wrapped-2"))
		wantCode(t, "ReplaceAuditKey on a new store", err, neostore.ECONFLICT)
		if _, err := s.CreateAuditKey(t.Context(), []byte("wrapped-1")); err != nil {
			t.Fatal(err)
		}
		if err := r.ReplaceAuditKey(t.Context(), []byte("wrapped-1"), []byte("wrapped-2")); err != nil {
			t.Fatalf("ReplaceAuditKey from the stored key: %v", err)
		}
		err = r.ReplaceAuditKey(t.Context(), []byte("wrapped-1"), []byte("wrapped-3"))
		wantCode(t, "ReplaceAuditKey from a stale key", err, neostore.ECONFLICT)
		if got, err := s.GetAuditKey(t.Context()); err != nil || string(got) != "wrapped-2" {
			t.Errorf("GetAuditKey = %q, %v; want %q", got, err, "wrapped-2")
		}
	}},
	{"SecretSwaps", func(t *testing.T, s neostore.Store) {
		mustPut(t, s, "tenant", "k", neostore.SealedSecret{
			Ciphertext: []byte("sealed-old"),
			Validity:   neostore.Validity{NotBefore: neostore.At(t1), ExpiresOn: neostore.At(t2)},
		})
		mustPut(t, s, "tenant", "neighbour", neostore.SealedSecret{Ciphertext: []byte("n")})
		want := neostore.SealedSecret{
			Ciphertext: []byte("sealed-new, a different length"),
			Validity:   neostore.Validity{NotBefore: neostore.At(t1), ExpiresOn: neostore.At(t2)},
		}
		if err := s.ReplaceSecret(t.Context(), "tenant", "k", []byte("sealed-old"), want); err != nil {
			t.Fatalf("ReplaceSecret from the stored ciphertext: %v", err)
		}
		checkSecret(t, mustGet(t, s, "tenant", "k"), want)
		checkSecret(t, mustGet(t, s, "tenant", "neighbour"), neostore.SealedSecret{Ciphertext: []byte("n")})
		if got := mustList(t, s, "tenant"); len(got) != 2 {
			t.Errorf("ListSecretKeys = %q, want the two keys", got)
		}
	}},
	{"SecretReplacesWindowToo", func(t *testing.T, s neostore.Store) {
		mustPut(t, s, "tenant", "k", neostore.SealedSecret{Ciphertext: []byte("old"), Validity: neostore.Validity{NotBefore: neostore.At(t1)}})
		want := neostore.SealedSecret{Ciphertext: []byte("new"), Validity: neostore.Validity{ExpiresOn: neostore.At(maxTime)}}
		if err := s.ReplaceSecret(t.Context(), "tenant", "k", []byte("old"), want); err != nil {
			t.Fatal(err)
		}
		checkSecret(t, mustGet(t, s, "tenant", "k"), want)
	}},
	{"SecretConflictAfterConcurrentPut", func(t *testing.T, s neostore.Store) {
		mustPut(t, s, "tenant", "k", neostore.SealedSecret{Ciphertext: []byte("old")})
		theirs := neostore.SealedSecret{Ciphertext: []byte("written by a client"), Validity: neostore.Validity{ExpiresOn: neostore.At(t2)}}
		mustPut(t, s, "tenant", "k", theirs)
		err := s.ReplaceSecret(t.Context(), "tenant", "k", []byte("old"), neostore.SealedSecret{Ciphertext: []byte("resealed")})
		wantCode(t, "ReplaceSecret after a concurrent put", err, neostore.ECONFLICT)
		checkSecret(t, mustGet(t, s, "tenant", "k"), theirs)
	}},
	{"SecretConflictAfterConcurrentDelete", func(t *testing.T, s neostore.Store) {
		mustPut(t, s, "tenant", "k", neostore.SealedSecret{Ciphertext: []byte("old")})
		mustPut(t, s, "tenant", "other", neostore.SealedSecret{Ciphertext: []byte("o")})
		if err := s.DeleteSecret(t.Context(), "tenant", "k", neostore.Change{}); err != nil {
			t.Fatal(err)
		}
		err := s.ReplaceSecret(t.Context(), "tenant", "k", []byte("old"), neostore.SealedSecret{Ciphertext: []byte("resealed")})
		wantCode(t, "ReplaceSecret after a concurrent delete", err, neostore.ECONFLICT)
		_, err = s.GetSecret(t.Context(), "tenant", "k")
		wantCode(t, "GetSecret: a failed replace must not resurrect the secret", err, neostore.ENOTFOUND)
		if got := mustList(t, s, "tenant"); len(got) != 1 || got[0] != "other" {
			t.Errorf("ListSecretKeys = %q, want [other]", got)
		}
	}},
	{"SecretAbsentIsConflict", func(t *testing.T, s neostore.Store) {
		err := s.ReplaceSecret(t.Context(), "nobody", "k", []byte("old"), neostore.SealedSecret{Ciphertext: []byte("new")})
		wantCode(t, "ReplaceSecret in an unknown tenant", err, neostore.ECONFLICT)
		if got := mustList(t, s, "nobody"); len(got) != 0 {
			t.Errorf("ListSecretKeys = %q after a failed replace, want none", got)
		}
		if tenants, err := s.ListTenants(t.Context()); err != nil || len(tenants) != 0 {
			t.Errorf("ListTenants = %q, %v after a failed replace, want none", tenants, err)
		}
	}},
	{"SecretRacingSwapsOneWinner", func(t *testing.T, s neostore.Store) {
		mustPut(t, s, "tenant", "k", neostore.SealedSecret{Ciphertext: []byte("old")})
		winners := race(t, 16, func(i int) error {
			return s.ReplaceSecret(t.Context(), "tenant", "k", []byte("old"), neostore.SealedSecret{Ciphertext: fmt.Appendf(nil, "new-%02d", i)})
		})
		if len(winners) != 1 {
			t.Fatalf("%d swaps from the same old ciphertext succeeded, want exactly 1", len(winners))
		}
		checkSecret(t, mustGet(t, s, "tenant", "k"), neostore.SealedSecret{Ciphertext: fmt.Appendf(nil, "new-%02d", winners[0])})
	}},
	{"SecretSwapsAmongConcurrentPuts", func(t *testing.T, s neostore.Store) {
		// Swaps of some keys share commits with puts of others: a lost
		// comparison must not fail or undo the writes it shares a
		// transaction with.
		const n = 24
		for i := range n {
			mustPut(t, s, "tenant", fmt.Sprintf("k%02d", i), neostore.SealedSecret{Ciphertext: fmt.Appendf(nil, "old-%02d", i)})
		}
		var wg sync.WaitGroup
		for i := range n {
			key := fmt.Sprintf("k%02d", i)
			wg.Go(func() {
				if i%2 == 0 {
					if err := s.PutSecret(t.Context(), "tenant", key, neostore.SealedSecret{Ciphertext: fmt.Appendf(nil, "put-%02d", i)}, neostore.Change{}); err != nil {
						t.Errorf("PutSecret(%s): %v", key, err)
					}
					return
				}
				old := fmt.Appendf(nil, "old-%02d", i)
				if i%4 == 3 {
					old = []byte("stale") // loses
				}
				err := s.ReplaceSecret(t.Context(), "tenant", key, old, neostore.SealedSecret{Ciphertext: fmt.Appendf(nil, "swapped-%02d", i)})
				if i%4 == 3 {
					wantCode(t, "ReplaceSecret from a stale ciphertext", err, neostore.ECONFLICT)
				} else if err != nil {
					t.Errorf("ReplaceSecret(%s): %v", key, err)
				}
			})
		}
		wg.Wait()
		for i := range n {
			want := fmt.Sprintf("swapped-%02d", i)
			switch {
			case i%2 == 0:
				want = fmt.Sprintf("put-%02d", i)
			case i%4 == 3:
				want = fmt.Sprintf("old-%02d", i)
			}
			checkSecret(t, mustGet(t, s, "tenant", fmt.Sprintf("k%02d", i)), neostore.SealedSecret{Ciphertext: []byte(want)})
		}
	}},
	{"SecretNotAliased", func(t *testing.T, s neostore.Store) {
		mustPut(t, s, "tenant", "k", neostore.SealedSecret{Ciphertext: []byte("old")})
		in := []byte("resealed")
		if err := s.ReplaceSecret(t.Context(), "tenant", "k", []byte("old"), neostore.SealedSecret{Ciphertext: in}); err != nil {
			t.Fatal(err)
		}
		copy(in, "XXXXXXXX")
		checkSecret(t, mustGet(t, s, "tenant", "k"), neostore.SealedSecret{Ciphertext: []byte("resealed")})
	}},
}

func mustCreateTenantKey(t *testing.T, s neostore.Store, tenant string, wrapped []byte) {
	t.Helper()
	if _, err := s.CreateTenantKey(t.Context(), tenant, wrapped); err != nil {
		t.Fatalf("CreateTenantKey(%q): %v", tenant, err)
	}
}

func wantTenantKey(t *testing.T, s neostore.Store, tenant, want string) {
	t.Helper()
	got, err := s.GetTenantKey(t.Context(), tenant)
	if err != nil || string(got) != want {
		t.Errorf("GetTenantKey(%q) = %q, %v; want %q", tenant, got, err, want)
	}
}

// race runs swap(0..n-1) at once and returns the indexes whose swap
// succeeded; every other one must have failed with ECONFLICT.
func race(t *testing.T, n int, swap func(i int) error) []int {
	t.Helper()
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = swap(i)
		})
	}
	close(start)
	wg.Wait()
	var winners []int
	for i, err := range errs {
		if err == nil {
			winners = append(winners, i)
		} else if code := neostore.ErrorCode(err); code != neostore.ECONFLICT {
			t.Errorf("swap %d: error code %q (err %v), want %q", i, code, err, neostore.ECONFLICT)
		}
	}
	return winners
}
