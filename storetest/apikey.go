package storetest

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets"
)

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
