package envelope

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/neostore/neostore-secrets"
	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/aead/aesgcm"
	"github.com/tink-crypto/tink-go/v2/insecurecleartextkeyset"
	"github.com/tink-crypto/tink-go/v2/insecuresecretdataaccess"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/mac"
)

// memStore is an in-memory TenantKeyStore and KeyCheckStore. It stands in
// for a map, not a database engine: the bbolt store is not available to this
// package's tests, and these tests are about sealing, not storage.
type memStore struct {
	mu      sync.Mutex
	tenants map[string][]byte
	check   []byte
	secrets map[string]neostore.SealedSecret // by tenant + "/" + key (see rotate_test.go)
	audit   []byte                           // wrapped audit key
	err     error                            // when set, every method returns it

	replaces           int                      // successful ReplaceTenantKey calls
	onReplaceTenantKey func(count int)          // when set, called after each, unlocked
	onGetSecret        func(tenant, key string) // when set, called after each found GetSecret, unlocked
	gets               int                      // GetTenantKey calls
	creates            int                      // CreateTenantKey calls

	// createGate, when set, holds every CreateTenantKey call until as many
	// calls as its count have arrived, so that racing writers really race.
	createGate *sync.WaitGroup
}

func newMemStore() *memStore {
	return &memStore{tenants: make(map[string][]byte), secrets: make(map[string]neostore.SealedSecret)}
}

func (s *memStore) GetTenantKey(ctx context.Context, tenant string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gets++
	if s.err != nil {
		return nil, s.err
	}
	w, ok := s.tenants[tenant]
	if !ok {
		return nil, neostore.Errorf(neostore.ENOTFOUND, "Tenant key not found.")
	}
	return bytes.Clone(w), nil
}

func (s *memStore) CreateTenantKey(ctx context.Context, tenant string, wrapped []byte) ([]byte, error) {
	if s.createGate != nil {
		s.createGate.Done()
		s.createGate.Wait()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.creates++
	if s.err != nil {
		return nil, s.err
	}
	if w, ok := s.tenants[tenant]; ok {
		return bytes.Clone(w), nil
	}
	s.tenants[tenant] = bytes.Clone(wrapped)
	return bytes.Clone(wrapped), nil
}

func (s *memStore) GetKeyCheck(ctx context.Context) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	if s.check == nil {
		return nil, neostore.Errorf(neostore.ENOTFOUND, "No key-check record.")
	}
	return bytes.Clone(s.check), nil
}

func (s *memStore) CreateKeyCheck(ctx context.Context, record []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	if s.check == nil {
		s.check = bytes.Clone(record)
	}
	return bytes.Clone(s.check), nil
}

func (s *memStore) stats() (gets, creates int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets, s.creates
}

func mustMaster(tb testing.TB) *Master {
	tb.Helper()
	js, err := NewMasterKeyset()
	if err != nil {
		tb.Fatal(err)
	}
	m, err := ParseMaster(js)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func mustSeal(tb testing.TB, s *Sealer, tenant, key string, plaintext []byte) []byte {
	tb.Helper()
	ct, err := s.Seal(context.Background(), tenant, key, plaintext)
	if err != nil {
		tb.Fatalf("Seal(%q, %q): %v", tenant, key, err)
	}
	return ct
}

// wantOpenFails asserts that ciphertext does not open as tenant/key and that
// the failure is EINTERNAL with a message that reveals nothing.
func wantOpenFails(t *testing.T, s *Sealer, tenant, key string, ciphertext []byte) {
	t.Helper()
	pt, err := s.Open(context.Background(), tenant, key, ciphertext)
	if err == nil {
		t.Fatalf("Open(%q, %q) = %q, want an error", tenant, key, pt)
	}
	if got := neostore.ErrorCode(err); got != neostore.EINTERNAL {
		t.Errorf("Open(%q, %q) error code = %q, want %q (err: %v)", tenant, key, got, neostore.EINTERNAL, err)
	}
	if got, want := neostore.ErrorMessage(err), "Internal error."; got != want {
		t.Errorf("Open(%q, %q) client message = %q, want %q", tenant, key, got, want)
	}
}

func TestSealer_Seal(t *testing.T) {
	ctx := context.Background()

	t.Run("RoundTrip", func(t *testing.T) {
		s := NewSealer(mustMaster(t), newMemStore())
		for _, pt := range [][]byte{[]byte("x"), []byte("correct horse battery staple"), bytes.Repeat([]byte{0, 0xff}, 16<<10)} {
			ct := mustSeal(t, s, "acme", "db-password", pt)
			if len(pt) >= 8 && bytes.Contains(ct, pt) {
				t.Fatalf("ciphertext contains the plaintext")
			}
			got, err := s.Open(ctx, "acme", "db-password", ct)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(got, pt) {
				t.Fatalf("Open = %q, want %q", got, pt)
			}
		}
	})

	t.Run("SamePlaintextTwiceGivesDifferentCiphertexts", func(t *testing.T) {
		s := NewSealer(mustMaster(t), newMemStore())
		a := mustSeal(t, s, "acme", "k", []byte("v"))
		b := mustSeal(t, s, "acme", "k", []byte("v"))
		if bytes.Equal(a, b) {
			t.Fatalf("two seals of one value gave the same ciphertext: nonce reuse")
		}
	})

	t.Run("CreatesOneDataKeyPerTenant", func(t *testing.T) {
		store := newMemStore()
		s := NewSealer(mustMaster(t), store)
		mustSeal(t, s, "acme", "a", []byte("1"))
		mustSeal(t, s, "acme", "b", []byte("2"))
		mustSeal(t, s, "globex", "a", []byte("3"))
		if got, want := len(store.tenants), 2; got != want {
			t.Fatalf("stored tenant keys = %d, want %d", got, want)
		}
		if _, creates := store.stats(); creates != 2 {
			t.Errorf("CreateTenantKey calls = %d, want 2", creates)
		}
	})

	t.Run("StoreErrorKeepsItsCode", func(t *testing.T) {
		store := newMemStore()
		store.err = neostore.Errorf(neostore.EUNAVAILABLE, "Storage is unavailable.")
		s := NewSealer(mustMaster(t), store)
		_, err := s.Seal(ctx, "acme", "k", []byte("v"))
		if got := neostore.ErrorCode(err); got != neostore.EUNAVAILABLE {
			t.Fatalf("Seal error code = %q, want %q (err: %v)", got, neostore.EUNAVAILABLE, err)
		}
	})

	t.Run("ConcurrentFirstWritesShareOneDataKey", func(t *testing.T) {
		store := newMemStore()
		master := mustMaster(t)
		s := NewSealer(master, store)
		const n = 32
		store.createGate = new(sync.WaitGroup)
		store.createGate.Add(n)
		cts := make([][]byte, n)
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				cts[i], errs[i] = s.Seal(ctx, "newco", fmt.Sprintf("k%d", i), fmt.Appendf(nil, "v%d", i))
			})
		}
		close(start)
		wg.Wait()
		if _, creates := store.stats(); creates != n {
			t.Fatalf("CreateTenantKey calls = %d, want %d: the writers did not race", creates, n)
		}
		if len(store.tenants) != 1 {
			t.Fatalf("stored tenant keys = %d, want 1", len(store.tenants))
		}
		// A fresh Sealer knows only the stored key: every ciphertext must
		// have been sealed with it, not with a losing writer's key.
		fresh := NewSealer(master, store)
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("Seal %d: %v", i, errs[i])
			}
			got, err := fresh.Open(ctx, "newco", fmt.Sprintf("k%d", i), cts[i])
			if err != nil {
				t.Fatalf("Open %d after restart: %v", i, err)
			}
			if want := fmt.Sprintf("v%d", i); string(got) != want {
				t.Fatalf("Open %d = %q, want %q", i, got, want)
			}
		}
	})

	t.Run("ConcurrentFirstWritesFromTwoProcesses", func(t *testing.T) {
		// Two Sealers over one store stand for two server processes that
		// race to create a tenant's key; the loser must adopt the winner's.
		store := newMemStore()
		master := mustMaster(t)
		s1, s2 := NewSealer(master, store), NewSealer(master, store)
		store.createGate = new(sync.WaitGroup)
		store.createGate.Add(2)
		var ct1, ct2 []byte
		var err1, err2 error
		start := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() { <-start; ct1, err1 = s1.Seal(ctx, "newco", "k", []byte("one")) })
		wg.Go(func() { <-start; ct2, err2 = s2.Seal(ctx, "newco", "k", []byte("two")) })
		close(start)
		wg.Wait()
		if err1 != nil || err2 != nil {
			t.Fatalf("Seal: %v, %v", err1, err2)
		}
		if _, err := s2.Open(ctx, "newco", "k", ct1); err != nil {
			t.Errorf("second process cannot open first's ciphertext: %v", err)
		}
		if _, err := s1.Open(ctx, "newco", "k", ct2); err != nil {
			t.Errorf("first process cannot open second's ciphertext: %v", err)
		}
	})
}

func TestSealer_Open(t *testing.T) {
	ctx := context.Background()

	t.Run("MovedToOtherTenant", func(t *testing.T) {
		s := NewSealer(mustMaster(t), newMemStore())
		ct := mustSeal(t, s, "acme", "k", []byte("v"))
		mustSeal(t, s, "globex", "k", []byte("w"))
		wantOpenFails(t, s, "globex", "k", ct)
	})

	t.Run("MovedToOtherKey", func(t *testing.T) {
		s := NewSealer(mustMaster(t), newMemStore())
		ct := mustSeal(t, s, "acme", "k", []byte("v"))
		wantOpenFails(t, s, "acme", "k2", ct)
		wantOpenFails(t, s, "acme", "K", ct)
	})

	t.Run("AmbiguousSplitOfTenantAndKey", func(t *testing.T) {
		s := NewSealer(mustMaster(t), newMemStore())
		ct := mustSeal(t, s, "a", "b-c", []byte("v"))
		wantOpenFails(t, s, "a-b", "c", ct)
	})

	t.Run("AmbiguousSplitUnderOneDataKey", func(t *testing.T) {
		// Different tenants have different data keys, which alone makes the
		// test above fail to open. Give both tenants one data key so that
		// only the associated data tells them apart.
		s := NewSealer(mustMaster(t), newMemStore())
		pairs := []struct{ sealTenant, sealKey, openTenant, openKey string }{
			{"a", "b-c", "a-b", "c"},
			{"a-b", "c", "a", "b-c"},
			{"ab", "c", "a", "bc"},
			{"t", "k", "t_", "k"},
		}
		for _, p := range pairs {
			ct := mustSeal(t, s, p.sealTenant, p.sealKey, []byte("v"))
			s.mu.Lock()
			s.cache[p.openTenant] = s.cache[p.sealTenant]
			s.mu.Unlock()
			wantOpenFails(t, s, p.openTenant, p.openKey, ct)
		}
	})

	t.Run("TamperedByte", func(t *testing.T) {
		s := NewSealer(mustMaster(t), newMemStore())
		ct := mustSeal(t, s, "acme", "k", []byte("a 24-byte secret value!!"))
		for i := range ct {
			bad := bytes.Clone(ct)
			bad[i] ^= 0x01
			wantOpenFails(t, s, "acme", "k", bad)
		}
		wantOpenFails(t, s, "acme", "k", ct[:len(ct)-1])
		wantOpenFails(t, s, "acme", "k", append(bytes.Clone(ct), 0))
		wantOpenFails(t, s, "acme", "k", nil)
	})

	t.Run("TenantWithoutDataKey", func(t *testing.T) {
		store := newMemStore()
		s := NewSealer(mustMaster(t), store)
		wantOpenFails(t, s, "ghost", "k", []byte("whatever ciphertext"))
		if len(store.tenants) != 0 {
			t.Errorf("Open created a tenant key; want none")
		}
	})

	t.Run("StoreErrorKeepsItsCode", func(t *testing.T) {
		store := newMemStore()
		master := mustMaster(t)
		ct := mustSeal(t, NewSealer(master, store), "acme", "k", []byte("v"))
		store.err = neostore.Errorf(neostore.EUNAVAILABLE, "Storage is unavailable.")
		_, err := NewSealer(master, store).Open(ctx, "acme", "k", ct)
		if got := neostore.ErrorCode(err); got != neostore.EUNAVAILABLE {
			t.Fatalf("Open error code = %q, want %q (err: %v)", got, neostore.EUNAVAILABLE, err)
		}
	})

	t.Run("TwoTenantsHaveDifferentDataKeys", func(t *testing.T) {
		store := newMemStore()
		master := mustMaster(t)
		s := NewSealer(master, store)
		ct := mustSeal(t, s, "acme", "k", []byte("v"))
		mustSeal(t, s, "globex", "k", []byte("w"))
		a, b := dataKeyBytes(t, master, "acme", store.tenants["acme"]), dataKeyBytes(t, master, "globex", store.tenants["globex"])
		if bytes.Equal(a, b) {
			t.Fatalf("tenants acme and globex have the same data key")
		}
		// Give globex's data key acme's associated data: the data key alone
		// must stop acme's ciphertext from opening.
		s.mu.RLock()
		globex := s.cache["globex"].aead
		s.mu.RUnlock()
		adp := s.secretAD("acme", "k")
		if _, err := globex.Decrypt(ct, *adp); err == nil {
			t.Fatalf("acme's ciphertext opened under globex's data key")
		}
	})

	t.Run("AfterRestart", func(t *testing.T) {
		store := newMemStore()
		master := mustMaster(t)
		ct := mustSeal(t, NewSealer(master, store), "acme", "k", []byte("v"))
		got, err := NewSealer(master, store).Open(ctx, "acme", "k", ct)
		if err != nil {
			t.Fatalf("Open after restart: %v", err)
		}
		if string(got) != "v" {
			t.Fatalf("Open after restart = %q, want %q", got, "v")
		}
	})

	t.Run("UnderOtherMaster", func(t *testing.T) {
		store := newMemStore()
		ct := mustSeal(t, NewSealer(mustMaster(t), store), "acme", "k", []byte("v"))
		wantOpenFails(t, NewSealer(mustMaster(t), store), "acme", "k", ct)
	})

	t.Run("WarmCacheDoesNotReadTheStore", func(t *testing.T) {
		store := newMemStore()
		s := NewSealer(mustMaster(t), store)
		ct := mustSeal(t, s, "acme", "k", []byte("v"))
		before, _ := store.stats()
		for range 10 {
			if _, err := s.Open(ctx, "acme", "k", ct); err != nil {
				t.Fatal(err)
			}
		}
		if after, _ := store.stats(); after != before {
			t.Fatalf("GetTenantKey calls during warm Opens = %d, want 0", after-before)
		}
	})

	t.Run("ErrorDoesNotContainPlaintext", func(t *testing.T) {
		s := NewSealer(mustMaster(t), newMemStore())
		ct := mustSeal(t, s, "acme", "k", []byte("hunter2-plaintext"))
		_, err := s.Open(ctx, "acme", "other", ct)
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Fatalf("Open error = %v, want an error without the plaintext", err)
		}
	})
}

func TestSealer_TenantKey(t *testing.T) {
	ctx := context.Background()

	t.Run("StoredWrappedNotRaw", func(t *testing.T) {
		store := newMemStore()
		master := mustMaster(t)
		mustSeal(t, NewSealer(master, store), "acme", "k", []byte("v"))
		wrapped := store.tenants["acme"]
		raw := dataKeyBytes(t, master, "acme", wrapped)
		if len(raw) != 32 {
			t.Fatalf("data key length = %d, want 32 (AES-256)", len(raw))
		}
		if bytes.Contains(wrapped, raw) {
			t.Fatalf("the stored tenant key contains the raw data key")
		}
		other := mustMaster(t)
		_, err := keyset.ReadWithAssociatedData(keyset.NewBinaryReader(bytes.NewReader(wrapped)), other.current().aead, tenantKeyAD("acme"))
		if err == nil {
			t.Fatalf("a different master unwrapped the tenant key")
		}
	})

	t.Run("BoundToTenant", func(t *testing.T) {
		// A wrapped key copied to another tenant's record must not unwrap:
		// otherwise whoever can write storage could make two tenants share
		// a key.
		store := newMemStore()
		master := mustMaster(t)
		mustSeal(t, NewSealer(master, store), "acme", "k", []byte("v"))
		store.tenants["globex"] = bytes.Clone(store.tenants["acme"])
		_, err := NewSealer(master, store).Seal(ctx, "globex", "k", []byte("w"))
		if got := neostore.ErrorCode(err); got != neostore.EINTERNAL {
			t.Fatalf("Seal with a copied tenant key: code %q, want %q (err: %v)", got, neostore.EINTERNAL, err)
		}
	})
}

// dataKeyBytes unwraps tenant's data keyset and returns its primary
// AES-GCM key bytes.
func dataKeyBytes(t *testing.T, master *Master, tenant string, wrapped []byte) []byte {
	t.Helper()
	h, err := keyset.ReadWithAssociatedData(keyset.NewBinaryReader(bytes.NewReader(wrapped)), master.current().aead, tenantKeyAD(tenant))
	if err != nil {
		t.Fatalf("unwrap %s's key: %v", tenant, err)
	}
	e, err := h.Primary()
	if err != nil {
		t.Fatal(err)
	}
	k, ok := e.Key().(*aesgcm.Key)
	if !ok {
		t.Fatalf("data key type = %T, want *aesgcm.Key", e.Key())
	}
	return k.KeyBytes().Data(insecuresecretdataaccess.Token{})
}

func TestSecretAD(t *testing.T) {
	// Pairs whose naive concatenation collides must get distinct
	// associated data.
	s := NewSealer(mustMaster(t), newMemStore())
	seen := make(map[string]string)
	for _, tk := range [][2]string{{"a", "b-c"}, {"a-b", "c"}, {"ab", ""}, {"a", "b"}, {"", "ab"}, {"a\x01", "b"}, {"a", "\x01b"}} {
		p := s.secretAD(tk[0], tk[1])
		ad := string(*p)
		s.putAD(p)
		if !strings.HasPrefix(ad, labelSecret) {
			t.Errorf("AD(%q, %q) = %q, want prefix %q", tk[0], tk[1], ad, labelSecret)
		}
		name := fmt.Sprintf("%q/%q", tk[0], tk[1])
		if prev, ok := seen[ad]; ok {
			t.Errorf("AD of %s equals AD of %s", name, prev)
		}
		seen[ad] = name
	}
}

func TestMaster_CheckKey(t *testing.T) {
	ctx := context.Background()

	t.Run("NewStoreGetsRecord", func(t *testing.T) {
		store := newMemStore()
		if err := mustMaster(t).CheckKey(ctx, store); err != nil {
			t.Fatalf("CheckKey on a new store: %v", err)
		}
		if len(store.check) == 0 {
			t.Fatalf("CheckKey stored no key-check record")
		}
		if bytes.Contains(store.check, keyCheckPlaintext) {
			t.Fatalf("key-check record holds the known plaintext in clear")
		}
	})

	t.Run("SameMaster", func(t *testing.T) {
		store := newMemStore()
		m := mustMaster(t)
		if err := m.CheckKey(ctx, store); err != nil {
			t.Fatal(err)
		}
		record := bytes.Clone(store.check)
		if err := m.CheckKey(ctx, store); err != nil {
			t.Fatalf("second CheckKey with the same master: %v", err)
		}
		if !bytes.Equal(store.check, record) {
			t.Errorf("second CheckKey replaced the record")
		}
	})

	t.Run("OtherMaster", func(t *testing.T) {
		store := newMemStore()
		if err := mustMaster(t).CheckKey(ctx, store); err != nil {
			t.Fatal(err)
		}
		record := bytes.Clone(store.check)
		err := mustMaster(t).CheckKey(ctx, store)
		if !errors.Is(err, ErrWrongMasterKey) {
			t.Fatalf("CheckKey with another master = %v, want ErrWrongMasterKey", err)
		}
		if !bytes.Equal(store.check, record) {
			t.Errorf("failed CheckKey replaced the record")
		}
	})

	t.Run("CorruptRecord", func(t *testing.T) {
		store := newMemStore()
		store.check = []byte("not a sealed record")
		if err := mustMaster(t).CheckKey(ctx, store); !errors.Is(err, ErrWrongMasterKey) {
			t.Fatalf("CheckKey with a corrupt record = %v, want ErrWrongMasterKey", err)
		}
	})

	t.Run("RotatedMasterStillMatches", func(t *testing.T) {
		// After a new primary key joins the master keyset, the old key still
		// opens what it sealed: the store must not look foreign.
		store := newMemStore()
		m := mustMaster(t)
		if err := m.CheckKey(ctx, store); err != nil {
			t.Fatal(err)
		}
		mgr := keyset.NewManagerFromHandle(m.current().handle)
		id, err := mgr.Add(aead.AES256GCMKeyTemplate())
		if err != nil {
			t.Fatal(err)
		}
		if err := mgr.SetPrimary(id); err != nil {
			t.Fatal(err)
		}
		h, err := mgr.Handle()
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := insecurecleartextkeyset.Write(h, keyset.NewJSONWriter(&buf)); err != nil {
			t.Fatal(err)
		}
		rotated, err := ParseMaster(buf.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if err := rotated.CheckKey(ctx, store); err != nil {
			t.Fatalf("CheckKey with the rotated master: %v", err)
		}
	})

	t.Run("StoreError", func(t *testing.T) {
		store := newMemStore()
		store.err = neostore.Errorf(neostore.EUNAVAILABLE, "Storage is unavailable.")
		err := mustMaster(t).CheckKey(ctx, store)
		if errors.Is(err, ErrWrongMasterKey) || neostore.ErrorCode(err) != neostore.EUNAVAILABLE {
			t.Fatalf("CheckKey with a failing store = %v, want an EUNAVAILABLE error", err)
		}
	})
}

func TestNewMasterKeyset(t *testing.T) {
	a, err := NewMasterKeyset()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewMasterKeyset()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, b) {
		t.Fatalf("two new master keysets are equal")
	}
	m, err := ParseMaster(a)
	if err != nil {
		t.Fatalf("ParseMaster(NewMasterKeyset()): %v", err)
	}
	if got := m.current().handle.Len(); got != 1 {
		t.Errorf("new master keyset has %d keys, want 1", got)
	}
	if got, want := m.current().handle.KeysetInfo().GetKeyInfo()[0].GetTypeUrl(), "type.googleapis.com/google.crypto.tink.AesGcmKey"; got != want {
		t.Errorf("master key type = %q, want %q", got, want)
	}
}

func TestParseMaster(t *testing.T) {
	macKeyset := func() []byte {
		h, err := keyset.NewHandle(mac.HMACSHA256Tag256KeyTemplate())
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := insecurecleartextkeyset.Write(h, keyset.NewJSONWriter(&buf)); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}()

	tests := []struct {
		name  string
		input []byte
		want  string // substring of the error
	}{
		{"Empty", nil, "not a valid Tink JSON keyset"},
		{"Garbage", []byte("LEAKME-garbage {not json"), "not a valid Tink JSON keyset"},
		{"WrongFieldType", []byte(`{"primaryKeyId": "LEAKME", "key": []}`), "not a valid Tink JSON keyset"},
		{"NoKeys", []byte(`{"primaryKeyId": 1, "key": []}`), "not a valid Tink JSON keyset"},
		{"MACKeyset", macKeyset, "not an AEAD keyset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseMaster(tt.input)
			if err == nil {
				t.Fatalf("ParseMaster = %v, want an error", m)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "LEAKME") || (len(tt.input) > 0 && strings.Contains(err.Error(), string(tt.input))) {
				t.Errorf("error %q quotes the input", err)
			}
		})
	}
}

func TestMaster_String(t *testing.T) {
	js, err := NewMasterKeyset()
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseMaster(js)
	if err != nil {
		t.Fatal(err)
	}
	raw := dataKeyBytesFromHandle(t, m.current().handle)
	for _, s := range []string{fmt.Sprint(m), fmt.Sprintf("%v", m), fmt.Sprintf("%+v", m)} {
		if strings.Contains(s, string(raw)) || strings.Contains(s, "value") {
			t.Errorf("printed Master %q may reveal key material", s)
		}
	}
}

func dataKeyBytesFromHandle(t *testing.T, h *keyset.Handle) []byte {
	t.Helper()
	e, err := h.Primary()
	if err != nil {
		t.Fatal(err)
	}
	return e.Key().(*aesgcm.Key).KeyBytes().Data(insecuresecretdataaccess.Token{})
}

func TestReadMasterFile(t *testing.T) {
	write := func(t *testing.T, content []byte, mode os.FileMode) string {
		t.Helper()
		path := filepath.Join(t.TempDir(), "master.json")
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		// Chmod, because WriteFile's mode passes through the umask.
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		return path
	}
	keysetJSON, err := NewMasterKeyset()
	if err != nil {
		t.Fatal(err)
	}

	t.Run("Private", func(t *testing.T) {
		for _, mode := range []os.FileMode{0o600, 0o400} {
			if _, err := ReadMasterFile(write(t, keysetJSON, mode)); err != nil {
				t.Errorf("ReadMasterFile(mode %#o): %v", mode, err)
			}
		}
	})

	t.Run("ReadableOrWritableByOthers", func(t *testing.T) {
		for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o620, 0o602, 0o660} {
			_, err := ReadMasterFile(write(t, keysetJSON, mode))
			if err == nil {
				t.Fatalf("ReadMasterFile(mode %#o) succeeded, want it refused", mode)
			}
			if !strings.Contains(err.Error(), "chmod 600") {
				t.Errorf("ReadMasterFile(mode %#o) error = %q, want it to say chmod 600", mode, err)
			}
			if strings.Contains(err.Error(), string(keysetJSON)) {
				t.Errorf("error quotes the key file")
			}
		}
	})

	t.Run("Garbage", func(t *testing.T) {
		content := []byte("LEAKME this is not a keyset")
		_, err := ReadMasterFile(write(t, content, 0o600))
		if err == nil {
			t.Fatalf("ReadMasterFile(garbage) succeeded")
		}
		if strings.Contains(err.Error(), "LEAKME") {
			t.Errorf("error %q quotes the file's contents", err)
		}
	})

	t.Run("Missing", func(t *testing.T) {
		if _, err := ReadMasterFile(filepath.Join(t.TempDir(), "none.json")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("ReadMasterFile(missing) = %v, want ErrNotExist", err)
		}
	})

	t.Run("Directory", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Chmod(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadMasterFile(dir); err == nil {
			t.Fatalf("ReadMasterFile(directory) succeeded")
		}
	})
}

func TestWriteMasterFile(t *testing.T) {
	keysetJSON, err := NewMasterKeyset()
	if err != nil {
		t.Fatal(err)
	}

	t.Run("CreatesPrivateFile", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "master.json")
		if err := WriteMasterFile(path, keysetJSON); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("mode = %#o, want 0600", got)
		}
		if _, err := ReadMasterFile(path); err != nil {
			t.Errorf("ReadMasterFile after WriteMasterFile: %v", err)
		}
	})

	t.Run("RefusesToOverwrite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "master.json")
		if err := WriteMasterFile(path, keysetJSON); err != nil {
			t.Fatal(err)
		}
		other, err := NewMasterKeyset()
		if err != nil {
			t.Fatal(err)
		}
		err = WriteMasterFile(path, other)
		if err == nil || !strings.Contains(err.Error(), "already exists") {
			t.Fatalf("WriteMasterFile over an existing file = %v, want an 'already exists' error", err)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, keysetJSON) {
			t.Fatalf("the existing key file was changed")
		}
	})

	t.Run("RefusesInvalidKeyset", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "master.json")
		if err := WriteMasterFile(path, []byte("not a keyset")); err == nil {
			t.Fatalf("WriteMasterFile(garbage) succeeded")
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("WriteMasterFile(garbage) left a file: %v", err)
		}
	})
}

const benchValue = "a 24-byte secret value!!"

func BenchmarkSeal(b *testing.B) {
	ctx := context.Background()
	s := NewSealer(mustMaster(b), newMemStore())
	v := []byte(benchValue)
	mustSeal(b, s, "acme", "db-password", v)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Seal(ctx, "acme", "db-password", v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	ctx := context.Background()
	s := NewSealer(mustMaster(b), newMemStore())
	ct := mustSeal(b, s, "acme", "db-password", []byte(benchValue))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Open(ctx, "acme", "db-password", ct); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenParallel(b *testing.B) {
	ctx := context.Background()
	s := NewSealer(mustMaster(b), newMemStore())
	ct := mustSeal(b, s, "acme", "db-password", []byte(benchValue))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Open(ctx, "acme", "db-password", ct); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// auditState is an in-memory AuditStateStore for the audit-key tests.
type auditState struct {
	mu      sync.Mutex
	wrapped []byte
}

func (s *auditState) GetAuditKey(context.Context) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wrapped == nil {
		return nil, neostore.Errorf(neostore.ENOTFOUND, "No audit key.")
	}
	return bytes.Clone(s.wrapped), nil
}

func (s *auditState) CreateAuditKey(_ context.Context, wrapped []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wrapped == nil {
		s.wrapped = bytes.Clone(wrapped)
	}
	return bytes.Clone(s.wrapped), nil
}

func (s *auditState) ReplaceAuditKey(_ context.Context, old, wrapped []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !bytes.Equal(s.wrapped, old) {
		return neostore.Errorf(neostore.ECONFLICT, "Audit key changed.")
	}
	s.wrapped = bytes.Clone(wrapped)
	return nil
}

func (s *auditState) SaveAuditCheckpoint(context.Context, string, uint64, []byte) error { return nil }
func (s *auditState) LoadAuditCheckpoint(context.Context, string) (uint64, []byte, bool, error) {
	return 0, nil, false, nil
}
func (s *auditState) ListAuditCheckpoints(context.Context) ([]neostore.AuditCheckpoint, error) {
	return nil, nil
}

func TestMaster_AuditKey(t *testing.T) {
	ctx := context.Background()
	m := mustMaster(t)
	st := &auditState{}
	k1, err := m.AuditKey(ctx, st)
	if err != nil || len(k1) != 32 {
		t.Fatalf("AuditKey = %x, %v; want a 32-byte key", k1, err)
	}
	if bytes.Contains(st.wrapped, k1) {
		t.Errorf("the stored audit key is not wrapped")
	}
	k2, err := m.AuditKey(ctx, st)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Errorf("second AuditKey = %x, %v; want the same key", k2, err)
	}
	if _, err := mustMaster(t).AuditKey(ctx, st); neostore.ErrorCode(err) != neostore.EINTERNAL {
		t.Errorf("AuditKey under another master: err = %v, want EINTERNAL", err)
	}
}
