package storecopy_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/bolt"
	"github.com/neostore/neostore-secrets/pgtest"
	"github.com/neostore/neostore-secrets/postgres"
	"github.com/neostore/neostore-secrets/storecopy"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func openBolt(t *testing.T) *bolt.Store {
	t.Helper()
	s, err := bolt.Open(filepath.Join(t.TempDir(), "secrets.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openPostgres(t *testing.T) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), pgtest.Start(t), postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// populate writes tenants, sealed secrets (opaque bytes: no key material is
// needed to move them) and API keys, one of them revoked.
func populate(t *testing.T, s neostore.Store) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.CreateKeyCheck(ctx, []byte("key-check-record")); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		tenant := fmt.Sprintf("tenant-%d", i)
		if _, err := s.CreateTenantKey(ctx, tenant, []byte("wrapped-"+tenant)); err != nil {
			t.Fatal(err)
		}
		for j := range 20 {
			sec := neostore.SealedSecret{Ciphertext: []byte(fmt.Sprintf("ct-%d-%d", i, j))}
			if j%3 == 0 {
				sec.Validity = neostore.Validity{
					NotBefore: neostore.At(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)),
					ExpiresOn: neostore.At(time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)),
				}
			}
			if j%2 == 0 { // the others were written before the times were kept
				sec.Times = neostore.SecretTimes{
					CreatedOn: neostore.At(time.Date(2026, 1, 2, 3, 4, 5, j, time.UTC)),
					UpdatedOn: neostore.At(time.Date(2026, 2, 3, 4, 5, 6, j, time.UTC)),
				}
			}
			if err := s.PutSecret(ctx, tenant, fmt.Sprintf("Key-%02d", j), sec, neostore.Change{}); err != nil {
				t.Fatal(err)
			}
		}
		k := neostore.APIKey{ID: "ak_" + tenant, Tenant: tenant, Scopes: neostore.ScopeRead, Hash: []byte("hash-" + tenant), CreatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		if err := s.CreateAPIKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RevokeAPIKey(ctx, "ak_tenant-1", time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
}

func TestCopy_BoltToPostgres(t *testing.T) {
	ctx := context.Background()
	src, dst := openBolt(t), openPostgres(t)
	populate(t, src)

	rep, err := storecopy.Copy(ctx, src, dst)
	if err != nil {
		t.Fatalf("Copy: %v", err)
	}
	if rep.Tenants != 3 || rep.Secrets != 60 || rep.APIKeys != 3 {
		t.Errorf("Copy report = %+v, want 3 tenants, 60 secrets, 3 API keys", rep)
	}
	if _, err := storecopy.Verify(ctx, src, dst); err != nil {
		t.Fatalf("Verify after Copy: %v", err)
	}
	got, err := dst.GetSecret(ctx, "tenant-1", "Key-04")
	if err != nil || !got.Times.CreatedOn.At.Equal(time.Date(2026, 1, 2, 3, 4, 5, 4, time.UTC)) || !got.Times.UpdatedOn.At.Equal(time.Date(2026, 2, 3, 4, 5, 6, 4, time.UTC)) {
		t.Errorf("times not carried over: %+v, %v", got.Times, err)
	}
	if got, err := dst.GetSecret(ctx, "tenant-1", "Key-05"); err != nil || got.Times.CreatedOn.Set || got.Times.UpdatedOn.Set {
		t.Errorf("unknown times not carried over as unknown: %+v, %v", got.Times, err)
	}
	keys, _ := dst.ListAPIKeys(ctx, "tenant-1")
	if len(keys) != 1 || !keys[0].RevokedAt.Set {
		t.Errorf("revocation not carried over: %+v", keys)
	}
	// The copy goes through PutSecret, so the target's due index holds
	// every copied expiry (7 windows in each of 3 tenants).
	due, err := dst.DueEntries(ctx, neostore.DueExpires, time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), 100)
	if err != nil || len(due) != 21 {
		t.Errorf("due index of the target = %d entries, %v; want 21", len(due), err)
	}

	t.Run("SafeToRerun", func(t *testing.T) {
		if err := src.PutSecret(ctx, "tenant-0", "added-later", neostore.SealedSecret{Ciphertext: []byte("new")}, neostore.Change{}); err != nil {
			t.Fatal(err)
		}
		if _, err := storecopy.Copy(ctx, src, dst); err != nil {
			t.Fatalf("second Copy: %v", err)
		}
		if _, err := storecopy.Verify(ctx, src, dst); err != nil {
			t.Fatalf("Verify after second Copy: %v", err)
		}
	})

	t.Run("VerifyCatchesADifference", func(t *testing.T) {
		if err := dst.PutSecret(ctx, "tenant-2", "Key-05", neostore.SealedSecret{Ciphertext: []byte("tampered")}, neostore.Change{}); err != nil {
			t.Fatal(err)
		}
		if _, err := storecopy.Verify(ctx, src, dst); err == nil {
			t.Fatal("Verify passed with a changed ciphertext in the target")
		}
		if err := dst.DeleteSecret(ctx, "tenant-2", "Key-05", neostore.Change{}); err != nil {
			t.Fatal(err)
		}
		if _, err := storecopy.Verify(ctx, src, dst); err == nil {
			t.Fatal("Verify passed with a secret missing from the target")
		}
	})
}

func TestCopy_RefusesAnotherDeployment(t *testing.T) {
	ctx := context.Background()
	src, dst := openBolt(t), openPostgres(t)
	populate(t, src)
	if _, err := dst.CreateKeyCheck(ctx, []byte("another master key")); err != nil {
		t.Fatal(err)
	}
	if _, err := storecopy.Copy(ctx, src, dst); !errors.Is(err, storecopy.ErrConflict) {
		t.Fatalf("Copy into another deployment's database: err = %v, want ErrConflict", err)
	}
	if tenants, _ := dst.ListTenants(ctx); len(tenants) != 0 {
		t.Errorf("Copy wrote tenants %q before refusing", tenants)
	}
}
