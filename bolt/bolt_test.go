package bolt_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/bolt"
	"github.com/neostore/neostore-secrets/storetest"
)

// mustOpen opens a store in a fresh file under t.TempDir(). On cleanup it
// closes the store, re-opens the file read-only and fails the test if
// bbolt's consistency check finds a fault, as bbolt's own btesting does.
func mustOpen(tb testing.TB) *bolt.Store {
	tb.Helper()
	return mustOpenWith(tb, bolt.Options{})
}

// mustOpenWith is mustOpen with options.
func mustOpenWith(tb testing.TB, opts bolt.Options) *bolt.Store {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "neostore.db")
	s, err := bolt.Open(path, opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
		mustCheck(tb, path)
	})
	return s
}

// mustCheck runs bbolt's consistency check on the closed file at path.
func mustCheck(tb testing.TB, path string) {
	tb.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		tb.Errorf("re-open for check: %v", err)
		return
	}
	defer db.Close()
	err = db.View(func(tx *bbolt.Tx) error {
		// Drain the channel fully: the checker goroutine blocks on it.
		for err := range tx.Check() {
			tb.Errorf("consistency check: %v", err)
		}
		return nil
	})
	if err != nil {
		tb.Errorf("consistency check: %v", err)
	}
}

// rawUpdate changes the closed file at path with bbolt directly, to plant
// what the store itself would never write.
func rawUpdate(t *testing.T, path string, fn func(tx *bbolt.Tx) error) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("raw open: %v", err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatalf("raw update: %v", err)
	}
}

func TestStore_Conformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) neostore.Store { return mustOpen(t) })
}

func TestStore_Quota(t *testing.T) {
	storetest.RunQuota(t, func(t *testing.T, maxKeys int) neostore.Store {
		return mustOpenWith(t, bolt.Options{MaxKeysPerTenant: maxKeys})
	})
}

func BenchmarkStore(b *testing.B) {
	storetest.Benchmark(b, func(b *testing.B) neostore.Store { return mustOpen(b) })
}

func TestOpen_CreatesPrivateFile(t *testing.T) {
	s := mustOpen(t)
	info, err := os.Stat(s.Path())
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if got := info.Mode().Perm(); got != 0o600 {
		t.Errorf("file mode = %v, want 0600", got)
	}
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping = %v, want nil", err)
	}
}

func TestOpen_LockedByAnotherOpen(t *testing.T) {
	first := mustOpen(t)

	start := time.Now()
	second, err := bolt.Open(first.Path(), bolt.Options{Timeout: 200 * time.Millisecond})
	elapsed := time.Since(start)
	if err == nil {
		second.Close()
		t.Fatalf("second Open succeeded while the first holds the file")
	}
	if !errors.Is(err, bolterrors.ErrTimeout) {
		t.Errorf("second Open error = %v, want one wrapping bbolt's ErrTimeout", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "locked by another process") || !strings.Contains(msg, first.Path()) {
		t.Errorf("second Open error = %q, want it to name the file and say it is locked", msg)
	}
	if elapsed < 150*time.Millisecond || elapsed > 5*time.Second {
		t.Errorf("second Open gave up after %v, want about the 200ms timeout", elapsed)
	}

	// The first store is unharmed and, once closed, frees the file.
	if err := first.PutSecret(t.Context(), "tenant", "k", neostore.SealedSecret{Ciphertext: []byte("v")}, neostore.Change{}); err != nil {
		t.Fatalf("PutSecret on the first store: %v", err)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	third, err := bolt.Open(first.Path(), bolt.Options{Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("Open after the first closed: %v", err)
	}
	third.Close()
}

func TestOpen_NotABoltFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "garbage.db")
	if err := os.WriteFile(path, bytes.Repeat([]byte("not a bolt file "), 1024), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := bolt.Open(path, bolt.Options{})
	if err == nil {
		s.Close()
		t.Fatalf("Open of a garbage file succeeded, want an error")
	}
}

func TestOpen_UnknownSchemaVersion(t *testing.T) {
	s := mustOpen(t)
	path := s.Path()
	s.Close()
	rawUpdate(t, path, func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte("meta")).Put([]byte("schema"), []byte{2})
	})
	s2, err := bolt.Open(path, bolt.Options{})
	if err == nil {
		s2.Close()
		t.Fatalf("Open of a file with schema version 2 succeeded, want an error")
	}
	if !strings.Contains(err.Error(), "schema version") {
		t.Errorf("Open error = %q, want it to mention the schema version", err)
	}
}

func TestStore_Reopen(t *testing.T) {
	s := mustOpen(t)
	path := s.Path()
	ctx := t.Context()
	nb := time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	eo := time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
	want := neostore.SealedSecret{
		Ciphertext: []byte("sealed"),
		Validity:   neostore.Validity{NotBefore: neostore.At(nb), ExpiresOn: neostore.At(eo)},
	}
	created := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	mustDo(t, s.PutSecret(ctx, "tenant", "k", want, neostore.Change{}))
	mustDo(t, s.PutSecret(ctx, "tenant", "gone", want, neostore.Change{}))
	mustDo(t, s.DeleteSecret(ctx, "tenant", "gone", neostore.Change{}))
	_, err := s.CreateTenantKey(ctx, "tenant", []byte("wrapped"))
	mustDo(t, err)
	_, err = s.CreateKeyCheck(ctx, []byte("check"))
	mustDo(t, err)
	mustDo(t, s.CreateAPIKey(ctx, neostore.APIKey{ID: "id", Tenant: "tenant", Hash: []byte("hash"), CreatedAt: created}))
	mustDo(t, s.RevokeAPIKey(ctx, "id", created.Add(time.Hour)))
	mustDo(t, s.Close())

	s, err = bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatalf("re-Open: %v", err)
	}
	defer s.Close()
	got, err := s.GetSecret(ctx, "tenant", "k")
	mustDo(t, err)
	if string(got.Ciphertext) != "sealed" || !got.Validity.NotBefore.Set || !got.Validity.NotBefore.At.Equal(nb) ||
		!got.Validity.ExpiresOn.Set || !got.Validity.ExpiresOn.At.Equal(eo) {
		t.Errorf("GetSecret after reopen = %+v, want %+v", got, want)
	}
	if _, err := s.GetSecret(ctx, "tenant", "gone"); neostore.ErrorCode(err) != neostore.ENOTFOUND {
		t.Errorf("GetSecret of a deleted key after reopen: code %q, want %q", neostore.ErrorCode(err), neostore.ENOTFOUND)
	}
	if keys, err := s.ListSecretKeys(ctx, "tenant"); err != nil || len(keys) != 1 || keys[0] != "k" {
		t.Errorf("ListSecretKeys after reopen = %q, %v; want [k]", keys, err)
	}
	if tk, err := s.GetTenantKey(ctx, "tenant"); err != nil || string(tk) != "wrapped" {
		t.Errorf("GetTenantKey after reopen = %q, %v; want %q", tk, err, "wrapped")
	}
	if kc, err := s.GetKeyCheck(ctx); err != nil || string(kc) != "check" {
		t.Errorf("GetKeyCheck after reopen = %q, %v; want %q", kc, err, "check")
	}
	keys, err := s.ListAPIKeys(ctx, "")
	if err != nil || len(keys) != 1 || keys[0].ID != "id" || !keys[0].RevokedAt.At.Equal(created.Add(time.Hour)) {
		t.Errorf("ListAPIKeys after reopen = %+v, %v; want the revoked key", keys, err)
	}
	// The hash index survived too.
	err = s.CreateAPIKey(ctx, neostore.APIKey{ID: "id2", Tenant: "tenant", Hash: []byte("hash"), CreatedAt: created})
	if neostore.ErrorCode(err) != neostore.EINVALID {
		t.Errorf("CreateAPIKey with a hash taken before reopen: code %q, want %q", neostore.ErrorCode(err), neostore.EINVALID)
	}
}

func TestStore_CorruptSecretRecord(t *testing.T) {
	tests := []struct {
		name string
		data []byte
	}{
		{"Empty", []byte{}},
		{"UnknownVersion", []byte{9, 0, 's', 'e', 'c'}},
		{"UnknownFlags", []byte{1, 0x80}},
		{"TruncatedBound", []byte{1, 0x01, 0, 0, 0}},
		{"NanosecondsOutOfRange", []byte{1, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustOpen(t)
			path := s.Path()
			mustDo(t, s.PutSecret(t.Context(), "tenant", "bad", neostore.SealedSecret{Ciphertext: []byte("v")}, neostore.Change{}))
			mustDo(t, s.PutSecret(t.Context(), "tenant", "good", neostore.SealedSecret{Ciphertext: []byte("v")}, neostore.Change{}))
			mustDo(t, s.Close())
			rawUpdate(t, path, func(tx *bbolt.Tx) error {
				return tx.Bucket([]byte("secrets")).Bucket([]byte("tenant")).Put([]byte("bad"), tt.data)
			})

			s, err := bolt.Open(path, bolt.Options{})
			if err != nil {
				t.Fatalf("re-Open: %v", err)
			}
			defer s.Close()
			_, err = s.GetSecret(t.Context(), "tenant", "bad")
			if got := neostore.ErrorCode(err); got != neostore.EINTERNAL {
				t.Errorf("GetSecret of a corrupt record: code %q (err %v), want %q", got, err, neostore.EINTERNAL)
			}
			if msg := neostore.ErrorMessage(err); strings.Contains(msg, "bad") || strings.Contains(msg, "tenant") {
				t.Errorf("client message %q names the key or tenant, want a generic message", msg)
			}
			// One bad record does not take its neighbours down.
			if _, err := s.GetSecret(t.Context(), "tenant", "good"); err != nil {
				t.Errorf("GetSecret of an intact neighbour: %v", err)
			}
			if keys, err := s.ListSecretKeys(t.Context(), "tenant"); err != nil || len(keys) != 2 {
				t.Errorf("ListSecretKeys = %q, %v; want both keys", keys, err)
			}
		})
	}
}

func TestStore_CorruptAPIKeyRecord(t *testing.T) {
	s := mustOpen(t)
	path := s.Path()
	mustDo(t, s.CreateAPIKey(t.Context(), neostore.APIKey{ID: "id", Tenant: "tenant", Hash: []byte("h"), CreatedAt: time.Now()}))
	mustDo(t, s.Close())
	for _, data := range [][]byte{[]byte("{not json"), []byte(`{"id":"id","scopes":["Secret.Admin"]}`)} {
		rawUpdate(t, path, func(tx *bbolt.Tx) error {
			return tx.Bucket([]byte("apikeys")).Put([]byte("id"), data)
		})
		s, err := bolt.Open(path, bolt.Options{})
		if err != nil {
			t.Fatalf("re-Open: %v", err)
		}
		if _, err := s.ListAPIKeys(t.Context(), ""); neostore.ErrorCode(err) != neostore.EINTERNAL {
			t.Errorf("ListAPIKeys over record %q: err %v, want code %q", data, err, neostore.EINTERNAL)
		}
		if err := s.RevokeAPIKey(t.Context(), "id", time.Now()); neostore.ErrorCode(err) != neostore.EINTERNAL {
			t.Errorf("RevokeAPIKey of record %q: err %v, want code %q", data, err, neostore.EINTERNAL)
		}
		mustDo(t, s.Close())
	}
}

func TestStore_DeleteDropsEmptyTenantBucket(t *testing.T) {
	s := mustOpen(t)
	path := s.Path()
	mustDo(t, s.PutSecret(t.Context(), "tenant", "k1", neostore.SealedSecret{Ciphertext: []byte("v")}, neostore.Change{}))
	mustDo(t, s.PutSecret(t.Context(), "tenant", "k2", neostore.SealedSecret{Ciphertext: []byte("v")}, neostore.Change{}))
	mustDo(t, s.DeleteSecret(t.Context(), "tenant", "k1", neostore.Change{}))
	mustDo(t, s.DeleteSecret(t.Context(), "tenant", "k2", neostore.Change{}))
	mustDo(t, s.Close())
	rawUpdate(t, path, func(tx *bbolt.Tx) error {
		if b := tx.Bucket([]byte("secrets")).Bucket([]byte("tenant")); b != nil {
			t.Errorf("the tenant's bucket remains after its last secret was deleted")
		}
		return nil
	})
}

func TestStore_Backup(t *testing.T) {
	s := mustOpen(t)
	ctx := t.Context()
	mustDo(t, s.PutSecret(ctx, "tenant", "k", neostore.SealedSecret{Ciphertext: []byte("before")}, neostore.Change{}))

	var buf bytes.Buffer
	n, err := s.Backup(&buf)
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	if n != int64(buf.Len()) {
		t.Errorf("Backup returned %d, wrote %d bytes", n, buf.Len())
	}
	// Writes after the snapshot do not reach it, and the live store goes on.
	mustDo(t, s.PutSecret(ctx, "tenant", "k", neostore.SealedSecret{Ciphertext: []byte("after")}, neostore.Change{}))

	path := filepath.Join(t.TempDir(), "backup.db")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, path)
	restored, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatalf("Open of the backup: %v", err)
	}
	defer restored.Close()
	got, err := restored.GetSecret(ctx, "tenant", "k")
	if err != nil {
		t.Fatalf("GetSecret from the backup: %v", err)
	}
	if string(got.Ciphertext) != "before" {
		t.Errorf("backup holds %q, want the value at snapshot time %q", got.Ciphertext, "before")
	}
}

func TestStore_CanceledContext(t *testing.T) {
	s := mustOpen(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.PutSecret(ctx, "tenant", "k", neostore.SealedSecret{Ciphertext: []byte("v")}, neostore.Change{}); !errors.Is(err, context.Canceled) {
		t.Errorf("PutSecret with a canceled context = %v, want context.Canceled", err)
	}
	if _, err := s.GetSecret(ctx, "tenant", "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("GetSecret with a canceled context = %v, want context.Canceled", err)
	}
	if _, err := s.GetSecret(t.Context(), "tenant", "k"); neostore.ErrorCode(err) != neostore.ENOTFOUND {
		t.Errorf("a put with a canceled context was stored (GetSecret err %v)", err)
	}
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// A file written before the times were kept holds version 1 records (the
// bytes below are what that version wrote for a window and "ct"). They
// read with their times unknown, list as such, and a put over one keeps
// CreatedOn unknown while UpdatedOn becomes the put's.
func TestStore_ReadsVersion1Records(t *testing.T) {
	s := mustOpen(t)
	path := s.Path()
	mustDo(t, s.PutSecret(t.Context(), "tenant", "placeholder", neostore.SealedSecret{Ciphertext: []byte("v")}, neostore.Change{}))
	mustDo(t, s.Close())
	v1 := []byte{
		1, 0x03, // version 1; NotBefore and ExpiresOn
		0, 0, 0, 0, 0x67, 0xc2, 0xf8, 0x40, 0, 0, 0, 0, // 2025-03-01T12:06:24Z
		0, 0, 0, 0, 0xf4, 0x86, 0x57, 0x80, 0, 0, 0, 0, // 2100-01-01T00:02:08Z
		'c', 't',
	}
	rawUpdate(t, path, func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("secrets")).Bucket([]byte("tenant"))
		if err := b.Delete([]byte("placeholder")); err != nil {
			return err
		}
		return b.Put([]byte("old"), v1)
	})
	s, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatalf("re-Open: %v", err)
	}
	defer s.Close()
	sec, err := s.GetSecret(t.Context(), "tenant", "old")
	if err != nil {
		t.Fatalf("GetSecret of a version 1 record: %v", err)
	}
	nb, eo := time.Unix(0x67c2f840, 0), time.Unix(0xf4865780, 0)
	if string(sec.Ciphertext) != "ct" || !sec.Validity.NotBefore.At.Equal(nb) || !sec.Validity.ExpiresOn.At.Equal(eo) ||
		sec.Times.CreatedOn.Set || sec.Times.UpdatedOn.Set {
		t.Errorf("GetSecret = %+v, want ct from %v until %v, times unknown", sec, nb, eo)
	}
	attrs, err := s.ListSecretAttributes(t.Context(), "tenant")
	if err != nil || len(attrs) != 1 || attrs[0].Key != "old" || attrs[0].Times.CreatedOn.Set || !attrs[0].Validity.ExpiresOn.At.Equal(eo) {
		t.Fatalf("ListSecretAttributes = %+v, %v; want old with its window, times unknown", attrs, err)
	}
	now := time.Date(2026, 5, 6, 7, 8, 9, 10, time.UTC)
	mustDo(t, s.PutSecret(t.Context(), "tenant", "old", neostore.SealedSecret{
		Ciphertext: []byte("new"),
		Times:      neostore.SecretTimes{CreatedOn: neostore.At(now), UpdatedOn: neostore.At(now)},
	}, neostore.Change{}))
	sec, err = s.GetSecret(t.Context(), "tenant", "old")
	if err != nil || sec.Times.CreatedOn.Set || !sec.Times.UpdatedOn.At.Equal(now) {
		t.Errorf("after a put over the version 1 record, times = %+v, %v; want CreatedOn unknown, UpdatedOn %v", sec.Times, err, now)
	}
}

// TestOpen_IndexesSecretsOfAnOlderFile: a file written before the due index
// existed gets every stored secret's entries when it is first opened.
func TestOpen_IndexesSecretsOfAnOlderFile(t *testing.T) {
	s := mustOpen(t)
	path := s.Path()
	ctx := t.Context()
	put := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	v := neostore.Validity{NotBefore: neostore.At(put.Add(time.Hour)), ExpiresOn: neostore.At(put.Add(48 * time.Hour))}
	sec := neostore.SealedSecret{Ciphertext: []byte("sealed"), Validity: v, Times: neostore.SecretTimes{CreatedOn: neostore.At(put), UpdatedOn: neostore.At(put)}}
	mustDo(t, s.PutSecret(ctx, "tenant", "k", sec, neostore.Change{}))
	mustDo(t, s.PutSecret(ctx, "tenant", "open", neostore.SealedSecret{Ciphertext: []byte("x")}, neostore.Change{}))
	mustDo(t, s.Close())
	// What an older build leaves: the secrets, no index.
	rawUpdate(t, path, func(tx *bbolt.Tx) error { return tx.DeleteBucket([]byte("due")) })

	s, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatalf("re-Open: %v", err)
	}
	defer s.Close()
	for _, kind := range []neostore.DueKind{neostore.DueExpires, neostore.DueActivates} {
		es, err := s.DueEntries(ctx, kind, put.Add(-time.Hour), put.Add(100*time.Hour), 10)
		mustDo(t, err)
		if len(es) != 1 || es[0].Tenant != "tenant" || es[0].Key != "k" || !es[0].CreatedOn.At.Equal(put) {
			t.Errorf("DueEntries(kind %d) after the upgrade = %+v, want the one entry of tenant/k", kind, es)
		}
	}
}

// BenchmarkPutSecret measures PutSecret as the PUT handler calls it, with an
// audit entry journaled in the change's transaction, at 1 and 32
// concurrent writers (c32 runs 32/GOMAXPROCS goroutines per P). ns/op is
// the inverse of throughput: at c32 a commit and its fsync are shared.
func BenchmarkPutSecret(b *testing.B) {
	sealed := neostore.SealedSecret{Ciphertext: bytes.Repeat([]byte{0xa5}, 64)}
	line := bytes.Repeat([]byte("x"), 300) // about an audit record's line
	for _, conns := range []int{1, 32} {
		b.Run("c"+strconv.Itoa(conns), func(b *testing.B) {
			s := mustOpen(b)
			var seq atomic.Uint64
			b.ReportAllocs()
			b.SetParallelism(max(conns/runtime.GOMAXPROCS(0), 1))
			put := func() error {
				n := seq.Add(1)
				c := neostore.Change{Audit: &neostore.AuditEntry{Node: "n1", Seq: n, Line: line}}
				return s.PutSecret(b.Context(), "tenant", "key-"+strconv.FormatUint(n, 10), sealed, c)
			}
			if conns == 1 {
				for b.Loop() {
					if err := put(); err != nil {
						b.Fatal(err)
					}
				}
				return
			}
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := put(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
