package storetest

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/neostore/neostore-secrets"
)

// The cases of tenant data keys and the key-check record.

var tenantKeyCases = []testCase{
	{"ListTenants", func(t *testing.T, s neostore.Store) {
		got, err := s.ListTenants(t.Context())
		if err != nil || got == nil || len(got) != 0 {
			t.Fatalf("ListTenants on a new store = %q, %v; want an empty non-nil slice", got, err)
		}
		// A tenant counts once it has a data key or a secret, and still
		// counts after its last secret is deleted while its key remains.
		if _, err := s.CreateTenantKey(t.Context(), "b", []byte("wrapped")); err != nil {
			t.Fatal(err)
		}
		mustPut(t, s, "a-b", "k", neostore.SealedSecret{Ciphertext: []byte("c")})
		mustPut(t, s, "B", "k", neostore.SealedSecret{Ciphertext: []byte("c")})
		if _, err := s.CreateTenantKey(t.Context(), "B", []byte("wrapped")); err != nil {
			t.Fatal(err)
		}
		mustPut(t, s, "b", "k", neostore.SealedSecret{Ciphertext: []byte("c")})
		if err := s.DeleteSecret(t.Context(), "b", "k", neostore.Change{}); err != nil {
			t.Fatal(err)
		}
		got, err = s.ListTenants(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"B", "a-b", "b"}; !slices.Equal(got, want) {
			t.Errorf("ListTenants = %q, want %q", got, want)
		}
	}},
	{"GetAbsent", func(t *testing.T, s neostore.Store) {
		_, err := s.GetTenantKey(t.Context(), "tenant")
		wantCode(t, "GetTenantKey", err, neostore.ENOTFOUND)
	}},
	{"CreateThenGet", func(t *testing.T, s neostore.Store) {
		wrapped := patterned(80)
		got, err := s.CreateTenantKey(t.Context(), "tenant", wrapped)
		if err != nil {
			t.Fatalf("CreateTenantKey: %v", err)
		}
		if !bytes.Equal(got, wrapped) {
			t.Errorf("CreateTenantKey = %x, want %x", got, wrapped)
		}
		stored, err := s.GetTenantKey(t.Context(), "tenant")
		if err != nil {
			t.Fatalf("GetTenantKey: %v", err)
		}
		if !bytes.Equal(stored, wrapped) {
			t.Errorf("GetTenantKey = %x, want %x", stored, wrapped)
		}
		_, err = s.GetTenantKey(t.Context(), "tenant-2")
		wantCode(t, "GetTenantKey of another tenant", err, neostore.ENOTFOUND)
	}},
	{"CreateTwiceReturnsFirst", func(t *testing.T, s neostore.Store) {
		first, second := []byte("first-wrapped-key"), []byte("second-wrapped-key")
		if _, err := s.CreateTenantKey(t.Context(), "tenant", first); err != nil {
			t.Fatalf("CreateTenantKey: %v", err)
		}
		got, err := s.CreateTenantKey(t.Context(), "tenant", second)
		if err != nil {
			t.Fatalf("second CreateTenantKey: %v", err)
		}
		if !bytes.Equal(got, first) {
			t.Errorf("second CreateTenantKey = %q, want the first %q", got, first)
		}
		stored, err := s.GetTenantKey(t.Context(), "tenant")
		if err != nil {
			t.Fatalf("GetTenantKey: %v", err)
		}
		if !bytes.Equal(stored, first) {
			t.Errorf("GetTenantKey = %q, want %q", stored, first)
		}
	}},
	{"ConcurrentCreateOneWinner", func(t *testing.T, s neostore.Store) {
		const callers = 32
		results := make([][]byte, callers)
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() {
				got, err := s.CreateTenantKey(t.Context(), "tenant", fmt.Appendf(nil, "candidate-%02d", i))
				if err != nil {
					t.Errorf("CreateTenantKey #%d: %v", i, err)
				}
				results[i] = got
			})
		}
		wg.Wait()
		winner := results[0]
		if !bytes.HasPrefix(winner, []byte("candidate-")) {
			t.Fatalf("CreateTenantKey returned %q, not a candidate", winner)
		}
		for i, got := range results {
			if !bytes.Equal(got, winner) {
				t.Errorf("caller %d got %q, caller 0 got %q: want one winner", i, got, winner)
			}
		}
		stored, err := s.GetTenantKey(t.Context(), "tenant")
		if err != nil {
			t.Fatalf("GetTenantKey: %v", err)
		}
		if !bytes.Equal(stored, winner) {
			t.Errorf("GetTenantKey = %q, want the winner %q", stored, winner)
		}
	}},
	{"NotAliased", func(t *testing.T, s neostore.Store) {
		in := []byte("wrapped")
		out, err := s.CreateTenantKey(t.Context(), "tenant", in)
		if err != nil {
			t.Fatalf("CreateTenantKey: %v", err)
		}
		copy(in, "XXXXXXX")
		copy(out, "YYYYYYY")
		got, err := s.GetTenantKey(t.Context(), "tenant")
		if err != nil {
			t.Fatalf("GetTenantKey: %v", err)
		}
		copy(got, "ZZZZZZZ")
		got, err = s.GetTenantKey(t.Context(), "tenant")
		if err != nil {
			t.Fatalf("GetTenantKey: %v", err)
		}
		if string(got) != "wrapped" {
			t.Errorf("GetTenantKey = %q after mutating slices passed in and out, want %q", got, "wrapped")
		}
	}},
}

var keyCheckCases = []testCase{
	{"Absent", func(t *testing.T, s neostore.Store) {
		_, err := s.GetKeyCheck(t.Context())
		wantCode(t, "GetKeyCheck on a new store", err, neostore.ENOTFOUND)
	}},
	{"CreateThenGet", func(t *testing.T, s neostore.Store) {
		want := patterned(60)
		stored, err := s.CreateKeyCheck(t.Context(), want)
		if err != nil {
			t.Fatalf("CreateKeyCheck: %v", err)
		}
		if !bytes.Equal(stored, want) {
			t.Errorf("CreateKeyCheck returned %x, want %x", stored, want)
		}
		got, err := s.GetKeyCheck(t.Context())
		if err != nil {
			t.Fatalf("GetKeyCheck: %v", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("GetKeyCheck = %x, want %x", got, want)
		}
	}},
	{"CreateKeepsFirst", func(t *testing.T, s neostore.Store) {
		for _, rec := range []string{"first record", "second"} {
			stored, err := s.CreateKeyCheck(t.Context(), []byte(rec))
			if err != nil {
				t.Fatalf("CreateKeyCheck: %v", err)
			}
			if string(stored) != "first record" {
				t.Errorf("CreateKeyCheck(%q) returned %q, want the first record", rec, stored)
			}
		}
		got, err := s.GetKeyCheck(t.Context())
		if err != nil {
			t.Fatalf("GetKeyCheck: %v", err)
		}
		if string(got) != "first record" {
			t.Errorf("GetKeyCheck = %q, want %q", got, "first record")
		}
	}},
	{"ConcurrentCreateOneWinner", func(t *testing.T, s neostore.Store) {
		var wg sync.WaitGroup
		results := make([][]byte, 16)
		for i := range results {
			wg.Go(func() {
				stored, err := s.CreateKeyCheck(t.Context(), []byte{byte(i)})
				if err != nil {
					t.Errorf("CreateKeyCheck: %v", err)
				}
				results[i] = stored
			})
		}
		wg.Wait()
		for i, r := range results {
			if !bytes.Equal(r, results[0]) {
				t.Errorf("writer %d got %x, writer 0 got %x: two winners", i, r, results[0])
			}
		}
	}},
}

// API-key times are whole microseconds: PostgreSQL's timestamptz keeps no
