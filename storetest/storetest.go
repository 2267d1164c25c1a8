// Package storetest is the conformance suite of neostore.Store: every store
// implementation runs it against its real engine, so that the embedded and
// the PostgreSQL stores behave the same to the layers above them.
package storetest

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets"
)

// Run runs every conformance case as a subtest of t. Each case calls open
// for a fresh, empty store. open must register its own cleanup with
// t.Cleanup; a case may Close the store itself, so that cleanup must accept
// a store that is already closed.
func Run(t *testing.T, open func(t *testing.T) neostore.Store) {
	groups := []struct {
		name  string
		cases []testCase
	}{
		{"PutSecret", putSecretCases},
		{"GetSecret", getSecretCases},
		{"DeleteSecret", deleteSecretCases},
		{"Change", changeCases},
		{"ListSecretKeys", listSecretKeysCases},
		{"ListSecretKeysAfter", listSecretKeysAfterCases},
		{"Tenants", tenantCases},
		{"Concurrency", concurrencyCases},
		{"TenantKey", tenantKeyCases},
		{"KeyCheck", keyCheckCases},
		{"Replace", replaceCases},
		{"APIKey", apiKeyCases},
		{"AuditState", auditStateCases},
		{"Store", storeCases},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, c := range g.cases {
				t.Run(c.name, func(t *testing.T) {
					c.fn(t, open(t))
				})
			}
		})
	}
}

type testCase struct {
	name string
	fn   func(t *testing.T, s neostore.Store)
}

// Fixed instants used across the cases. Bounds are UTC, with nanoseconds, as
// the API layer hands them down.
var (
	minTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
	t1      = time.Date(2025, 3, 1, 12, 34, 56, 123456789, time.UTC)
	t2      = time.Date(2026, 7, 4, 8, 0, 0, 1, time.UTC)
)

var putSecretCases = []testCase{
	{"RoundTrip", func(t *testing.T, s neostore.Store) {
		tests := []struct {
			name       string
			ciphertext []byte
			validity   neostore.Validity
		}{
			{"NoValidity", []byte("sealed"), neostore.Validity{}},
			{"NotBeforeOnly", []byte{0x00, 0x01, 0xff}, neostore.Validity{NotBefore: neostore.At(t1)}},
			{"ExpiresOnOnly", []byte{0xff}, neostore.Validity{ExpiresOn: neostore.At(t2)}},
			{"BothBounds", bytes.Repeat([]byte{0xa5}, 300), neostore.Validity{NotBefore: neostore.At(t1), ExpiresOn: neostore.At(t2)}},
			// A Bound set to the zero instant is still set: storage must not
			// mistake year 1 for "no bound".
			{"YearOneIsSet", []byte("y1"), neostore.Validity{NotBefore: neostore.At(minTime)}},
			{"Year9999Nanoseconds", []byte("y9999"), neostore.Validity{ExpiresOn: neostore.At(maxTime)}},
			{"FullRange", []byte("full"), neostore.Validity{NotBefore: neostore.At(minTime), ExpiresOn: neostore.At(maxTime)}},
			{"NonUTCInput", []byte("tz"), neostore.Validity{
				NotBefore: neostore.Bound{At: t1.In(time.FixedZone("UTC+5", 5*3600)), Set: true},
			}},
			{"ZeroBytesInside", []byte{0, 0, 0, 0}, neostore.Validity{}},
			{"Large", patterned(64 << 10), neostore.Validity{ExpiresOn: neostore.At(t2)}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				key := "key-" + tt.name
				want := neostore.SealedSecret{Ciphertext: tt.ciphertext, Validity: tt.validity}
				mustPut(t, s, "tenant", key, want)
				got := mustGet(t, s, "tenant", key)
				checkSecret(t, got, want)
			})
		}
	}},
	{"ReplacesValue", func(t *testing.T, s neostore.Store) {
		mustPut(t, s, "tenant", "k", neostore.SealedSecret{Ciphertext: []byte("first")})
		want := neostore.SealedSecret{Ciphertext: []byte("second, longer than the first")}
		mustPut(t, s, "tenant", "k", want)
		checkSecret(t, mustGet(t, s, "tenant", "k"), want)
		if got := mustList(t, s, "tenant"); !slices.Equal(got, []string{"k"}) {
			t.Errorf("ListSecretKeys = %q, want [\"k\"]", got)
		}
	}},
	{"WithoutValidityClearsWindow", func(t *testing.T, s neostore.Store) {
		mustPut(t, s, "tenant", "k", neostore.SealedSecret{
			Ciphertext: []byte("v1"),
			Validity:   neostore.Validity{NotBefore: neostore.At(t1), ExpiresOn: neostore.At(t2)},
		})
		want := neostore.SealedSecret{Ciphertext: []byte("v2")}
		mustPut(t, s, "tenant", "k", want)
		got := mustGet(t, s, "tenant", "k")
		checkSecret(t, got, want)
		if got.Validity.NotBefore.Set || got.Validity.ExpiresOn.Set {
			t.Errorf("Validity = %+v, want the previous window cleared", got.Validity)
		}
	}},
	{"ReplacesWindow", func(t *testing.T, s neostore.Store) {
		mustPut(t, s, "tenant", "k", neostore.SealedSecret{
			Ciphertext: []byte("v1"),
			Validity:   neostore.Validity{NotBefore: neostore.At(t1)},
		})
		want := neostore.SealedSecret{Ciphertext: []byte("v2"), Validity: neostore.Validity{ExpiresOn: neostore.At(t2)}}
		mustPut(t, s, "tenant", "k", want)
		checkSecret(t, mustGet(t, s, "tenant", "k"), want)
	}},
	{"InputNotAliased", func(t *testing.T, s neostore.Store) {
		in := []byte("original")
		mustPut(t, s, "tenant", "k", neostore.SealedSecret{Ciphertext: in})
		copy(in, "XXXXXXXX")
		if got := mustGet(t, s, "tenant", "k"); string(got.Ciphertext) != "original" {
			t.Errorf("after mutating the slice given to PutSecret, GetSecret = %q, want %q", got.Ciphertext, "original")
		}
	}},
}

var getSecretCases = []testCase{
	{"Absent", func(t *testing.T, s neostore.Store) {
		mustPut(t, s, "tenant", "present", neostore.SealedSecret{Ciphertext: []byte("v")})
		tests := []struct{ name, tenant, key string }{
			{"KeyInKnownTenant", "tenant", "absent"},
			{"UnknownTenant", "other", "present"},
			{"CaseDiffers", "tenant", "Present"},
			{"Prefix", "tenant", "pres"},
			{"Extension", "tenant", "present-2"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := s.GetSecret(t.Context(), tt.tenant, tt.key)
				wantCode(t, "GetSecret", err, neostore.ENOTFOUND)
			})
		}
	}},
	{"ResultNotAliased", func(t *testing.T, s neostore.Store) {
		mustPut(t, s, "tenant", "k", neostore.SealedSecret{Ciphertext: []byte("original")})
		got := mustGet(t, s, "tenant", "k")
		copy(got.Ciphertext, "XXXXXXXX")
		if again := mustGet(t, s, "tenant", "k"); string(again.Ciphertext) != "original" {
			t.Errorf("after mutating a GetSecret result, GetSecret = %q, want %q", again.Ciphertext, "original")
		}
	}},
}

var deleteSecretCases = []testCase{
	{"Removes", func(t *testing.T, s neostore.Store) {
		mustPut(t, s, "tenant", "keep", neostore.SealedSecret{Ciphertext: []byte("k")})
		mustPut(t, s, "tenant", "gone", neostore.SealedSecret{Ciphertext: []byte("g")})
		if err := s.DeleteSecret(t.Context(), "tenant", "gone", neostore.Change{}); err != nil {
			t.Fatalf("DeleteSecret: %v", err)
		}
		_, err := s.GetSecret(t.Context(), "tenant", "gone")
		wantCode(t, "GetSecret after DeleteSecret", err, neostore.ENOTFOUND)
		if got := mustList(t, s, "tenant"); !slices.Equal(got, []string{"keep"}) {
			t.Errorf("ListSecretKeys = %q, want [\"keep\"]", got)
		}
		checkSecret(t, mustGet(t, s, "tenant", "keep"), neostore.SealedSecret{Ciphertext: []byte("k")})
	}},
	{"Absent", func(t *testing.T, s neostore.Store) {
		mustPut(t, s, "tenant", "present", neostore.SealedSecret{Ciphertext: []byte("v")})
		if err := s.DeleteSecret(t.Context(), "tenant", "absent", neostore.Change{}); err != nil {
			t.Errorf("DeleteSecret of an absent key = %v, want nil", err)
		}
		if err := s.DeleteSecret(t.Context(), "unknown-tenant", "present", neostore.Change{}); err != nil {
			t.Errorf("DeleteSecret in an unknown tenant = %v, want nil", err)
		}
		if got := mustList(t, s, "tenant"); !slices.Equal(got, []string{"present"}) {
			t.Errorf("ListSecretKeys = %q, want [\"present\"]", got)
		}
	}},
	{"Twice", func(t *testing.T, s neostore.Store) {
		mustPut(t, s, "tenant", "k", neostore.SealedSecret{Ciphertext: []byte("v")})
		for i := range 2 {
			if err := s.DeleteSecret(t.Context(), "tenant", "k", neostore.Change{}); err != nil {
				t.Errorf("DeleteSecret #%d = %v, want nil", i+1, err)
			}
		}
	}},
	{"LastKeyThenPutAgain", func(t *testing.T, s neostore.Store) {
		mustPut(t, s, "tenant", "k", neostore.SealedSecret{Ciphertext: []byte("v1")})
		if err := s.DeleteSecret(t.Context(), "tenant", "k", neostore.Change{}); err != nil {
			t.Fatalf("DeleteSecret: %v", err)
		}
		if got := mustList(t, s, "tenant"); got == nil || len(got) != 0 {
			t.Errorf("ListSecretKeys after deleting the last key = %#v, want an empty non-nil slice", got)
		}
		want := neostore.SealedSecret{Ciphertext: []byte("v2")}
		mustPut(t, s, "tenant", "k", want)
		checkSecret(t, mustGet(t, s, "tenant", "k"), want)
		if got := mustList(t, s, "tenant"); !slices.Equal(got, []string{"k"}) {
			t.Errorf("ListSecretKeys = %q, want [\"k\"]", got)
		}
	}},
}

var listSecretKeysCases = []testCase{
	{"OrdinalByteOrder", func(t *testing.T, s neostore.Store) {
		// Byte order, not collation: upper case before lower case, '-'
		// (0x2d) before digits, and names differing only in case are two
		// keys.
		want := []string{"1", "10", "2", "A", "B", "Db-Password", "Z", "a", "a-b", "a0", "ab", "b", "db-password", "z"}
		insert := slices.Clone(want)
		slices.Reverse(insert)
		insert[0], insert[len(insert)/2] = insert[len(insert)/2], insert[0]
		for _, k := range insert {
			mustPut(t, s, "tenant", k, neostore.SealedSecret{Ciphertext: []byte("v-" + k)})
		}
		got := mustList(t, s, "tenant")
		if !slices.Equal(got, want) {
			t.Errorf("ListSecretKeys =\n%q\nwant\n%q", got, want)
		}
		checkSecret(t, mustGet(t, s, "tenant", "Db-Password"), neostore.SealedSecret{Ciphertext: []byte("v-Db-Password")})
		checkSecret(t, mustGet(t, s, "tenant", "db-password"), neostore.SealedSecret{Ciphertext: []byte("v-db-password")})
	}},
	{"MaxLengthKey", func(t *testing.T, s neostore.Store) {
		long := strings.Repeat("k", neostore.MaxKeyNameLength)
		tenant := strings.Repeat("t", neostore.MaxTenantIDLength)
		want := neostore.SealedSecret{Ciphertext: []byte("v")}
		mustPut(t, s, tenant, long, want)
		checkSecret(t, mustGet(t, s, tenant, long), want)
		if got := mustList(t, s, tenant); !slices.Equal(got, []string{long}) {
			t.Errorf("ListSecretKeys = %q, want the one long key", got)
		}
	}},
	{"EmptyTenant", func(t *testing.T, s neostore.Store) {
		got, err := s.ListSecretKeys(t.Context(), "nobody")
		if err != nil {
			t.Fatalf("ListSecretKeys: %v", err)
		}
		if got == nil || len(got) != 0 {
			t.Errorf("ListSecretKeys of an unknown tenant = %#v, want an empty non-nil slice", got)
		}
	}},
}

// listAll lists tenant in chunks of n with ListSecretKeysAfter, as
// neostore.SecretService.ListEach does, and returns the keys and the size
// of each chunk.
func listAll(t *testing.T, s neostore.Store, tenant string, n int) (keys []string, chunks []int) {
	t.Helper()
	after := ""
	for range 100_000 { // a bound: a store that never ends fails the case
		got, err := s.ListSecretKeysAfter(t.Context(), tenant, after, n)
		if err != nil {
			t.Fatalf("ListSecretKeysAfter(%q, %q, %d): %v", tenant, after, n, err)
		}
		if got == nil {
			t.Fatalf("ListSecretKeysAfter(%q, %q, %d) = nil, want a non-nil slice", tenant, after, n)
		}
		if len(got) > n {
			t.Fatalf("ListSecretKeysAfter(%q, %q, %d) returned %d keys", tenant, after, n, len(got))
		}
		keys, chunks = append(keys, got...), append(chunks, len(got))
		if len(got) < n {
			return keys, chunks
		}
		after = got[len(got)-1]
	}
	t.Fatalf("ListSecretKeysAfter(%q) did not end", tenant)
	return nil, nil
}

// putKeys stores keys under tenant, several at once so that stores that
// batch commits are quick.
func putKeys(t *testing.T, s neostore.Store, tenant string, keys []string) {
	t.Helper()
	var wg sync.WaitGroup
	next := make(chan string)
	for range 8 {
		wg.Go(func() {
			for k := range next {
				if err := s.PutSecret(t.Context(), tenant, k, neostore.SealedSecret{Ciphertext: []byte("v")}, neostore.Change{}); err != nil {
					t.Errorf("PutSecret(%q): %v", k, err)
				}
			}
		})
	}
	for _, k := range keys {
		next <- k
	}
	close(next)
	wg.Wait()
}

var listSecretKeysAfterCases = []testCase{
	{"ChunkBoundaries", func(t *testing.T, s neostore.Store) {
		want := []string{"1", "10", "2", "A", "B", "Db-Password", "Z", "a", "a-b", "a0", "ab", "b", "db-password", "z"}
		putKeys(t, s, "tenant", want)
		mustPut(t, s, "other", "0", neostore.SealedSecret{Ciphertext: []byte("v")})
		for _, n := range []int{1, 2, 3, 7, 13, 14, 15, 1000} {
			keys, chunks := listAll(t, s, "tenant", n)
			if !slices.Equal(keys, want) {
				t.Errorf("chunks of %d: keys =\n%q\nwant\n%q", n, keys, want)
			}
			// Every chunk is full but the last, which may be empty.
			wantChunks := len(want)/n + 1
			if len(chunks) != wantChunks || chunks[len(chunks)-1] != len(want)%n {
				t.Errorf("chunks of %d: sizes %v, want %d chunks, the last of %d", n, chunks, wantChunks, len(want)%n)
			}
		}
	}},
	{"AfterAnAbsentKey", func(t *testing.T, s neostore.Store) {
		putKeys(t, s, "tenant", []string{"a", "c", "e"})
		tests := []struct {
			after string
			want  []string
		}{
			{"", []string{"a", "c", "e"}},
			{"a", []string{"c", "e"}},
			{"b", []string{"c", "e"}},
			{"c-", []string{"e"}},
			{"e", []string{}},
			{"z", []string{}},
			{"A", []string{"a", "c", "e"}}, // upper case sorts first
		}
		for _, tt := range tests {
			got, err := s.ListSecretKeysAfter(t.Context(), "tenant", tt.after, 10)
			if err != nil {
				t.Fatalf("ListSecretKeysAfter(%q): %v", tt.after, err)
			}
			if got == nil || !slices.Equal(got, tt.want) {
				t.Errorf("ListSecretKeysAfter(%q) = %#v, want %q", tt.after, got, tt.want)
			}
		}
	}},
	{"EmptyTenant", func(t *testing.T, s neostore.Store) {
		got, err := s.ListSecretKeysAfter(t.Context(), "nobody", "", 10)
		if err != nil {
			t.Fatalf("ListSecretKeysAfter: %v", err)
		}
		if got == nil || len(got) != 0 {
			t.Errorf("ListSecretKeysAfter of an unknown tenant = %#v, want an empty non-nil slice", got)
		}
	}},
	{"MaxLengthKeys", func(t *testing.T, s neostore.Store) {
		tenant := strings.Repeat("t", neostore.MaxTenantIDLength)
		want := []string{strings.Repeat("k", neostore.MaxKeyNameLength-1) + "a", strings.Repeat("k", neostore.MaxKeyNameLength)}
		putKeys(t, s, tenant, want)
		if keys, _ := listAll(t, s, tenant, 1); !slices.Equal(keys, want) {
			t.Errorf("keys = %q, want %q", keys, want)
		}
	}},
	// Writers during a chunked listing: nothing fails, the order holds,
	// and every key stored throughout is listed exactly once.
	{"ConcurrentPutAndDelete", func(t *testing.T, s neostore.Store) {
		var stable []string
		for i := range 300 {
			stable = append(stable, fmt.Sprintf("s%04d", i))
		}
		putKeys(t, s, "tenant", stable)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := fmt.Sprintf("s%04d-churn", i%300)
				if err := s.PutSecret(t.Context(), "tenant", k, neostore.SealedSecret{Ciphertext: []byte("v")}, neostore.Change{}); err != nil {
					t.Errorf("PutSecret: %v", err)
					return
				}
				if i%2 == 0 {
					if err := s.DeleteSecret(t.Context(), "tenant", k, neostore.Change{}); err != nil {
						t.Errorf("DeleteSecret: %v", err)
						return
					}
				}
			}
		})
		for range 5 {
			keys, _ := listAll(t, s, "tenant", 7)
			if !slices.IsSorted(keys) || len(slices.Compact(slices.Clone(keys))) != len(keys) {
				t.Errorf("a chunked listing is not strictly ascending")
			}
			got := slices.DeleteFunc(keys, func(k string) bool { return strings.HasSuffix(k, "-churn") })
			if !slices.Equal(got, stable) {
				t.Errorf("a chunked listing under writes has %d of the %d stable keys", len(got), len(stable))
			}
		}
		close(stop)
		wg.Wait()
	}},
}

var tenantCases = []testCase{
	{"SameKeyTwoTenants", func(t *testing.T, s neostore.Store) {
		one := neostore.SealedSecret{Ciphertext: []byte("one"), Validity: neostore.Validity{NotBefore: neostore.At(t1)}}
		two := neostore.SealedSecret{Ciphertext: []byte("two"), Validity: neostore.Validity{ExpiresOn: neostore.At(t2)}}
		mustPut(t, s, "t1", "k", one)
		mustPut(t, s, "t2", "k", two)
		checkSecret(t, mustGet(t, s, "t1", "k"), one)
		checkSecret(t, mustGet(t, s, "t2", "k"), two)

		if err := s.DeleteSecret(t.Context(), "t1", "k", neostore.Change{}); err != nil {
			t.Fatalf("DeleteSecret: %v", err)
		}
		_, err := s.GetSecret(t.Context(), "t1", "k")
		wantCode(t, "GetSecret in the tenant deleted from", err, neostore.ENOTFOUND)
		checkSecret(t, mustGet(t, s, "t2", "k"), two)
		if got := mustList(t, s, "t2"); !slices.Equal(got, []string{"k"}) {
			t.Errorf("ListSecretKeys(t2) = %q, want [\"k\"]", got)
		}
	}},
	{"PrefixConfusion", func(t *testing.T, s neostore.Store) {
		// Tenant ids that are prefixes of one another, and tenant/key pairs
		// whose concatenations collide ("a"+"b-x" and "a-b"+"x"), must stay
		// apart.
		puts := []struct{ tenant, key string }{
			{"a", "b-x"},
			{"a", "k"},
			{"a-b", "x"},
			{"a-b", "k"},
			{"ab", "k"},
			{"a_b", "k"},
			{"A", "k"},
			{"a0", "k"},
		}
		for _, p := range puts {
			mustPut(t, s, p.tenant, p.key, neostore.SealedSecret{Ciphertext: []byte(p.tenant + "/" + p.key)})
		}
		for _, p := range puts {
			checkSecret(t, mustGet(t, s, p.tenant, p.key), neostore.SealedSecret{Ciphertext: []byte(p.tenant + "/" + p.key)})
		}
		lists := map[string][]string{
			"a":   {"b-x", "k"},
			"a-b": {"k", "x"},
			"ab":  {"k"},
			"a_b": {"k"},
			"A":   {"k"},
			"a0":  {"k"},
			"a-":  {},
			"b":   {},
		}
		for tenant, want := range lists {
			if got := mustList(t, s, tenant); !slices.Equal(got, want) {
				t.Errorf("ListSecretKeys(%q) = %q, want %q", tenant, got, want)
			}
		}
		for _, tk := range []struct{ tenant, key string }{{"a", "x"}, {"a-b", "b-x"}, {"a-", "b-x"}, {"ab", "b-x"}} {
			_, err := s.GetSecret(t.Context(), tk.tenant, tk.key)
			wantCode(t, fmt.Sprintf("GetSecret(%q, %q)", tk.tenant, tk.key), err, neostore.ENOTFOUND)
		}

		if err := s.DeleteSecret(t.Context(), "a", "k", neostore.Change{}); err != nil {
			t.Fatalf("DeleteSecret: %v", err)
		}
		for _, tenant := range []string{"a-b", "ab", "a_b", "A", "a0"} {
			checkSecret(t, mustGet(t, s, tenant, "k"), neostore.SealedSecret{Ciphertext: []byte(tenant + "/k")})
		}
	}},
}

var concurrencyCases = []testCase{
	{"Secrets", func(t *testing.T, s neostore.Store) {
		const workers, rounds = 8, 15
		ctx := t.Context()
		// sharedValue ties the value to its window, so a torn write (value of
		// one put, window of another) is detectable.
		sharedValue := func(w, r int) neostore.SealedSecret {
			return neostore.SealedSecret{
				Ciphertext: fmt.Appendf(nil, "shared-%d-%d", w, r),
				Validity:   neostore.Validity{NotBefore: neostore.At(t1.Add(time.Duration(w*1000+r) * time.Nanosecond))},
			}
		}
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for r := range rounds {
					own := fmt.Sprintf("w%d-r%d", w, r)
					want := neostore.SealedSecret{Ciphertext: []byte(own)}
					if err := s.PutSecret(ctx, "tenant", own, want, neostore.Change{}); err != nil {
						t.Errorf("PutSecret(%s): %v", own, err)
						return
					}
					if got, err := s.GetSecret(ctx, "tenant", own); err != nil {
						t.Errorf("GetSecret(%s): %v", own, err)
					} else if !bytes.Equal(got.Ciphertext, want.Ciphertext) {
						t.Errorf("GetSecret(%s) = %q, want %q", own, got.Ciphertext, want.Ciphertext)
					}
					if r > 0 {
						if err := s.DeleteSecret(ctx, "tenant", fmt.Sprintf("w%d-r%d", w, r-1), neostore.Change{}); err != nil {
							t.Errorf("DeleteSecret: %v", err)
						}
					}
					if w%3 == 0 && r%2 == 1 {
						if err := s.DeleteSecret(ctx, "tenant", "shared", neostore.Change{}); err != nil {
							t.Errorf("DeleteSecret(shared): %v", err)
						}
					} else if err := s.PutSecret(ctx, "tenant", "shared", sharedValue(w, r), neostore.Change{}); err != nil {
						t.Errorf("PutSecret(shared): %v", err)
					}
					got, err := s.GetSecret(ctx, "tenant", "shared")
					if err == nil {
						var gw, gr int
						if _, scanErr := fmt.Sscanf(string(got.Ciphertext), "shared-%d-%d", &gw, &gr); scanErr != nil {
							t.Errorf("GetSecret(shared) = %q, not a value any writer wrote", got.Ciphertext)
						} else if want := sharedValue(gw, gr); !got.Validity.NotBefore.At.Equal(want.Validity.NotBefore.At) {
							t.Errorf("GetSecret(shared) = %q with NotBefore %v, want NotBefore %v: value and window of different puts", got.Ciphertext, got.Validity.NotBefore.At, want.Validity.NotBefore.At)
						}
					} else if neostore.ErrorCode(err) != neostore.ENOTFOUND {
						t.Errorf("GetSecret(shared): %v", err)
					}
					keys, err := s.ListSecretKeys(ctx, "tenant")
					if err != nil {
						t.Errorf("ListSecretKeys: %v", err)
					} else if !slices.IsSorted(keys) {
						t.Errorf("ListSecretKeys = %q, not sorted", keys)
					} else if !slices.Contains(keys, own) {
						t.Errorf("ListSecretKeys lacks %s, which only its writer deletes", own)
					}
					// Another tenant's traffic, to interleave bucket or
					// row creation across tenants.
					if err := s.PutSecret(ctx, fmt.Sprintf("t%d", w), "k", want, neostore.Change{}); err != nil {
						t.Errorf("PutSecret in own tenant: %v", err)
					}
				}
			})
		}
		wg.Wait()

		keys := mustList(t, s, "tenant")
		keys = slices.DeleteFunc(keys, func(k string) bool { return k == "shared" })
		var want []string
		for w := range workers {
			want = append(want, fmt.Sprintf("w%d-r%d", w, rounds-1))
		}
		slices.Sort(want)
		if !slices.Equal(keys, want) {
			t.Errorf("ListSecretKeys after the run = %q, want %q (plus maybe \"shared\")", keys, want)
		}
		for w := range workers {
			if got := mustList(t, s, fmt.Sprintf("t%d", w)); !slices.Equal(got, []string{"k"}) {
				t.Errorf("ListSecretKeys(t%d) = %q, want [\"k\"]", w, got)
			}
		}
	}},
}

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
// more, and nothing depends on finer last-use or creation times.
var (
	created1 = time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC)
	created2 = created1.Add(time.Second)
	created3 = created1.Add(2 * time.Second)
)

func apiKey(id, tenant string, created time.Time) neostore.APIKey {
	return neostore.APIKey{
		ID:        id,
		Name:      "name of " + id,
		Tenant:    tenant,
		Scopes:    neostore.ScopeRead,
		Hash:      hashOf(id),
		CreatedAt: created,
	}
}

var apiKeyCases = []testCase{
	{"RoundTrip", func(t *testing.T, s neostore.Store) {
		keys := []neostore.APIKey{
			{
				ID: "k1", Name: "deploy bot", Tenant: "tenant", Scopes: neostore.ScopeRead,
				Hash: bytes.Repeat([]byte{0x01}, 32), CreatedAt: created1,
			},
			{
				ID: "k2", Name: "", Tenant: "tenant", Scopes: neostore.ScopeWrite,
				Hash: bytes.Repeat([]byte{0x00}, 32), CreatedAt: created2,
				ExpiresAt: neostore.At(time.Date(2030, 1, 1, 0, 0, 0, 1000, time.UTC)),
			},
			{
				ID: "k3", Name: "ünïcode name", Tenant: "tenant", Scopes: neostore.ScopeRead | neostore.ScopeWrite,
				Hash: bytes.Repeat([]byte{0xff}, 32), CreatedAt: created3,
				ExpiresAt: neostore.At(minTime),
			},
		}
		for _, k := range keys {
			if err := s.CreateAPIKey(t.Context(), k); err != nil {
				t.Fatalf("CreateAPIKey(%s): %v", k.ID, err)
			}
		}
		got := mustListAPIKeys(t, s, "tenant")
		if len(got) != len(keys) {
			t.Fatalf("ListAPIKeys returned %d keys, want %d", len(got), len(keys))
		}
		for i := range keys {
			checkAPIKey(t, got[i], keys[i])
		}
	}},
	{"DuplicateID", func(t *testing.T, s neostore.Store) {
		k := apiKey("k1", "tenant", created1)
		if err := s.CreateAPIKey(t.Context(), k); err != nil {
			t.Fatalf("CreateAPIKey: %v", err)
		}
		dup := apiKey("k1", "other", created2)
		dup.Hash = bytes.Repeat([]byte{0x42}, 32)
		err := s.CreateAPIKey(t.Context(), dup)
		wantCode(t, "CreateAPIKey with a taken id", err, neostore.EINVALID)

		all := mustListAPIKeys(t, s, "")
		if len(all) != 1 {
			t.Fatalf("ListAPIKeys returned %d keys, want 1", len(all))
		}
		checkAPIKey(t, all[0], k)
		// The rejected key's hash must not have been claimed.
		fresh := apiKey("k2", "tenant", created2)
		fresh.Hash = dup.Hash
		if err := s.CreateAPIKey(t.Context(), fresh); err != nil {
			t.Errorf("CreateAPIKey with the hash of a rejected key: %v", err)
		}
	}},
	{"DuplicateHash", func(t *testing.T, s neostore.Store) {
		k := apiKey("k1", "tenant", created1)
		if err := s.CreateAPIKey(t.Context(), k); err != nil {
			t.Fatalf("CreateAPIKey: %v", err)
		}
		dup := apiKey("k2", "tenant", created2)
		dup.Hash = slices.Clone(k.Hash)
		err := s.CreateAPIKey(t.Context(), dup)
		wantCode(t, "CreateAPIKey with a taken hash", err, neostore.EINVALID)

		all := mustListAPIKeys(t, s, "")
		if len(all) != 1 || all[0].ID != "k1" {
			t.Fatalf("ListAPIKeys = %v, want only k1", ids(all))
		}
		err = s.RevokeAPIKey(t.Context(), "k2", created3)
		wantCode(t, "RevokeAPIKey of the rejected id", err, neostore.ENOTFOUND)
	}},
	{"ListByTenantAndAll", func(t *testing.T, s neostore.Store) {
		for _, k := range []neostore.APIKey{
			apiKey("k1", "a", created1),
			apiKey("k2", "a-b", created1),
			apiKey("k3", "ab", created2),
			apiKey("k4", "a", created3),
		} {
			if err := s.CreateAPIKey(t.Context(), k); err != nil {
				t.Fatalf("CreateAPIKey(%s): %v", k.ID, err)
			}
		}
		tests := []struct {
			tenant string
			want   []string
		}{
			{"a", []string{"k1", "k4"}},
			{"a-b", []string{"k2"}},
			{"ab", []string{"k3"}},
			{"nobody", nil},
			{"", []string{"k1", "k2", "k3", "k4"}},
		}
		for _, tt := range tests {
			if got := ids(mustListAPIKeys(t, s, tt.tenant)); !slices.Equal(got, tt.want) {
				t.Errorf("ListAPIKeys(%q) = %q, want %q", tt.tenant, got, tt.want)
			}
		}
	}},
	{"ListOrderCreatedAtThenID", func(t *testing.T, s neostore.Store) {
		// Inserted out of order; ids deliberately disagree with creation
		// order so that sorting by id alone fails.
		for _, k := range []neostore.APIKey{
			apiKey("a", "tenant", created3),
			apiKey("z", "tenant", created1),
			apiKey("m2", "tenant", created2),
			apiKey("m1", "tenant", created2),
			apiKey("M", "tenant", created2),
		} {
			if err := s.CreateAPIKey(t.Context(), k); err != nil {
				t.Fatalf("CreateAPIKey(%s): %v", k.ID, err)
			}
		}
		want := []string{"z", "M", "m1", "m2", "a"}
		if got := ids(mustListAPIKeys(t, s, "tenant")); !slices.Equal(got, want) {
			t.Errorf("ListAPIKeys = %q, want %q", got, want)
		}
		if got := ids(mustListAPIKeys(t, s, "")); !slices.Equal(got, want) {
			t.Errorf("ListAPIKeys(all) = %q, want %q", got, want)
		}
	}},
	{"Revoke", func(t *testing.T, s neostore.Store) {
		k := apiKey("k1", "tenant", created1)
		other := apiKey("k2", "tenant", created2)
		for _, k := range []neostore.APIKey{k, other} {
			if err := s.CreateAPIKey(t.Context(), k); err != nil {
				t.Fatalf("CreateAPIKey: %v", err)
			}
		}
		if err := s.RevokeAPIKey(t.Context(), "k1", created2); err != nil {
			t.Fatalf("RevokeAPIKey: %v", err)
		}
		got := mustListAPIKeys(t, s, "tenant")
		want := k
		want.RevokedAt = neostore.At(created2)
		checkAPIKey(t, got[0], want)
		checkAPIKey(t, got[1], other)
	}},
	{"RevokeTwiceKeepsFirst", func(t *testing.T, s neostore.Store) {
		if err := s.CreateAPIKey(t.Context(), apiKey("k1", "tenant", created1)); err != nil {
			t.Fatalf("CreateAPIKey: %v", err)
		}
		if err := s.RevokeAPIKey(t.Context(), "k1", created2); err != nil {
			t.Fatalf("RevokeAPIKey: %v", err)
		}
		if err := s.RevokeAPIKey(t.Context(), "k1", created3); err != nil {
			t.Errorf("second RevokeAPIKey = %v, want nil", err)
		}
		got := mustListAPIKeys(t, s, "tenant")
		if !got[0].RevokedAt.Set || !got[0].RevokedAt.At.Equal(created2) {
			t.Errorf("RevokedAt = %+v, want the first revocation time %v", got[0].RevokedAt, created2)
		}
	}},
	{"ByHash", func(t *testing.T, s neostore.Store) {
		k1, k2 := apiKey("k1", "tenant", created1), apiKey("k2", "other", created2)
		k2.ExpiresAt = neostore.At(created3)
		for _, k := range []neostore.APIKey{k1, k2} {
			if err := s.CreateAPIKey(t.Context(), k); err != nil {
				t.Fatalf("CreateAPIKey(%s): %v", k.ID, err)
			}
		}
		got, err := s.APIKeyByHash(t.Context(), k2.Hash)
		if err != nil {
			t.Fatalf("APIKeyByHash(k2): %v", err)
		}
		checkAPIKey(t, got, k2)
		_, err = s.APIKeyByHash(t.Context(), hashOf("nobody"))
		wantCode(t, "APIKeyByHash of an unknown hash", err, neostore.ENOTFOUND)

		// A revoked key is still found, with its revocation: a node that
		// looks a key up must not bring a revoked key back to life.
		if err := s.RevokeAPIKey(t.Context(), "k1", created3); err != nil {
			t.Fatalf("RevokeAPIKey: %v", err)
		}
		got, err = s.APIKeyByHash(t.Context(), k1.Hash)
		if err != nil {
			t.Fatalf("APIKeyByHash(revoked k1): %v", err)
		}
		k1.RevokedAt = neostore.At(created3)
		checkAPIKey(t, got, k1)
	}},
	{"RevokeUnknown", func(t *testing.T, s neostore.Store) {
		err := s.RevokeAPIKey(t.Context(), "nope", created1)
		wantCode(t, "RevokeAPIKey of an unknown id", err, neostore.ENOTFOUND)
	}},
	{"Touch", func(t *testing.T, s neostore.Store) {
		k1, k2, k3 := apiKey("k1", "tenant", created1), apiKey("k2", "tenant", created2), apiKey("k3", "tenant", created3)
		for _, k := range []neostore.APIKey{k1, k2, k3} {
			if err := s.CreateAPIKey(t.Context(), k); err != nil {
				t.Fatalf("CreateAPIKey: %v", err)
			}
		}
		used1, used2 := created3.Add(time.Minute), created3.Add(time.Hour)
		err := s.TouchAPIKeys(t.Context(), map[string]time.Time{"k1": used1, "k2": used2, "unknown": used2})
		if err != nil {
			t.Fatalf("TouchAPIKeys: %v", err)
		}
		got := mustListAPIKeys(t, s, "tenant")
		k1.LastUsed, k2.LastUsed = neostore.At(used1), neostore.At(used2)
		checkAPIKey(t, got[0], k1)
		checkAPIKey(t, got[1], k2)
		checkAPIKey(t, got[2], k3)

		used3 := used2.Add(time.Hour)
		if err := s.TouchAPIKeys(t.Context(), map[string]time.Time{"k1": used3}); err != nil {
			t.Fatalf("second TouchAPIKeys: %v", err)
		}
		if got := mustListAPIKeys(t, s, "tenant"); !got[0].LastUsed.Set || !got[0].LastUsed.At.Equal(used3) {
			t.Errorf("LastUsed after a second touch = %+v, want %v", got[0].LastUsed, used3)
		}
		if err := s.TouchAPIKeys(t.Context(), map[string]time.Time{}); err != nil {
			t.Errorf("TouchAPIKeys with no ids = %v, want nil", err)
		}
	}},
}

var auditStateCases = []testCase{
	{"AuditKeyCreateKeepsFirst", func(t *testing.T, s neostore.Store) {
		_, err := s.GetAuditKey(t.Context())
		wantCode(t, "GetAuditKey on a new store", err, neostore.ENOTFOUND)
		for _, k := range []string{"first", "second"} {
			stored, err := s.CreateAuditKey(t.Context(), []byte(k))
			if err != nil || string(stored) != "first" {
				t.Errorf("CreateAuditKey(%q) = %q, %v; want the first key", k, stored, err)
			}
		}
		if got, err := s.GetAuditKey(t.Context()); err != nil || string(got) != "first" {
			t.Errorf("GetAuditKey = %q, %v; want %q", got, err, "first")
		}
	}},
	{"AuditKeyConcurrentCreateOneWinner", func(t *testing.T, s neostore.Store) {
		var wg sync.WaitGroup
		results := make([][]byte, 16)
		for i := range results {
			wg.Go(func() {
				stored, err := s.CreateAuditKey(t.Context(), []byte{byte(i)})
				if err != nil {
					t.Errorf("CreateAuditKey: %v", err)
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
	{"CheckpointsPerNodeNeverBackwards", func(t *testing.T, s neostore.Store) {
		ctx := t.Context()
		if _, _, found, err := s.LoadAuditCheckpoint(ctx, "node-a"); err != nil || found {
			t.Fatalf("LoadAuditCheckpoint on a new store: found=%v err=%v", found, err)
		}
		steps := []struct {
			node string
			seq  uint64
			hash string
		}{{"node-a", 10, "h10"}, {"node-b", 3, "b3"}, {"node-a", 12, "h12"}, {"node-a", 11, "h11"}}
		for _, st := range steps {
			if err := s.SaveAuditCheckpoint(ctx, st.node, st.seq, []byte(st.hash)); err != nil {
				t.Fatalf("SaveAuditCheckpoint: %v", err)
			}
		}
		seq, hash, found, err := s.LoadAuditCheckpoint(ctx, "node-a")
		if err != nil || !found || seq != 12 || string(hash) != "h12" {
			t.Errorf("node-a checkpoint = %d %q %v %v; want 12 h12 (an older save must not move it back)", seq, hash, found, err)
		}
		cps, err := s.ListAuditCheckpoints(ctx)
		if err != nil || len(cps) != 2 || cps[0].Node != "node-a" || cps[1].Node != "node-b" || cps[1].Seq != 3 || string(cps[1].Hash) != "b3" {
			t.Errorf("ListAuditCheckpoints = %+v, %v; want node-a@12 and node-b@3", cps, err)
		}
	}},
}

var storeCases = []testCase{
	{"Ping", func(t *testing.T, s neostore.Store) {
		if err := s.Ping(t.Context()); err != nil {
			t.Errorf("Ping on an open store = %v, want nil", err)
		}
	}},
	{"CallsAfterCloseFail", func(t *testing.T, s neostore.Store) {
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := s.Ping(t.Context()); err == nil {
			t.Errorf("Ping after Close = nil, want an error")
		}
		if _, err := s.GetSecret(t.Context(), "tenant", "k"); err == nil {
			t.Errorf("GetSecret after Close = nil error, want an error")
		}
		if err := s.PutSecret(t.Context(), "tenant", "k", neostore.SealedSecret{Ciphertext: []byte("v")}, neostore.Change{}); err == nil {
			t.Errorf("PutSecret after Close = nil, want an error")
		}
	}},
}

func mustPut(t *testing.T, s neostore.Store, tenant, key string, sec neostore.SealedSecret) {
	t.Helper()
	if err := s.PutSecret(t.Context(), tenant, key, sec, neostore.Change{}); err != nil {
		t.Fatalf("PutSecret(%q, %q): %v", tenant, key, err)
	}
}

func mustGet(t *testing.T, s neostore.Store, tenant, key string) neostore.SealedSecret {
	t.Helper()
	got, err := s.GetSecret(t.Context(), tenant, key)
	if err != nil {
		t.Fatalf("GetSecret(%q, %q): %v", tenant, key, err)
	}
	return got
}

func mustList(t *testing.T, s neostore.Store, tenant string) []string {
	t.Helper()
	got, err := s.ListSecretKeys(t.Context(), tenant)
	if err != nil {
		t.Fatalf("ListSecretKeys(%q): %v", tenant, err)
	}
	return got
}

func mustListAPIKeys(t *testing.T, s neostore.Store, tenant string) []neostore.APIKey {
	t.Helper()
	got, err := s.ListAPIKeys(t.Context(), tenant)
	if err != nil {
		t.Fatalf("ListAPIKeys(%q): %v", tenant, err)
	}
	return got
}

func wantCode(t *testing.T, op string, err error, code string) {
	t.Helper()
	if got := neostore.ErrorCode(err); got != code {
		t.Errorf("%s: error code = %q (err %v), want %q", op, got, err, code)
	}
}

func checkSecret(t *testing.T, got, want neostore.SealedSecret) {
	t.Helper()
	if !bytes.Equal(got.Ciphertext, want.Ciphertext) {
		t.Errorf("Ciphertext = %s, want %s", abbrev(got.Ciphertext), abbrev(want.Ciphertext))
	}
	checkBound(t, "NotBefore", got.Validity.NotBefore, want.Validity.NotBefore, true)
	checkBound(t, "ExpiresOn", got.Validity.ExpiresOn, want.Validity.ExpiresOn, true)
}

// checkBound compares bounds by instant; with wantUTC it also requires the
// returned instant to be in UTC, as the domain's At produces.
func checkBound(t *testing.T, name string, got, want neostore.Bound, wantUTC bool) {
	t.Helper()
	switch {
	case got.Set != want.Set:
		t.Errorf("%s.Set = %v, want %v", name, got.Set, want.Set)
	case !got.Set && !got.At.IsZero():
		t.Errorf("%s is unset but At = %v, want the zero time", name, got.At)
	case got.Set && !got.At.Equal(want.At):
		t.Errorf("%s = %s, want %s", name, got.At.Format(time.RFC3339Nano), want.At.UTC().Format(time.RFC3339Nano))
	case got.Set && wantUTC && got.At.Location() != time.UTC:
		t.Errorf("%s location = %v, want UTC", name, got.At.Location())
	}
}

func checkAPIKey(t *testing.T, got, want neostore.APIKey) {
	t.Helper()
	if got.ID != want.ID || got.Name != want.Name || got.Tenant != want.Tenant || got.Scopes != want.Scopes {
		t.Errorf("APIKey = {ID:%q Name:%q Tenant:%q Scopes:%v}, want {ID:%q Name:%q Tenant:%q Scopes:%v}",
			got.ID, got.Name, got.Tenant, got.Scopes, want.ID, want.Name, want.Tenant, want.Scopes)
	}
	if !bytes.Equal(got.Hash, want.Hash) {
		t.Errorf("APIKey %s Hash = %x, want %x", want.ID, got.Hash, want.Hash)
	}
	if !got.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("APIKey %s CreatedAt = %v, want %v", want.ID, got.CreatedAt, want.CreatedAt)
	}
	checkBound(t, want.ID+".ExpiresAt", got.ExpiresAt, want.ExpiresAt, false)
	checkBound(t, want.ID+".RevokedAt", got.RevokedAt, want.RevokedAt, false)
	checkBound(t, want.ID+".LastUsed", got.LastUsed, want.LastUsed, false)
}

// hashOf stands in for the SHA-256 of an API key whose id is id.
func hashOf(id string) []byte {
	h := sha256.Sum256([]byte("key of " + id))
	return h[:]
}

func ids(keys []neostore.APIKey) []string {
	var out []string
	for _, k := range keys {
		out = append(out, k.ID)
	}
	return out
}

// patterned returns n bytes covering every byte value.
func patterned(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/256)
	}
	return b
}

func abbrev(b []byte) string {
	if len(b) > 32 {
		return fmt.Sprintf("%x... (%d bytes)", b[:32], len(b))
	}
	return fmt.Sprintf("%x", b)
}
