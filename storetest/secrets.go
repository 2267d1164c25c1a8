package storetest

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets"
)

// The cases of secrets: put, get, delete, listing, tenants and concurrent writers.

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
