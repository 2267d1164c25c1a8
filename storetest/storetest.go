// Package storetest is the conformance suite of neostore.Store: every store
// implementation runs it against its real engine, so that the embedded and
// the PostgreSQL stores behave the same to the layers above them.
package storetest

import (
	"bytes"
	"crypto/sha256"
	"fmt"
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
		{"Times", timesCases},
		{"ListSecretKeysAfter", listSecretKeysAfterCases},
		{"Tenants", tenantCases},
		{"Concurrency", concurrencyCases},
		{"TenantKey", tenantKeyCases},
		{"KeyCheck", keyCheckCases},
		{"Replace", replaceCases},
		{"APIKey", apiKeyCases},
		{"AuditState", auditStateCases},
		{"Webhook", webhookCases},
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
