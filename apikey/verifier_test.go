package apikey_test

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/apikey"
	"github.com/neostore/neostore-secrets/bolt"
)

// clock is a settable test clock.
type clock struct{ t atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.t.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *clock) Now() time.Time          { return time.Unix(0, c.t.Load()).UTC() }
func (c *clock) Advance(d time.Duration) { c.t.Add(int64(d)) }

func openStore(t *testing.T) *bolt.Store {
	t.Helper()
	s, err := bolt.Open(filepath.Join(t.TempDir(), "secrets.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newVerifier(t *testing.T, store neostore.APIKeyStore, c *clock) *apikey.Verifier {
	t.Helper()
	v, err := apikey.NewVerifier(context.Background(), store, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

var readWrite = neostore.ScopeRead | neostore.ScopeWrite

func TestVerifier_Verify(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	v := newVerifier(t, openStore(t), c)
	key, rec, err := v.Create(ctx, neostore.NewAPIKey{Tenant: "t1", Scopes: neostore.ScopeRead, Name: "ci"})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("Valid", func(t *testing.T) {
		p, err := v.Verify(ctx, key)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if p.Kind != neostore.PrincipalAPIKey || p.ID != rec.ID || p.Name != "ci" || p.Scopes != neostore.ScopeRead || !p.CanAccessTenant("t1") || p.CanAccessTenant("t2") {
			t.Errorf("principal = %+v; want api key %s for t1 with Secret.Read", p, rec.ID)
		}
	})
	for name, cred := range map[string]string{
		"Unknown":   func() string { k, _ := apikey.Generate(); return k }(),
		"Malformed": "not-a-key",
		"Empty":     "",
		"Hash":      string(rec.Hash),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := v.Verify(ctx, cred); neostore.ErrorCode(err) != neostore.EUNAUTHENTICATED {
				t.Errorf("Verify err = %v, want EUNAUTHENTICATED", err)
			}
		})
	}
}

func TestVerifier_Create(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	v := newVerifier(t, openStore(t), c)
	for _, tc := range []struct {
		name  string
		req   neostore.NewAPIKey
		field string
	}{
		{"InvalidTenant", neostore.NewAPIKey{Tenant: "a/b", Scopes: readWrite}, "tenant"},
		{"EmptyTenant", neostore.NewAPIKey{Scopes: readWrite}, "tenant"},
		{"NoScope", neostore.NewAPIKey{Tenant: "t1"}, "scope"},
		{"ExpiryInPast", neostore.NewAPIKey{Tenant: "t1", Scopes: readWrite, ExpiresAt: neostore.At(c.Now().Add(-time.Second))}, "expires"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := v.Create(ctx, tc.req)
			if neostore.ErrorCode(err) != neostore.EINVALID || neostore.ErrorFields(err)[tc.field] == nil {
				t.Errorf("Create err = %v, want EINVALID naming %q", err, tc.field)
			}
		})
	}
	t.Run("StoresOnlyTheHash", func(t *testing.T) {
		key, rec, err := v.Create(ctx, neostore.NewAPIKey{Tenant: "t1", Scopes: readWrite})
		if err != nil {
			t.Fatal(err)
		}
		keys, err := v.List(ctx, "t1")
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != 1 || keys[0].ID != rec.ID {
			t.Fatalf("List = %+v, want the one created key", keys)
		}
		if h := apikey.Hash(key); string(keys[0].Hash) != string(h[:]) {
			t.Errorf("stored hash is not SHA-256 of the key")
		}
	})
}

func TestVerifier_Revoke(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	store := openStore(t)
	v := newVerifier(t, store, c)
	key, rec, err := v.Create(ctx, neostore.NewAPIKey{Tenant: "t1", Scopes: readWrite})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Revoke(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, key); neostore.ErrorCode(err) != neostore.EUNAUTHENTICATED {
		t.Errorf("Verify after Revoke: err = %v, want EUNAUTHENTICATED", err)
	}
	if err := v.Revoke(ctx, "ak_0000000000000000"); neostore.ErrorCode(err) != neostore.ENOTFOUND {
		t.Errorf("Revoke(unknown) err = %v, want ENOTFOUND", err)
	}
	// A restarted node loads the revocation from the store.
	if _, err := newVerifier(t, store, c).Verify(ctx, key); neostore.ErrorCode(err) != neostore.EUNAUTHENTICATED {
		t.Errorf("Verify on a fresh verifier after Revoke: err = %v, want EUNAUTHENTICATED", err)
	}
}

func TestVerifier_Expiry(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	v := newVerifier(t, openStore(t), c)
	key, _, err := v.Create(ctx, neostore.NewAPIKey{Tenant: "t1", Scopes: readWrite, ExpiresAt: neostore.At(c.Now().Add(time.Hour))})
	if err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Hour - time.Nanosecond)
	if _, err := v.Verify(ctx, key); err != nil {
		t.Errorf("Verify just before expiry: %v", err)
	}
	c.Advance(time.Nanosecond)
	if _, err := v.Verify(ctx, key); neostore.ErrorCode(err) != neostore.EUNAUTHENTICATED {
		t.Errorf("Verify at expiry: err = %v, want EUNAUTHENTICATED", err)
	}
}

func TestVerifier_ReloadSeesOtherNodes(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	store := openStore(t)
	a, b := newVerifier(t, store, c), newVerifier(t, store, c)
	key, rec, err := a.Create(ctx, neostore.NewAPIKey{Tenant: "t1", Scopes: readWrite})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Verify(ctx, key); err != nil {
		t.Errorf("b.Verify after Reload: %v", err)
	}
	if err := a.Revoke(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	if err := b.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Verify(ctx, key); neostore.ErrorCode(err) != neostore.EUNAUTHENTICATED {
		t.Errorf("b.Verify after a revoked and b reloaded: err = %v, want EUNAUTHENTICATED", err)
	}
}

func TestVerifier_FlushLastUsed(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	store := openStore(t)
	v := newVerifier(t, store, c)
	key, rec, err := v.Create(ctx, neostore.NewAPIKey{Tenant: "t1", Scopes: readWrite})
	if err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Minute)
	if _, err := v.Verify(ctx, key); err != nil {
		t.Fatal(err)
	}
	stored := func() neostore.Bound {
		keys, err := store.ListAPIKeys(ctx, "t1")
		if err != nil || len(keys) != 1 {
			t.Fatalf("ListAPIKeys = %v, %v", keys, err)
		}
		return keys[0].LastUsed
	}
	if got := stored(); got.Set {
		t.Fatalf("last use reached the store before a flush: %v", got)
	}
	if err := v.FlushLastUsed(ctx); err != nil {
		t.Fatal(err)
	}
	if got := stored(); !got.Set || !got.At.Equal(c.Now()) {
		t.Errorf("stored LastUsed = %+v, want %v", got, c.Now())
	}
	keys, _ := v.List(ctx, "t1")
	if keys[0].ID != rec.ID || !keys[0].LastUsed.At.Equal(c.Now()) {
		t.Errorf("List LastUsed = %+v, want %v", keys[0].LastUsed, c.Now())
	}
}

func TestVerifier_ConcurrentVerifyAndRevoke(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	v := newVerifier(t, openStore(t), c)
	var keys []string
	var ids []string
	for range 8 {
		k, rec, err := v.Create(ctx, neostore.NewAPIKey{Tenant: "t1", Scopes: readWrite})
		if err != nil {
			t.Fatal(err)
		}
		keys, ids = append(keys, k), append(ids, rec.ID)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 200 {
				v.Verify(ctx, keys[i])
			}
		})
	}
	for _, id := range ids[:4] {
		wg.Go(func() {
			if err := v.Revoke(ctx, id); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for i, k := range keys {
		_, err := v.Verify(ctx, k)
		if revoked := i < 4; revoked != (err != nil) {
			t.Errorf("key %d: revoked=%v, Verify err=%v", i, revoked, err)
		}
	}
}

func BenchmarkVerifier_Verify(b *testing.B) {
	s, err := bolt.Open(filepath.Join(b.TempDir(), "secrets.db"), bolt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	v, err := apikey.NewVerifier(context.Background(), s, time.Now)
	if err != nil {
		b.Fatal(err)
	}
	key, _, err := v.Create(context.Background(), neostore.NewAPIKey{Tenant: "t1", Scopes: readWrite})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(context.Background(), key); err != nil {
			b.Fatal(err)
		}
	}
}
