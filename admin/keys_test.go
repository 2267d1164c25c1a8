package admin_test

import (
	"context"
	"log/slog"
	"net/http"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/admin"
)

// keyManager is a neostore.KeyManager that answers with fixed results and
// records what it was asked, to check what crosses the socket.
type keyManager struct {
	keys     []neostore.MasterKey
	rewrap   neostore.RewrapReport
	rotation neostore.TenantKeyRotation
	err      error // returned by every method when set

	mu      sync.Mutex
	removal []uint32
	tenant  string
	grace   time.Duration
}

func (k *keyManager) MasterKeys(context.Context) ([]neostore.MasterKey, error) {
	return k.keys, k.err
}

func (k *keyManager) ReloadMaster(context.Context) ([]neostore.MasterKey, error) {
	return k.keys, k.err
}

func (k *keyManager) Rewrap(context.Context) (neostore.RewrapReport, error) {
	return k.rewrap, k.err
}

func (k *keyManager) CheckMasterKeyRemoval(_ context.Context, id uint32) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.removal = append(k.removal, id)
	return k.err
}

func (k *keyManager) RotateTenantKey(_ context.Context, tenant string, grace time.Duration) (neostore.TenantKeyRotation, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.tenant, k.grace = tenant, grace
	return k.rotation, k.err
}

func serveKeys(t *testing.T, keys neostore.KeyManager) *admin.Client {
	t.Helper()
	dir := t.TempDir()
	ln, err := admin.Listen(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: admin.NewHandler(nil, nil, keys, nil, slog.New(slog.DiscardHandler))}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	c, err := admin.Dial(dir)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClient_KeyManager(t *testing.T) {
	ctx := t.Context()
	km := &keyManager{
		keys: []neostore.MasterKey{
			{ID: 4294967295, Status: neostore.KeyEnabled, TenantKeys: 3, KeyCheck: true},
			{ID: 7, Status: neostore.KeyEnabled, Primary: true, TenantKeys: 1, AuditKey: true},
		},
		rewrap:   neostore.RewrapReport{Tenants: 4, Rewrapped: 3, KeyCheckResealed: true, AuditKeyResealed: true},
		rotation: neostore.TenantKeyRotation{Tenant: "acme_1", NewKeyID: 9, RemovedKeyIDs: []uint32{8}, Secrets: 10, Resealed: 9, Skipped: 1},
	}
	c := serveKeys(t, km)

	t.Run("RoundTrip", func(t *testing.T) {
		if got, err := c.MasterKeys(ctx); err != nil || !reflect.DeepEqual(got, km.keys) {
			t.Errorf("MasterKeys = %+v, %v; want %+v", got, err, km.keys)
		}
		if got, err := c.ReloadMaster(ctx); err != nil || !reflect.DeepEqual(got, km.keys) {
			t.Errorf("ReloadMaster = %+v, %v; want %+v", got, err, km.keys)
		}
		if got, err := c.Rewrap(ctx); err != nil || got != km.rewrap {
			t.Errorf("Rewrap = %+v, %v; want %+v", got, err, km.rewrap)
		}
		if err := c.CheckMasterKeyRemoval(ctx, 4294967295); err != nil || !reflect.DeepEqual(km.removal, []uint32{4294967295}) {
			t.Errorf("CheckMasterKeyRemoval = %v, asked for %v; want nil, [4294967295]", err, km.removal)
		}
		got, err := c.RotateTenantKey(ctx, "acme_1", 1500*time.Millisecond)
		if err != nil || !reflect.DeepEqual(got, km.rotation) {
			t.Errorf("RotateTenantKey = %+v, %v; want %+v", got, err, km.rotation)
		}
		if km.tenant != "acme_1" || km.grace != 1500*time.Millisecond {
			t.Errorf("server asked to rotate %q with grace %v, want acme_1 and 1.5s", km.tenant, km.grace)
		}
	})

	t.Run("ErrorsKeepCodeAndMessage", func(t *testing.T) {
		refusing := &keyManager{err: neostore.Errorf(neostore.ECONFLICT, "Master key 7 still wraps 3 tenant data keys: run keys rewrap first.")}
		c := serveKeys(t, refusing)
		err := c.CheckMasterKeyRemoval(ctx, 7)
		if neostore.ErrorCode(err) != neostore.ECONFLICT || neostore.ErrorMessage(err) != neostore.ErrorMessage(refusing.err) {
			t.Errorf("CheckMasterKeyRemoval error = %v, want the server's ECONFLICT and its message", err)
		}
		_, err = c.Rewrap(ctx)
		if neostore.ErrorCode(err) != neostore.ECONFLICT {
			t.Errorf("Rewrap error = %v, want ECONFLICT", err)
		}
	})

	t.Run("WithoutKeyManager", func(t *testing.T) {
		c := serveKeys(t, nil)
		if _, err := c.MasterKeys(ctx); neostore.ErrorCode(err) != neostore.EINVALID {
			t.Errorf("MasterKeys on a server without key management = %v, want EINVALID", err)
		}
		if _, err := c.RotateTenantKey(ctx, "acme", 0); neostore.ErrorCode(err) != neostore.EINVALID {
			t.Errorf("RotateTenantKey on a server without key management = %v, want EINVALID", err)
		}
	})
}

// auditLog is a neostore.Auditor that keeps records, or refuses them all.
type auditLog struct {
	mu      sync.Mutex
	records []neostore.AuditRecord
	refuse  bool
}

func (a *auditLog) Audit(_ context.Context, r *neostore.AuditRecord) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.refuse {
		return neostore.Errorf(neostore.EUNAVAILABLE, "The audit trail is unavailable.")
	}
	a.records = append(a.records, *r)
	return nil
}

func TestAuditedKeys(t *testing.T) {
	ctx := t.Context()
	km := &keyManager{}
	log := &auditLog{}
	keys := admin.AuditedKeys(km, log, time.Now)
	keys.MasterKeys(ctx)
	keys.ReloadMaster(ctx)
	keys.Rewrap(ctx)
	keys.CheckMasterKeyRemoval(ctx, 1)
	keys.RotateTenantKey(ctx, "acme", 0)
	var got []string
	for _, r := range log.records {
		got = append(got, r.Op+" "+r.Tenant+" "+r.Key)
	}
	want := []string{neostore.OpKeyRotate + "  master", neostore.OpKeyRewrap + "  ", neostore.OpKeyRotate + " acme "}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("audit records = %q, want %q", got, want)
	}

	log.refuse = true
	km.tenant = ""
	if _, err := keys.RotateTenantKey(ctx, "globex", 0); neostore.ErrorCode(err) != neostore.EUNAVAILABLE || km.tenant != "" {
		t.Errorf("RotateTenantKey with the trail down = %v (rotated %q), want EUNAVAILABLE and no rotation", err, km.tenant)
	}
}
