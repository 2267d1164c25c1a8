package envelope

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets"
	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
)

// The rest of memStore, for the Rotator: secrets, ListTenants, the audit key
// and the compare-and-swap writes.

func (s *memStore) ReplaceTenantKey(ctx context.Context, tenant string, old, wrapped []byte) error {
	s.mu.Lock()
	if s.err != nil {
		defer s.mu.Unlock()
		return s.err
	}
	cur, ok := s.tenants[tenant]
	if !ok || !bytes.Equal(cur, old) {
		s.mu.Unlock()
		return neostore.Errorf(neostore.ECONFLICT, "Tenant key changed.")
	}
	s.tenants[tenant] = bytes.Clone(wrapped)
	s.replaces++
	n, hook := s.replaces, s.onReplaceTenantKey
	s.mu.Unlock()
	if hook != nil {
		hook(n)
	}
	return nil
}

func (s *memStore) ReplaceKeyCheck(ctx context.Context, old, record []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.check == nil || !bytes.Equal(s.check, old) {
		return neostore.Errorf(neostore.ECONFLICT, "Key check changed.")
	}
	s.check = bytes.Clone(record)
	return nil
}

func (s *memStore) GetAuditKey(ctx context.Context) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.audit == nil {
		return nil, neostore.Errorf(neostore.ENOTFOUND, "No audit key.")
	}
	return bytes.Clone(s.audit), nil
}

func (s *memStore) ReplaceAuditKey(ctx context.Context, old, wrapped []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.audit == nil || !bytes.Equal(s.audit, old) {
		return neostore.Errorf(neostore.ECONFLICT, "Audit key changed.")
	}
	s.audit = bytes.Clone(wrapped)
	return nil
}

func (s *memStore) GetSecret(ctx context.Context, tenant, key string) (neostore.SealedSecret, error) {
	s.mu.Lock()
	sec, ok := s.secrets[tenant+"/"+key]
	hook := s.onGetSecret
	s.mu.Unlock()
	if !ok {
		return sec, neostore.Errorf(neostore.ENOTFOUND, "Secret not found.")
	}
	sec.Ciphertext = bytes.Clone(sec.Ciphertext)
	if hook != nil {
		hook(tenant, key)
	}
	return sec, nil
}

func (s *memStore) PutSecret(ctx context.Context, tenant, key string, sec neostore.SealedSecret, _ neostore.Change) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec.Ciphertext = bytes.Clone(sec.Ciphertext)
	s.secrets[tenant+"/"+key] = sec
	return nil
}

func (s *memStore) DeleteSecret(ctx context.Context, tenant, key string, _ neostore.Change) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.secrets, tenant+"/"+key)
	return nil
}

func (s *memStore) ListSecretKeysAfter(ctx context.Context, tenant, after string, limit int) ([]string, error) {
	all, _ := s.ListSecretKeys(ctx, tenant)
	i, _ := slices.BinarySearch(all, after)
	if i < len(all) && all[i] == after {
		i++
	}
	return all[i:min(len(all), i+max(limit, 0))], nil
}

func (s *memStore) ListSecretKeys(ctx context.Context, tenant string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := []string{}
	for tk := range s.secrets {
		if t, k, _ := strings.Cut(tk, "/"); t == tenant {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys, nil
}

func (s *memStore) ListSecretAttributes(ctx context.Context, tenant string) ([]neostore.SecretAttributes, error) {
	keys, _ := s.ListSecretKeys(ctx, tenant)
	s.mu.Lock()
	defer s.mu.Unlock()
	attrs := []neostore.SecretAttributes{}
	for _, k := range keys {
		sec := s.secrets[tenant+"/"+k]
		attrs = append(attrs, neostore.SecretAttributes{Key: k, Validity: sec.Validity, Times: sec.Times})
	}
	return attrs, nil
}

func (s *memStore) ReplaceSecret(ctx context.Context, tenant, key string, old []byte, sec neostore.SealedSecret) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.secrets[tenant+"/"+key]
	if !ok || !bytes.Equal(cur.Ciphertext, old) {
		return neostore.Errorf(neostore.ECONFLICT, "Secret changed.")
	}
	sec.Ciphertext = bytes.Clone(sec.Ciphertext)
	s.secrets[tenant+"/"+key] = sec
	return nil
}

func (s *memStore) ListTenants(ctx context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	for t := range s.tenants {
		seen[t] = true
	}
	for tk := range s.secrets {
		t, _, _ := strings.Cut(tk, "/")
		seen[t] = true
	}
	tenants := []string{}
	for t := range seen {
		tenants = append(tenants, t)
	}
	slices.Sort(tenants)
	return tenants, nil
}

// node is one server process over a shared store: its master keyset (read
// from a file, so it can be reloaded), sealer, secret service and rotator.
type node struct {
	master  *Master
	sealer  *Sealer
	secrets *neostore.SecretService
	rotator *Rotator
}

func newNode(t *testing.T, keyFile string, store *memStore) *node {
	t.Helper()
	m, err := ReadMasterFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.CheckKey(t.Context(), store); err != nil {
		t.Fatalf("CheckKey: %v", err)
	}
	s := NewSealer(m, store)
	return &node{master: m, sealer: s, secrets: neostore.NewSecretService(store, s, time.Now), rotator: NewRotator(s, store)}
}

// newKeyFile writes a fresh master keyset file and returns its path.
func newKeyFile(t *testing.T) string {
	t.Helper()
	js, err := NewMasterKeyset()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "master.json")
	if err := WriteMasterFile(path, js); err != nil {
		t.Fatal(err)
	}
	return path
}

func primaryID(t *testing.T, m *Master) uint32 {
	t.Helper()
	for _, k := range m.Keys() {
		if k.Primary {
			return k.ID
		}
	}
	t.Fatalf("no primary key")
	return 0
}

func mustPut(t *testing.T, n *node, tenant, key, value string) {
	t.Helper()
	if err := n.secrets.Put(t.Context(), mustSecretPut(t, tenant, key, value), neostore.Change{}); err != nil {
		t.Fatalf("Put(%s/%s): %v", tenant, key, err)
	}
}

func wantValue(t *testing.T, n *node, tenant, key, want string) {
	t.Helper()
	got, err := n.secrets.Get(t.Context(), tenant, key)
	if err != nil || string(got) != want {
		t.Errorf("Get(%s/%s) = %q, %v; want %q", tenant, key, got, err, want)
	}
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := neostore.ErrorCode(err); got != code {
		t.Errorf("%s: error code %q (err %v), want %q", what, got, err, code)
	}
}

func TestAddMasterKey(t *testing.T) {
	path := newKeyFile(t)
	before, err := ReadMasterFile(path)
	if err != nil {
		t.Fatal(err)
	}
	oldID := primaryID(t, before)
	id, err := AddMasterKey(path)
	if err != nil {
		t.Fatalf("AddMasterKey: %v", err)
	}
	after, err := ReadMasterFile(path)
	if err != nil {
		t.Fatalf("ReadMasterFile after AddMasterKey: %v", err)
	}
	keys := after.Keys()
	if len(keys) != 2 || primaryID(t, after) != id || id == oldID {
		t.Fatalf("keys after AddMasterKey = %+v, want the old key %d and the new primary %d", keys, oldID, id)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode after AddMasterKey = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("directory holds %d files after AddMasterKey, want only the key file (no temporary left)", len(entries))
	}
	// What the old key sealed still opens.
	store := newMemStore()
	if err := before.CheckKey(t.Context(), store); err != nil {
		t.Fatal(err)
	}
	if err := after.CheckKey(t.Context(), store); err != nil {
		t.Errorf("CheckKey of a store made with the old keyset: %v", err)
	}
}

func TestRemoveMasterKey(t *testing.T) {
	path := newKeyFile(t)
	m, _ := ReadMasterFile(path)
	oldID := primaryID(t, m)
	newID, err := AddMasterKey(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("RefusesPrimary", func(t *testing.T) {
		err := RemoveMasterKey(path, newID)
		if err == nil || !strings.Contains(err.Error(), "primary") {
			t.Fatalf("RemoveMasterKey(primary) = %v, want a refusal naming the primary", err)
		}
	})
	t.Run("RefusesUnknown", func(t *testing.T) {
		if err := RemoveMasterKey(path, 12345); err == nil {
			t.Fatalf("RemoveMasterKey(unknown) succeeded")
		}
	})
	t.Run("RemovesOld", func(t *testing.T) {
		if err := RemoveMasterKey(path, oldID); err != nil {
			t.Fatalf("RemoveMasterKey(old): %v", err)
		}
		m, err := ReadMasterFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if keys := m.Keys(); len(keys) != 1 || keys[0].ID != newID || !keys[0].Primary {
			t.Errorf("keys after removal = %+v, want only %d, primary", keys, newID)
		}
	})
}

// TestRotator_MasterRotation walks the whole master-key rotation on one
// node: rotate the file, reload, rewrap, check removal, remove, reload.
func TestRotator_MasterRotation(t *testing.T) {
	ctx := t.Context()
	store := newMemStore()
	path := newKeyFile(t)
	n := newNode(t, path, store)
	oldID := primaryID(t, n.master)
	for _, tenant := range []string{"acme", "globex", "initech"} {
		for i := range 3 {
			mustPut(t, n, tenant, fmt.Sprintf("k%d", i), tenant+"-value")
		}
	}
	store.audit, _ = n.master.current().aead.Encrypt([]byte("audit key material"), []byte(labelAuditKey))

	newID, err := AddMasterKey(path)
	if err != nil {
		t.Fatal(err)
	}

	// Before the reload, the node still wraps with the old key.
	if err := n.rotator.CheckMasterKeyRemoval(ctx, oldID); neostore.ErrorCode(err) != neostore.ECONFLICT || !strings.Contains(err.Error(), "primary") {
		t.Errorf("CheckMasterKeyRemoval of the primary in use = %v, want ECONFLICT naming the primary", err)
	}

	keys, err := n.rotator.ReloadMaster(ctx)
	if err != nil {
		t.Fatalf("ReloadMaster: %v", err)
	}
	if len(keys) != 2 || primaryID(t, n.master) != newID {
		t.Fatalf("keys after reload = %+v, want 2 with primary %d", keys, newID)
	}
	for _, k := range keys {
		if k.ID == oldID && (k.TenantKeys != 3 || !k.KeyCheck || !k.AuditKey) {
			t.Errorf("old key usage = %+v, want 3 tenant keys, the key check and the audit key", k)
		}
	}
	// New tenants get keys wrapped under the new primary; old ones still open.
	mustPut(t, n, "newco", "k", "newco-value")
	if id, _ := wrappingKeyID(store.tenants["newco"]); id != newID {
		t.Errorf("new tenant key wrapped under %d, want the new primary %d", id, newID)
	}
	wantValue(t, n, "acme", "k0", "acme-value")

	err = n.rotator.CheckMasterKeyRemoval(ctx, oldID)
	wantCode(t, "CheckMasterKeyRemoval before rewrap", err, neostore.ECONFLICT)
	if msg := neostore.ErrorMessage(err); !strings.Contains(msg, "3 tenant data keys") || !strings.Contains(msg, "key-check record") || !strings.Contains(msg, "audit key") || !strings.Contains(msg, "rewrap") {
		t.Errorf("refusal message = %q, want it to count 3 tenant keys, name the key-check record and the audit key, and say rewrap", msg)
	}
	wantCode(t, "CheckMasterKeyRemoval of the new primary", n.rotator.CheckMasterKeyRemoval(ctx, newID), neostore.ECONFLICT)
	wantCode(t, "CheckMasterKeyRemoval of an unknown key", n.rotator.CheckMasterKeyRemoval(ctx, 42), neostore.ENOTFOUND)

	rep, err := n.rotator.Rewrap(ctx)
	if err != nil {
		t.Fatalf("Rewrap: %v", err)
	}
	if want := (neostore.RewrapReport{Tenants: 4, Rewrapped: 3, KeyCheckResealed: true, AuditKeyResealed: true}); rep != want {
		t.Errorf("Rewrap = %+v, want %+v", rep, want)
	}
	again, err := n.rotator.Rewrap(ctx)
	if err != nil || again != (neostore.RewrapReport{Tenants: 4}) {
		t.Errorf("second Rewrap = %+v, %v; want nothing rewrapped", again, err)
	}
	if err := n.rotator.CheckMasterKeyRemoval(ctx, oldID); err != nil {
		t.Fatalf("CheckMasterKeyRemoval after rewrap: %v", err)
	}
	if err := RemoveMasterKey(path, oldID); err != nil {
		t.Fatal(err)
	}
	if _, err := n.rotator.ReloadMaster(ctx); err != nil {
		t.Fatalf("ReloadMaster after removal: %v", err)
	}

	// A restarted node knows only the new key and reads everything.
	fresh := newNode(t, path, store)
	for _, tenant := range []string{"acme", "globex", "initech"} {
		for i := range 3 {
			wantValue(t, fresh, tenant, fmt.Sprintf("k%d", i), tenant+"-value")
		}
	}
	wantValue(t, fresh, "newco", "k", "newco-value")
	if pt, err := fresh.master.current().aead.Decrypt(store.audit, []byte(labelAuditKey)); err != nil || string(pt) != "audit key material" {
		t.Errorf("audit key after rotation = %q, %v", pt, err)
	}
}

func TestRotator_ReloadMaster(t *testing.T) {
	ctx := t.Context()

	t.Run("RefusesAnotherKeyset", func(t *testing.T) {
		store := newMemStore()
		path := newKeyFile(t)
		n := newNode(t, path, store)
		mustPut(t, n, "acme", "k", "v")
		other, _ := NewMasterKeyset()
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		if err := WriteMasterFile(path, other); err != nil {
			t.Fatal(err)
		}
		_, err := n.rotator.ReloadMaster(ctx)
		wantCode(t, "ReloadMaster of a foreign keyset", err, neostore.EINVALID)
		if !strings.Contains(neostore.ErrorMessage(err), "key-check") {
			t.Errorf("message = %q, want it to name the key-check record", neostore.ErrorMessage(err))
		}
		wantValue(t, n, "acme", "k", "v")
		mustPut(t, n, "newco", "k", "still works")
	})

	t.Run("RefusesKeysetMissingAUsedKey", func(t *testing.T) {
		store := newMemStore()
		path := newKeyFile(t)
		n := newNode(t, path, store)
		mustPut(t, n, "acme", "k", "v")
		oldID := primaryID(t, n.master)
		if _, err := AddMasterKey(path); err != nil {
			t.Fatal(err)
		}
		if _, err := n.rotator.ReloadMaster(ctx); err != nil {
			t.Fatal(err)
		}
		// The operator edits the file by hand, dropping the old key
		// without a rewrap; the key check is resealed so it still opens.
		if _, err := n.rotator.reseal(ctx, n.master.current(), labelKeyCheck, store.GetKeyCheck, store.ReplaceKeyCheck); err != nil {
			t.Fatal(err)
		}
		if err := RemoveMasterKey(path, oldID); err != nil {
			t.Fatal(err)
		}
		_, err := n.rotator.ReloadMaster(ctx)
		wantCode(t, "ReloadMaster of a keyset without a key in use", err, neostore.EINVALID)
		if msg := neostore.ErrorMessage(err); !strings.Contains(msg, fmt.Sprint(oldID)) || !strings.Contains(msg, "1 tenant data keys") {
			t.Errorf("message = %q, want it to name key %d and count the tenant key", msg, oldID)
		}
		wantValue(t, n, "acme", "k", "v")
	})

	t.Run("RefusesWithoutFile", func(t *testing.T) {
		store := newMemStore()
		s := NewSealer(mustMaster(t), store)
		_, err := NewRotator(s, store).ReloadMaster(ctx)
		wantCode(t, "ReloadMaster of a keyset from memory", err, neostore.EINVALID)
	})
}

func TestRotator_Rewrap(t *testing.T) {
	t.Run("RefusesWrongMaster", func(t *testing.T) {
		store := newMemStore()
		n := newNode(t, newKeyFile(t), store)
		mustPut(t, n, "acme", "k", "v")
		before := bytes.Clone(store.tenants["acme"])
		wrong := NewSealer(mustMaster(t), store)
		_, err := NewRotator(wrong, store).Rewrap(t.Context())
		if !errors.Is(err, ErrWrongMasterKey) || neostore.ErrorCode(err) != neostore.EINVALID {
			t.Fatalf("Rewrap with another master = %v, want EINVALID wrapping ErrWrongMasterKey", err)
		}
		if !bytes.Equal(store.tenants["acme"], before) {
			t.Errorf("a refused Rewrap changed a tenant key")
		}
	})

	t.Run("StaleNodeKeepsServingCachedTenants", func(t *testing.T) {
		// Node B has not reloaded the rotated master file. Rewrap changes
		// the wrapping, not the data keys: B keeps sealing and opening
		// for the tenants it has cached, without unwrapping again.
		store := newMemStore()
		path := newKeyFile(t)
		a, b := newNode(t, path, store), newNode(t, path, store)
		mustPut(t, a, "acme", "k", "v")
		wantValue(t, b, "acme", "k", "v")
		if _, err := AddMasterKey(path); err != nil {
			t.Fatal(err)
		}
		if _, err := a.rotator.ReloadMaster(t.Context()); err != nil {
			t.Fatal(err)
		}
		if rep, err := a.rotator.Rewrap(t.Context()); err != nil || rep.Rewrapped != 1 {
			t.Fatalf("Rewrap = %+v, %v", rep, err)
		}
		clock := time.Now().Add(time.Hour) // past every refresh interval
		b.sealer.now = func() time.Time { return clock }
		mustPut(t, b, "acme", "k2", "v2")
		wantValue(t, a, "acme", "k2", "v2")
		if got := b.sealer.cached("acme"); !bytes.Equal(got.wrapped, store.tenants["acme"]) {
			t.Errorf("B's cache did not take the rewrapped key's bytes")
		}
	})
}

// TestSealer_KeyRefresh shows how a node notices a data-key rotation made by
// another node: Open at once (one re-read on failure), Seal within
// DefaultKeyRefresh.
func TestSealer_KeyRefresh(t *testing.T) {
	ctx := t.Context()
	store := newMemStore()
	path := newKeyFile(t)
	a, b, c := newNode(t, path, store), newNode(t, path, store), newNode(t, path, store)
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	c.sealer.now = func() time.Time { return time.Unix(0, clock.Load()) }
	mustPut(t, a, "acme", "old", "sealed-before")
	wantValue(t, b, "acme", "old", "sealed-before") // B caches the data key
	mustPut(t, c, "acme", "c", "from C")            // so does C
	oldKey := tenantPrimary(t, a.master, store, "acme")

	_, newKey, err := a.rotator.addTenantKey(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.sealer.load(ctx, "acme", false, a.sealer.cached("acme")); err != nil {
		t.Fatal(err)
	}
	ct, err := a.sealer.Seal(ctx, "acme", "k", []byte("from A"))
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := prefixKeyID(ct); id != newKey {
		t.Fatalf("A sealed under data key %d, want the new %d", id, newKey)
	}

	t.Run("OpenRereadsOnce", func(t *testing.T) {
		gets, _ := store.stats()
		if pt, err := b.sealer.Open(ctx, "acme", "k", ct); err != nil || string(pt) != "from A" {
			t.Fatalf("B opened A's new ciphertext = %q, %v", pt, err)
		}
		if after, _ := store.stats(); after-gets != 1 {
			t.Errorf("B read the tenant key %d times to open it, want 1", after-gets)
		}
		// B's cache now holds the new keyset: it seals under the new key.
		ct, err := b.sealer.Seal(ctx, "acme", "k", []byte("from B"))
		if id, _ := prefixKeyID(ct); err != nil || id != newKey {
			t.Errorf("B sealed under %d, %v; want the new %d", id, err, newKey)
		}
	})

	t.Run("SealRefreshesAfterInterval", func(t *testing.T) {
		ct, err := c.sealer.Seal(ctx, "acme", "k", []byte("from C"))
		if id, _ := prefixKeyID(ct); err != nil || id != oldKey {
			t.Errorf("C sealed within the interval under %d, %v; want its cached old key %d", id, err, oldKey)
		}
		clock.Add(int64(DefaultKeyRefresh))
		ct, err = c.sealer.Seal(ctx, "acme", "k", []byte("from C"))
		if id, _ := prefixKeyID(ct); err != nil || id != newKey {
			t.Errorf("C sealed after the interval under %d, %v; want the new %d", id, err, newKey)
		}
	})

	t.Run("DamagedCiphertextStillFails", func(t *testing.T) {
		gets, _ := store.stats()
		wantOpenFails(t, b.sealer, "acme", "k", append(bytes.Clone(ct[:len(ct)-1]), ct[len(ct)-1]^1))
		if after, _ := store.stats(); after-gets != 1 {
			t.Errorf("a failed Open read the tenant key %d times, want 1", after-gets)
		}
	})
}

// TestSealer_SealUsesCachedKeyWithinInterval pins the bound from the other
// side: within the interval a Seal costs no store read.
func TestSealer_SealUsesCachedKeyWithinInterval(t *testing.T) {
	store := newMemStore()
	s := NewSealer(mustMaster(t), store)
	clock := time.Now()
	s.now = func() time.Time { return clock }
	mustSeal(t, s, "acme", "k", []byte("v"))
	before, _ := store.stats()
	for range 10 {
		clock = clock.Add(DefaultKeyRefresh / 20)
		mustSeal(t, s, "acme", "k", []byte("v"))
	}
	if after, _ := store.stats(); after != before {
		t.Errorf("Seals within the refresh interval read the tenant key %d times, want 0", after-before)
	}
	clock = clock.Add(DefaultKeyRefresh)
	mustSeal(t, s, "acme", "k", []byte("v"))
	if after, _ := store.stats(); after != before+1 {
		t.Errorf("a Seal after the interval read the tenant key %d times, want 1", after-before)
	}
}

// tenantPrimary returns the primary data key id of tenant's stored keyset.
func tenantPrimary(t *testing.T, m *Master, store *memStore, tenant string) uint32 {
	t.Helper()
	h, err := unwrapWith(m.current().aead, tenant, store.tenants[tenant])
	if err != nil {
		t.Fatal(err)
	}
	p, err := h.Primary()
	if err != nil {
		t.Fatal(err)
	}
	return p.KeyID()
}

func tenantKeyIDs(t *testing.T, m *Master, store *memStore, tenant string) []uint32 {
	t.Helper()
	store.mu.Lock()
	wrapped := bytes.Clone(store.tenants[tenant])
	store.mu.Unlock()
	h, err := unwrapWith(m.current().aead, tenant, wrapped)
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint32
	for i := range h.Len() {
		e, _ := h.Entry(i)
		ids = append(ids, e.KeyID())
	}
	return ids
}

func TestRotator_RotateTenantKey(t *testing.T) {
	ctx := t.Context()

	t.Run("UnderLoadOnTwoNodes", func(t *testing.T) {
		store := newMemStore()
		path := newKeyFile(t)
		a, b := newNode(t, path, store), newNode(t, path, store)
		const seeded = 60
		for i := range seeded {
			mustPut(t, a, "acme", fmt.Sprintf("s%02d", i), fmt.Sprintf("static-%d", i))
		}
		mustPut(t, a, "globex", "k", "globex-value")
		oldKey := tenantPrimary(t, a.master, store, "acme")
		globexWrapped := bytes.Clone(store.tenants["globex"])

		// Readers on both nodes check every static value; writers on both
		// nodes overwrite and delete keys of their own.
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var reads, writes, failures atomic.Int64
		for w, n := range []*node{a, b, a, b} {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					k := i % seeded
					got, err := n.secrets.Get(ctx, "acme", fmt.Sprintf("s%02d", k))
					reads.Add(1)
					if err != nil || string(got) != fmt.Sprintf("static-%d", k) {
						failures.Add(1)
						t.Errorf("reader %d: Get(s%02d) = %q, %v", w, k, got, err)
						return
					}
				}
			})
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					key, want := fmt.Sprintf("w%d-%d", w, i%5), fmt.Sprintf("v%d-%d", w, i)
					put, err := neostore.NewSecretPut("acme", key, []byte(want), neostore.Validity{})
					if err == nil {
						err = n.secrets.Put(ctx, put, neostore.Change{})
					}
					if err != nil {
						failures.Add(1)
						t.Errorf("writer %d: Put: %v", w, err)
						return
					}
					writes.Add(1)
					if got, err := n.secrets.Get(ctx, "acme", key); err != nil || string(got) != want {
						failures.Add(1)
						t.Errorf("writer %d: Get after Put = %q, %v; want %q", w, got, err, want)
						return
					}
					if i%7 == 6 {
						if err := n.secrets.Delete(ctx, "acme", key, neostore.Change{}); err != nil {
							t.Errorf("writer %d: Delete: %v", w, err)
						}
					}
				}
			})
		}
		time.Sleep(50 * time.Millisecond)
		// The other node's Seal notices within DefaultKeyRefresh; the grace
		// covers it.
		rep, err := a.rotator.RotateTenantKey(ctx, "acme", DefaultKeyRefresh+500*time.Millisecond)
		time.Sleep(50 * time.Millisecond)
		close(stop)
		wg.Wait()
		if err != nil {
			t.Fatalf("RotateTenantKey: %v", err)
		}
		t.Logf("under load: %d reads, %d writes, %d failures; %+v", reads.Load(), writes.Load(), failures.Load(), rep)
		if reads.Load() == 0 || writes.Load() == 0 {
			t.Fatalf("the load did not run")
		}
		if rep.NewKeyID == oldKey || !slices.Equal(rep.RemovedKeyIDs, []uint32{oldKey}) || rep.Secrets < seeded || rep.Resealed < seeded {
			t.Errorf("report = %+v, want new key, old %d removed, at least %d secrets resealed", rep, oldKey, seeded)
		}
		if ids := tenantKeyIDs(t, a.master, store, "acme"); !slices.Equal(ids, []uint32{rep.NewKeyID}) {
			t.Errorf("stored data keys = %v, want only the new %d", ids, rep.NewKeyID)
		}
		// Every stored ciphertext is under the new key, and a fresh node,
		// which knows only the stored keyset, reads every value.
		fresh := newNode(t, path, store)
		keys, _ := store.ListSecretKeys(ctx, "acme")
		for _, k := range keys {
			sec, _ := store.GetSecret(ctx, "acme", k)
			if id, _ := prefixKeyID(sec.Ciphertext); id != rep.NewKeyID {
				t.Errorf("secret %s is sealed under data key %d, want %d", k, id, rep.NewKeyID)
			}
			if _, err := fresh.secrets.Get(ctx, "acme", k); err != nil {
				t.Errorf("fresh node: Get(%s): %v", k, err)
			}
		}
		for i := range seeded {
			wantValue(t, fresh, "acme", fmt.Sprintf("s%02d", i), fmt.Sprintf("static-%d", i))
		}
		if !bytes.Equal(store.tenants["globex"], globexWrapped) {
			t.Errorf("rotating acme changed globex's key")
		}
		wantValue(t, fresh, "globex", "k", "globex-value")
	})

	t.Run("StragglerAfterRemovalIsResealed", func(t *testing.T) {
		// A write sealed under the old key before the rotation reaches the
		// store only after the old key was removed (slower than the
		// grace): the last pass seals it anew with the keys in memory.
		store := newMemStore()
		n := newNode(t, newKeyFile(t), store)
		mustPut(t, n, "acme", "k", "v")
		late, err := n.sealer.Seal(ctx, "acme", "late", []byte("late value"))
		if err != nil {
			t.Fatal(err)
		}
		store.onReplaceTenantKey = func(count int) {
			if count == 2 { // the removal of the old key
				store.PutSecret(ctx, "acme", "late", neostore.SealedSecret{Ciphertext: late}, neostore.Change{})
			}
		}
		rep, err := n.rotator.RotateTenantKey(ctx, "acme", 0)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Resealed != 2 {
			t.Errorf("Resealed = %d, want 2 (k, then the straggler)", rep.Resealed)
		}
		wantValue(t, newNode(t, n.master.path, store), "acme", "late", "late value")
	})

	t.Run("ConcurrentWriteIsSkippedNotOverwritten", func(t *testing.T) {
		store := newMemStore()
		n := newNode(t, newKeyFile(t), store)
		mustPut(t, n, "acme", "k", "old value")
		mustPut(t, n, "acme", "gone", "deleted meanwhile")
		mustPut(t, n, "acme", "plain", "resealed")
		// A client writes k and deletes gone between the rotator's read of
		// each and its swap.
		var once sync.Map
		store.onGetSecret = func(tenant, key string) {
			if _, done := once.LoadOrStore(key, true); done {
				return
			}
			switch key {
			case "k":
				mustPut(t, n, "acme", "k", "client value")
			case "gone":
				n.secrets.Delete(ctx, "acme", "gone", neostore.Change{})
			}
		}
		rep, err := n.rotator.RotateTenantKey(ctx, "acme", 0)
		if err != nil {
			t.Fatal(err)
		}
		wantValue(t, n, "acme", "k", "client value")
		wantValue(t, n, "acme", "plain", "resealed")
		if _, err := n.secrets.Get(ctx, "acme", "gone"); neostore.ErrorCode(err) != neostore.ENOTFOUND {
			t.Errorf("Get(gone) after a delete during the rotation = %v, want ENOTFOUND (not resurrected)", err)
		}
		if rep.Resealed != 1 || rep.Skipped != 2 {
			t.Errorf("report = %+v, want 1 resealed (plain) and 2 skipped (k, gone)", rep)
		}
	})

	t.Run("UnopenableSecretKeepsOldKeys", func(t *testing.T) {
		store := newMemStore()
		n := newNode(t, newKeyFile(t), store)
		mustPut(t, n, "acme", "k", "v")
		store.PutSecret(ctx, "acme", "bad", neostore.SealedSecret{Ciphertext: []byte("not a ciphertext")}, neostore.Change{})
		_, err := n.rotator.RotateTenantKey(ctx, "acme", 0)
		wantCode(t, "RotateTenantKey with a damaged secret", err, neostore.ECONFLICT)
		if ids := tenantKeyIDs(t, n.master, store, "acme"); len(ids) != 2 {
			t.Errorf("stored data keys = %v, want old and new kept", ids)
		}
		wantValue(t, n, "acme", "k", "v")
	})

	t.Run("UnknownTenant", func(t *testing.T) {
		store := newMemStore()
		n := newNode(t, newKeyFile(t), store)
		_, err := n.rotator.RotateTenantKey(ctx, "nobody", 0)
		wantCode(t, "RotateTenantKey of a tenant without a key", err, neostore.ENOTFOUND)
		_, err = n.rotator.RotateTenantKey(ctx, "bad tenant!", 0)
		wantCode(t, "RotateTenantKey of an invalid tenant id", err, neostore.EINVALID)
	})

	t.Run("AfterMasterRotation", func(t *testing.T) {
		// Rotating a tenant key also wraps it under the current primary.
		store := newMemStore()
		path := newKeyFile(t)
		n := newNode(t, path, store)
		mustPut(t, n, "acme", "k", "v")
		newMaster, err := AddMasterKey(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.rotator.ReloadMaster(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := n.rotator.RotateTenantKey(ctx, "acme", 0); err != nil {
			t.Fatal(err)
		}
		if id, _ := wrappingKeyID(store.tenants["acme"]); id != newMaster {
			t.Errorf("rotated tenant key wrapped under %d, want %d", id, newMaster)
		}
		wantValue(t, n, "acme", "k", "v")
	})
}

// TestSealer_WrappedWithoutKeysetInfo: tenant keys stored before wrapWith
// kept Tink's cleartext KeysetInfo (as keyset.BinaryWriter writes them)
// still open, refresh and rewrap.
func TestSealer_WrappedWithoutKeysetInfo(t *testing.T) {
	ctx := t.Context()
	store := newMemStore()
	path := newKeyFile(t)
	n := newNode(t, path, store)
	h, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := h.WriteWithAssociatedData(keyset.NewBinaryWriter(&buf), n.master.current().aead, tenantKeyAD("acme")); err != nil {
		t.Fatal(err)
	}
	if wrappedInfo(buf.Bytes()) != "" {
		t.Fatalf("Tink's BinaryWriter kept the KeysetInfo; this test no longer covers the old form")
	}
	store.tenants["acme"] = buf.Bytes()
	mustPut(t, n, "acme", "k", "v")
	if _, err := AddMasterKey(path); err != nil {
		t.Fatal(err)
	}
	if _, err := n.rotator.ReloadMaster(ctx); err != nil {
		t.Fatal(err)
	}
	if rep, err := n.rotator.Rewrap(ctx); err != nil || rep.Rewrapped != 1 {
		t.Fatalf("Rewrap = %+v, %v", rep, err)
	}
	if wrappedInfo(store.tenants["acme"]) == "" {
		t.Errorf("the rewrapped key has no KeysetInfo")
	}
	n.sealer.now = func() time.Time { return time.Now().Add(time.Hour) }
	mustPut(t, n, "acme", "k2", "v2")
	wantValue(t, newNode(t, path, store), "acme", "k", "v")
	wantValue(t, newNode(t, path, store), "acme", "k2", "v2")
}

func (s *memStore) CreateAuditKey(ctx context.Context, wrapped []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	if s.audit == nil {
		s.audit = bytes.Clone(wrapped)
	}
	return bytes.Clone(s.audit), nil
}

func (s *memStore) SaveAuditCheckpoint(context.Context, string, uint64, []byte) error { return nil }
func (s *memStore) LoadAuditCheckpoint(context.Context, string) (uint64, []byte, bool, error) {
	return 0, nil, false, nil
}
func (s *memStore) ListAuditCheckpoints(context.Context) ([]neostore.AuditCheckpoint, error) {
	return nil, nil
}

// mustSecretPut returns the checked put of value under tenant's key, with
// no validity window.
func mustSecretPut(t *testing.T, tenant, key, value string) neostore.SecretPut {
	t.Helper()
	p, err := neostore.NewSecretPut(tenant, key, []byte(value), neostore.Validity{})
	if err != nil {
		t.Fatalf("NewSecretPut: %v", err)
	}
	return p
}

// memStore keeps no webhook subscriptions: the Rotator's handling of
// their signing secrets is tested on a real store (webhookrewrap_test.go).

func (s *memStore) ListWebhooks(context.Context) ([]neostore.WebhookSubscription, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return nil, s.err
}

func (s *memStore) GetWebhook(context.Context, string) (neostore.WebhookSubscription, error) {
	return neostore.WebhookSubscription{}, neostore.ErrWebhookNotFound
}

func (s *memStore) UpdateWebhook(context.Context, neostore.WebhookSubscription) error {
	return neostore.ErrWebhookNotFound
}
