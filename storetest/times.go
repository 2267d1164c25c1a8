package storetest

import (
	"testing"
	"time"

	"github.com/neostore/neostore-secrets"
)

// Instants of the times cases: the service's clock hands them down in UTC
// with nanoseconds.
var (
	created = time.Date(2026, 1, 2, 3, 4, 5, 600000007, time.UTC)
	updated = time.Date(2026, 2, 3, 4, 5, 6, 700000008, time.UTC)
	later   = time.Date(2026, 3, 4, 5, 6, 7, 800000009, time.UTC)
)

func timed(ciphertext string, v neostore.Validity, createdOn, updatedOn time.Time) neostore.SealedSecret {
	return neostore.SealedSecret{
		Ciphertext: []byte(ciphertext),
		Validity:   v,
		Times:      neostore.SecretTimes{CreatedOn: neostore.At(createdOn), UpdatedOn: neostore.At(updatedOn)},
	}
}

var timesCases = []testCase{
	{"FirstPutKeepsBoth", func(t *testing.T, s neostore.Store) {
		mustPut(t, s, "tenant", "k", timed("v1", neostore.Validity{}, created, updated))
		wantTimes(t, "after the first put", mustGet(t, s, "tenant", "k").Times, neostore.At(created), neostore.At(updated))
	}},
	{"PutOverKeepsCreatedOn", func(t *testing.T, s neostore.Store) {
		mustPut(t, s, "tenant", "k", timed("v1", neostore.Validity{}, created, created))
		mustPut(t, s, "tenant", "k", timed("v2", neostore.Validity{ExpiresOn: neostore.At(t2)}, later, later))
		got := mustGet(t, s, "tenant", "k")
		if string(got.Ciphertext) != "v2" || !got.Validity.ExpiresOn.At.Equal(t2) {
			t.Errorf("after the second put GetSecret = %+v, want v2 expiring %v", got, t2)
		}
		wantTimes(t, "after a put over the key", got.Times, neostore.At(created), neostore.At(later))
	}},
	{"DeleteThenPutStartsAnew", func(t *testing.T, s neostore.Store) {
		mustPut(t, s, "tenant", "k", timed("v1", neostore.Validity{}, created, created))
		if err := s.DeleteSecret(t.Context(), "tenant", "k", neostore.Change{}); err != nil {
			t.Fatalf("DeleteSecret: %v", err)
		}
		mustPut(t, s, "tenant", "k", timed("v2", neostore.Validity{}, later, later))
		wantTimes(t, "after delete and put", mustGet(t, s, "tenant", "k").Times, neostore.At(later), neostore.At(later))
	}},
	{"UnknownTimes", func(t *testing.T, s neostore.Store) {
		// A copy of a secret whose times were never kept stays unknown.
		mustPut(t, s, "tenant", "k", neostore.SealedSecret{Ciphertext: []byte("v")})
		wantTimes(t, "without times", mustGet(t, s, "tenant", "k").Times, neostore.Bound{}, neostore.Bound{})
	}},
	{"ReplaceKeepsTimesAsGiven", func(t *testing.T, s neostore.Store) {
		mustPut(t, s, "tenant", "k", timed("old", neostore.Validity{}, created, updated))
		if err := s.ReplaceSecret(t.Context(), "tenant", "k", []byte("old"), timed("resealed", neostore.Validity{}, created, updated)); err != nil {
			t.Fatalf("ReplaceSecret: %v", err)
		}
		wantTimes(t, "after a reseal", mustGet(t, s, "tenant", "k").Times, neostore.At(created), neostore.At(updated))
	}},
	{"ListAttributes", func(t *testing.T, s neostore.Store) {
		window := neostore.Validity{NotBefore: neostore.At(minTime), ExpiresOn: neostore.At(maxTime)}
		mustPut(t, s, "tenant", "b-key", timed("b", window, created, updated))
		mustPut(t, s, "tenant", "B-key", neostore.SealedSecret{Ciphertext: []byte("B")})
		mustPut(t, s, "tenant", "a-key", timed("a", neostore.Validity{ExpiresOn: neostore.At(t1)}, updated, later))
		mustPut(t, s, "other", "z", timed("z", neostore.Validity{}, created, created))
		attrs, err := s.ListSecretAttributes(t.Context(), "tenant")
		if err != nil {
			t.Fatalf("ListSecretAttributes: %v", err)
		}
		keys := mustList(t, s, "tenant")
		if len(attrs) != len(keys) {
			t.Fatalf("ListSecretAttributes = %+v, want one entry for each of %v", attrs, keys)
		}
		for i, a := range attrs {
			if a.Key != keys[i] {
				t.Errorf("attribute %d names %q, want %q: not in ListSecretKeys' order", i, a.Key, keys[i])
			}
			sec := mustGet(t, s, "tenant", a.Key)
			wantBound(t, a.Key+" notBefore", a.Validity.NotBefore, sec.Validity.NotBefore)
			wantBound(t, a.Key+" expiresOn", a.Validity.ExpiresOn, sec.Validity.ExpiresOn)
			wantTimes(t, a.Key, a.Times, sec.Times.CreatedOn, sec.Times.UpdatedOn)
		}
		if attrs[0].Key != "B-key" || !attrs[1].Times.UpdatedOn.At.Equal(later) || !attrs[2].Validity.NotBefore.At.Equal(minTime) {
			t.Errorf("ListSecretAttributes = %+v, want B-key (no times), a-key (updated %v), b-key (from year 1)", attrs, later)
		}
	}},
	{"ListAttributesEmpty", func(t *testing.T, s neostore.Store) {
		attrs, err := s.ListSecretAttributes(t.Context(), "nobody")
		if err != nil || attrs == nil || len(attrs) != 0 {
			t.Errorf("ListSecretAttributes(unknown tenant) = %#v, %v; want an empty, non-nil slice", attrs, err)
		}
	}},
}

func wantTimes(t *testing.T, what string, got neostore.SecretTimes, createdOn, updatedOn neostore.Bound) {
	t.Helper()
	wantBound(t, what+": CreatedOn", got.CreatedOn, createdOn)
	wantBound(t, what+": UpdatedOn", got.UpdatedOn, updatedOn)
}

func wantBound(t *testing.T, what string, got, want neostore.Bound) {
	t.Helper()
	if got.Set != want.Set || !got.At.Equal(want.At) || (got.Set && got.At.Location() != time.UTC) {
		t.Errorf("%s = %+v, want %+v in UTC", what, got, want)
	}
}
