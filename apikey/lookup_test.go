package apikey_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/apikey"
)

// countingStore counts the look-ups by hash that reach the real store under
// it; when hold is set, each look-up waits for it to close first.
type countingStore struct {
	neostore.APIKeyStore
	lookups atomic.Int64
	entered chan struct{} // receives once per look-up, if set
	hold    chan struct{}
}

func (s *countingStore) APIKeyByHash(ctx context.Context, hash []byte) (neostore.APIKey, error) {
	s.lookups.Add(1)
	if s.entered != nil {
		s.entered <- struct{}{}
	}
	if s.hold != nil {
		<-s.hold
	}
	return s.APIKeyStore.APIKeyByHash(ctx, hash)
}

func TestVerifier_LooksUpAKeyIssuedOnAnotherNode(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	store := openStore(t)
	a, b := newVerifier(t, store, c), newVerifier(t, store, c)
	key, rec, err := a.Create(ctx, neostore.NewAPIKey{Tenant: "t1", Scopes: readWrite, Name: "new"})
	if err != nil {
		t.Fatal(err)
	}
	// No reload on b: the key must work there at once.
	p, err := b.Verify(ctx, key)
	if err != nil {
		t.Fatalf("b.Verify of a key issued on a, before any reload: %v", err)
	}
	if p.ID != rec.ID || p.Tenants[0] != "t1" || p.Scopes != readWrite {
		t.Errorf("principal = %+v, want the record of %s", p, rec.ID)
	}
	// b now counts its uses, like any key it loaded.
	if err := b.FlushLastUsed(ctx); err != nil {
		t.Fatal(err)
	}
	keys, err := store.ListAPIKeys(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	if !keys[0].LastUsed.Set {
		t.Errorf("the use on b was not recorded")
	}
}

func TestVerifier_LookupKeepsRevocation(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	store := openStore(t)
	a := newVerifier(t, store, c)
	key, rec, err := a.Create(ctx, neostore.NewAPIKey{Tenant: "t1", Scopes: readWrite})
	if err != nil {
		t.Fatal(err)
	}
	b := newVerifier(t, store, c)
	expired, _, err := a.Create(ctx, neostore.NewAPIKey{Tenant: "t1", Scopes: readWrite, ExpiresAt: neostore.At(c.Now().Add(time.Minute))})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Revoke(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	// b loaded the key before the revocation; a reload brings it in line.
	if err := b.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Verify(ctx, key); neostore.ErrorCode(err) != neostore.EUNAUTHENTICATED {
		t.Errorf("b.Verify of a revoked key after reload: err = %v, want EUNAUTHENTICATED", err)
	}
	// A node that never saw a key looks it up and finds it revoked, or
	// expired.
	c.Advance(2 * time.Minute)
	fresh := newVerifierNoKeys(t, store, c)
	if _, err := fresh.Verify(ctx, key); neostore.ErrorCode(err) != neostore.EUNAUTHENTICATED {
		t.Errorf("Verify of a revoked key by look-up: err = %v, want EUNAUTHENTICATED", err)
	}
	if _, err := fresh.Verify(ctx, expired); neostore.ErrorCode(err) != neostore.EUNAUTHENTICATED {
		t.Errorf("Verify of an expired key by look-up: err = %v, want EUNAUTHENTICATED", err)
	}
}

// newVerifierNoKeys returns a verifier over store that loaded nothing: the
// keys it is asked for reach it only through look-ups.
func newVerifierNoKeys(t *testing.T, store neostore.APIKeyStore, c *clock) *apikey.Verifier {
	t.Helper()
	return newVerifier(t, emptyList{store}, c)
}

// emptyList hides every key from the initial load.
type emptyList struct{ neostore.APIKeyStore }

func (emptyList) ListAPIKeys(context.Context, string) ([]neostore.APIKey, error) {
	return []neostore.APIKey{}, nil
}

func TestVerifier_LookupsAreBounded(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	store := &countingStore{APIKeyStore: openStore(t)}
	v := newVerifier(t, store, c)

	// A flood of random well-formed keys: all refused, and the store asked
	// at most the burst.
	for range 200 {
		key, _ := apikey.Generate()
		if _, err := v.Verify(ctx, key); neostore.ErrorCode(err) != neostore.EUNAUTHENTICATED {
			t.Fatalf("Verify(random key): err = %v, want EUNAUTHENTICATED", err)
		}
	}
	if got := store.lookups.Load(); got != apikey.LookupBurst {
		t.Errorf("store look-ups for 200 random keys = %d, want the burst, %d", got, apikey.LookupBurst)
	}
	// A second later the budget has grown by the rate, no more.
	c.Advance(time.Second)
	for range 200 {
		key, _ := apikey.Generate()
		_, _ = v.Verify(ctx, key)
	}
	if got, want := store.lookups.Load(), int64(apikey.LookupBurst)+int64(apikey.LookupRate); got != want {
		t.Errorf("store look-ups a second later = %d, want %d", got, want)
	}

	// A bad key retried is asked once per NegativeTTL.
	c.Advance(time.Hour) // refill the budget
	bad, _ := apikey.Generate()
	before := store.lookups.Load()
	for range 5 {
		_, _ = v.Verify(ctx, bad)
	}
	if got := store.lookups.Load() - before; got != 1 {
		t.Errorf("store look-ups for one bad key retried 5 times = %d, want 1", got)
	}
	c.Advance(apikey.NegativeTTL)
	_, _ = v.Verify(ctx, bad)
	if got := store.lookups.Load() - before; got != 2 {
		t.Errorf("store look-ups after the negative cache expired = %d, want 2", got)
	}
}

func TestVerifier_ConcurrentFirstUsesLookUpOnce(t *testing.T) {
	for _, tc := range []struct {
		name  string
		known bool // issued on another node, or unknown everywhere
	}{
		{"IssuedElsewhere", true},
		{"Unknown", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			c := newClock()
			real := openStore(t)
			a := newVerifier(t, real, c)
			store := &countingStore{APIKeyStore: real, entered: make(chan struct{}, 100), hold: make(chan struct{})}
			b := newVerifier(t, store, c)
			key, _ := apikey.Generate()
			if tc.known {
				var err error
				if key, _, err = a.Create(ctx, neostore.NewAPIKey{Tenant: "t1", Scopes: readWrite}); err != nil {
					t.Fatal(err)
				}
			}
			const n = 20
			var wg sync.WaitGroup
			errs := make(chan error, n)
			start := func() {
				wg.Go(func() {
					_, err := b.Verify(ctx, key)
					errs <- err
				})
			}
			start()
			select { // the first look-up is in flight, held
			case <-store.entered:
			case <-time.After(10 * time.Second):
				close(store.hold)
				t.Fatal("no look-up reached the store")
			}
			for range n - 1 {
				start()
			}
			// Give the others time to reach the look-up; with one flight
			// per hash they wait on it, without one each would query. The
			// wait only makes a regression visible: the count below is
			// exact either way.
			time.Sleep(100 * time.Millisecond)
			close(store.hold)
			wg.Wait()
			close(errs)
			for err := range errs {
				if tc.known && err != nil {
					t.Errorf("Verify: %v", err)
				}
				if !tc.known && neostore.ErrorCode(err) != neostore.EUNAUTHENTICATED {
					t.Errorf("Verify: err = %v, want EUNAUTHENTICATED", err)
				}
			}
			if got := store.lookups.Load(); got != 1 {
				t.Errorf("store look-ups for %d concurrent first uses = %d, want 1", n, got)
			}
		})
	}
}

func TestVerifier_RevokeKeepsLastUse(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	store := openStore(t)
	v := newVerifier(t, store, c)
	key, rec, err := v.Create(ctx, neostore.NewAPIKey{Tenant: "t1", Scopes: readWrite})
	if err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Second)
	used := c.Now()
	if _, err := v.Verify(ctx, key); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Second)
	// Revoked well within the flush interval: no FlushLastUsed between.
	if err := v.Revoke(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	listed, err := v.List(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	if !listed[0].LastUsed.Set || !listed[0].LastUsed.At.Equal(used) {
		t.Errorf("List after revoke: LastUsed = %+v, want %v", listed[0].LastUsed, used)
	}
	stored, err := store.ListAPIKeys(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	if !stored[0].LastUsed.Set || !stored[0].LastUsed.At.Equal(used) || !stored[0].RevokedAt.Set {
		t.Errorf("stored after revoke: LastUsed = %+v RevokedAt = %+v, want the use at %v and the revocation", stored[0].LastUsed, stored[0].RevokedAt, used)
	}
}
