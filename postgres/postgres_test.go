package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/pgtest"
	"github.com/neostore/neostore-secrets/postgres"
	"github.com/neostore/neostore-secrets/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// mustOpen opens a store on url and closes it when tb ends.
func mustOpen(tb testing.TB, url string, opts postgres.Options) *postgres.Store {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := postgres.Open(ctx, url, opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

// rawConn connects to url directly, to look at or plant rows the store
// would never write.
func rawConn(tb testing.TB, url string) *pgx.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestStore_Conformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) neostore.Store {
		return mustOpen(t, pgtest.Start(t), postgres.Options{})
	})
}

func TestStore_Quota(t *testing.T) {
	storetest.RunQuota(t, func(t *testing.T, maxKeys int) neostore.Store {
		return mustOpen(t, pgtest.Start(t), postgres.Options{MaxKeysPerTenant: maxKeys})
	})
}

func BenchmarkStore(b *testing.B) {
	storetest.Benchmark(b, func(b *testing.B) neostore.Store {
		return mustOpen(b, pgtest.Start(b), postgres.Options{})
	})
}

// The listing order must not come from the database's collation: on an
// en-US database, "a" < "B" for the database but not for the store.
func TestStore_ByteOrderUnderNonCCollation(t *testing.T) {
	url := pgtest.StartICU(t, "en-US")
	var collationSorts bool
	if err := rawConn(t, url).QueryRow(t.Context(), "SELECT 'a' < 'B' AND 'db-password' < 'Db-Password'").Scan(&collationSorts); err != nil {
		t.Fatal(err)
	}
	if !collationSorts {
		t.Fatalf("the test database sorts by byte order; it cannot show that the store ignores the collation")
	}
	s := mustOpen(t, url, postgres.Options{})
	ctx := t.Context()

	want := []string{"1", "10", "2", "A", "B", "Db-Password", "Z", "a", "a-b", "a0", "ab", "b", "db-password", "z"}
	for _, k := range slices.Backward(want) {
		if err := s.PutSecret(ctx, "tenant", k, neostore.SealedSecret{Ciphertext: []byte(k)}, neostore.Change{}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutSecret(ctx, k, "k", neostore.SealedSecret{Ciphertext: []byte(k)}, neostore.Change{}); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.ListSecretKeys(ctx, "tenant"); err != nil || !slices.Equal(got, want) {
		t.Errorf("ListSecretKeys = %q, %v\nwant %q", got, err, want)
	}
	wantTenants := slices.Clone(want)
	wantTenants = append(wantTenants, "tenant")
	slices.Sort(wantTenants)
	if got, err := s.ListTenants(ctx); err != nil || !slices.Equal(got, wantTenants) {
		t.Errorf("ListTenants = %q, %v\nwant %q", got, err, wantTenants)
	}

	created := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, id := range []string{"b", "a", "B", "A"} {
		k := neostore.APIKey{ID: id, Tenant: "tenant", Scopes: neostore.ScopeRead, Hash: []byte("hash of " + id), CreatedAt: created}
		if err := s.CreateAPIKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := s.ListAPIKeys(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, k := range keys {
		ids = append(ids, k.ID)
	}
	if want := []string{"A", "B", "a", "b"}; !slices.Equal(ids, want) {
		t.Errorf("ListAPIKeys ids = %q, want %q", ids, want)
	}
}

// Two stores on one database are two nodes: each sees the other's
// acknowledged writes on its very next call.
func TestStore_TwoNodesShareState(t *testing.T) {
	url := pgtest.Start(t)
	a, b := mustOpen(t, url, postgres.Options{}), mustOpen(t, url, postgres.Options{})
	ctx := t.Context()

	want := neostore.SealedSecret{Ciphertext: []byte("v1"), Validity: neostore.Validity{NotBefore: neostore.At(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC))}}
	if err := a.PutSecret(ctx, "tenant", "k", want, neostore.Change{}); err != nil {
		t.Fatal(err)
	}
	got, err := b.GetSecret(ctx, "tenant", "k")
	if err != nil || !bytes.Equal(got.Ciphertext, want.Ciphertext) || !got.Validity.NotBefore.Set {
		t.Errorf("B reads %+v, %v after A's put; want %+v", got, err, want)
	}
	if err := a.DeleteSecret(ctx, "tenant", "k", neostore.Change{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetSecret(ctx, "tenant", "k"); neostore.ErrorCode(err) != neostore.ENOTFOUND {
		t.Errorf("B after A's delete: err %v, want code %q", err, neostore.ENOTFOUND)
	}

	if err := a.CreateAPIKey(ctx, neostore.APIKey{ID: "id", Tenant: "tenant", Hash: []byte("h"), CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	revoked := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	if err := a.RevokeAPIKey(ctx, "id", revoked); err != nil {
		t.Fatal(err)
	}
	keys, err := b.ListAPIKeys(ctx, "tenant")
	if err != nil || len(keys) != 1 || !keys[0].RevokedAt.Set || !keys[0].RevokedAt.At.Equal(revoked) {
		t.Errorf("B lists %+v, %v after A's revoke; want the key revoked at %v", keys, err, revoked)
	}

	// Racing creators on both nodes agree on one tenant key and one
	// key-check record.
	var wg sync.WaitGroup
	tenantKeys, checks := make([][]byte, 16), make([][]byte, 16)
	for i := range 16 {
		node := []*postgres.Store{a, b}[i%2]
		wg.Go(func() {
			var err error
			if tenantKeys[i], err = node.CreateTenantKey(ctx, "racy", []byte{byte(i)}); err != nil {
				t.Errorf("CreateTenantKey: %v", err)
			}
			if checks[i], err = node.CreateKeyCheck(ctx, []byte{byte(i)}); err != nil {
				t.Errorf("CreateKeyCheck: %v", err)
			}
		})
	}
	wg.Wait()
	for i := range 16 {
		if !bytes.Equal(tenantKeys[i], tenantKeys[0]) || !bytes.Equal(checks[i], checks[0]) {
			t.Errorf("caller %d got tenant key %x and check %x, caller 0 got %x and %x: two winners",
				i, tenantKeys[i], checks[i], tenantKeys[0], checks[0])
		}
	}
}

func TestStore_EmptyValuesAreValues(t *testing.T) {
	s := mustOpen(t, pgtest.Start(t), postgres.Options{})
	ctx := t.Context()
	if err := s.PutSecret(ctx, "tenant", "k", neostore.SealedSecret{}, neostore.Change{}); err != nil {
		t.Fatalf("PutSecret with a nil ciphertext: %v", err)
	}
	if got, err := s.GetSecret(ctx, "tenant", "k"); err != nil || len(got.Ciphertext) != 0 {
		t.Errorf("GetSecret = %q, %v; want an empty ciphertext", got.Ciphertext, err)
	}
	if got, err := s.CreateTenantKey(ctx, "tenant", nil); err != nil || len(got) != 0 {
		t.Errorf("CreateTenantKey(nil) = %q, %v; want empty", got, err)
	}
	if _, err := s.GetTenantKey(ctx, "tenant"); err != nil {
		t.Errorf("GetTenantKey of an empty key: %v, want it stored", err)
	}
	k := neostore.APIKey{ID: "id", Tenant: "tenant", Hash: []byte("h"), CreatedAt: time.Now()}
	if err := s.CreateAPIKey(ctx, k); err != nil {
		t.Errorf("CreateAPIKey without scopes: %v", err)
	}
}

func TestStore_CallsAfterCloseAreUnavailable(t *testing.T) {
	s := mustOpen(t, pgtest.Start(t), postgres.Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for name, op := range operations(s) {
		err := op(t.Context())
		if got := neostore.ErrorCode(err); got != neostore.EUNAVAILABLE {
			t.Errorf("%s after Close: code %q (err %v), want %q", name, got, err, neostore.EUNAVAILABLE)
		}
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
}

func TestStore_CanceledContext(t *testing.T) {
	s := mustOpen(t, pgtest.Start(t), postgres.Options{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for name, op := range operations(s) {
		err := op(ctx)
		if got := neostore.ErrorCode(err); got != neostore.EUNAVAILABLE || !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context: code %q (err %v), want %q wrapping context.Canceled", name, got, err, neostore.EUNAVAILABLE)
		}
	}
	if _, err := s.GetSecret(t.Context(), "tenant", "k"); neostore.ErrorCode(err) != neostore.ENOTFOUND {
		t.Errorf("a put with a canceled context was stored (GetSecret err %v)", err)
	}
}

// A statement that outlives the statement timeout is canceled by the
// server and reported as unavailable, not internal.
func TestStore_StatementTimeoutIsUnavailable(t *testing.T) {
	url := pgtest.Start(t)
	s := mustOpen(t, url, postgres.Options{StatementTimeout: 200 * time.Millisecond})
	ctx := t.Context()
	if err := s.PutSecret(ctx, "tenant", "k", neostore.SealedSecret{Ciphertext: []byte("v")}, neostore.Change{}); err != nil {
		t.Fatal(err)
	}
	// Another session holds the row lock, so the store's put waits.
	conn := rawConn(t, url)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, "SELECT 1 FROM secrets WHERE tenant = 'tenant' AND key = 'k' FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = s.PutSecret(ctx, "tenant", "k", neostore.SealedSecret{Ciphertext: []byte("blocked")}, neostore.Change{})
	elapsed := time.Since(start)
	if got := neostore.ErrorCode(err); got != neostore.EUNAVAILABLE {
		t.Errorf("PutSecret behind a lock: code %q (err %v), want %q", got, err, neostore.EUNAVAILABLE)
	}
	// The client-side bound is 5s connect + 200ms: returning sooner shows
	// that the server enforced the statement timeout.
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "57014" {
		t.Errorf("PutSecret behind a lock: err %v, want the server's query_canceled (57014)", err)
	}
	if elapsed > 2*time.Second {
		t.Errorf("PutSecret behind a lock returned after %v, want about the 200ms statement timeout", elapsed)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetSecret(ctx, "tenant", "k"); err != nil || string(got.Ciphertext) != "v" {
		t.Errorf("GetSecret after the timed-out put = %q, %v; want the old value", got.Ciphertext, err)
	}
}

func TestStore_CorruptRows(t *testing.T) {
	url := pgtest.Start(t)
	s := mustOpen(t, url, postgres.Options{})
	ctx := t.Context()
	if err := s.CreateAPIKey(ctx, neostore.APIKey{ID: "id", Tenant: "tenant", Hash: []byte("h"), CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := rawConn(t, url).Exec(ctx, "UPDATE api_keys SET scopes = ARRAY['Secret.Admin']"); err != nil {
		t.Fatal(err)
	}
	_, err := s.ListAPIKeys(ctx, "")
	if got := neostore.ErrorCode(err); got != neostore.EINTERNAL {
		t.Errorf("ListAPIKeys over an unknown scope: code %q (err %v), want %q", got, err, neostore.EINTERNAL)
	}
	if msg := neostore.ErrorMessage(err); strings.Contains(msg, "Secret.Admin") {
		t.Errorf("client message %q quotes the row", msg)
	}
}

func TestOpen_Options(t *testing.T) {
	url := pgtest.Start(t)
	tests := []struct {
		name string
		opts postgres.Options
	}{
		{"NegativeMaxConns", postgres.Options{MaxConns: -1}},
		{"NegativeConnectTimeout", postgres.Options{ConnectTimeout: -time.Second}},
		{"NegativeStatementTimeout", postgres.Options{StatementTimeout: -time.Second}},
		{"SubMillisecondStatementTimeout", postgres.Options{StatementTimeout: time.Microsecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := postgres.Open(t.Context(), url, tt.opts)
			if err == nil {
				s.Close()
				t.Errorf("Open succeeded, want an error")
			}
		})
	}

}

func TestOpen_BadURLHidesPassword(t *testing.T) {
	_, err := postgres.Open(t.Context(), "postgres://user:hunter2@127.0.0.1:1/db?sslmode=bogus", postgres.Options{})
	if err == nil {
		t.Fatal("Open with an invalid sslmode succeeded")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("Open error %q contains the password", err)
	}
}

func TestOpen_Unreachable(t *testing.T) {
	start := time.Now()
	_, err := postgres.Open(t.Context(), "postgres://user:hunter2@127.0.0.1:1/db?sslmode=disable", postgres.Options{ConnectTimeout: time.Second})
	if err == nil {
		t.Fatal("Open of an unreachable database succeeded")
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Open gave up after %v, want within the 1s connect timeout", elapsed)
	}
	if got := neostore.ErrorCode(err); got != neostore.EUNAVAILABLE {
		t.Errorf("Open of an unreachable database: code %q (err %v), want %q so that the caller may retry", got, err, neostore.EUNAVAILABLE)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("Open error %q contains the password", err)
	}
}

// operations calls every method of the store once, keyed by method name.
// Writes use fresh names on every call: a write that timed out may still
// land when a frozen server resumes, and must not make the next call fail.
func operations(s *postgres.Store) map[string]func(ctx context.Context) error {
	var n atomic.Int64
	fresh := func(prefix string) string { return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano(), n.Add(1)) }
	sealed := neostore.SealedSecret{Ciphertext: []byte("during"), Validity: neostore.Validity{ExpiresOn: neostore.At(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))}}
	return map[string]func(ctx context.Context) error{
		"GetSecret": func(ctx context.Context) error { _, err := s.GetSecret(ctx, "tenant", "k"); return err },
		"PutSecret": func(ctx context.Context) error {
			return s.PutSecret(ctx, "tenant", fresh("put"), sealed, neostore.Change{})
		},
		"DeleteSecret": func(ctx context.Context) error {
			return s.DeleteSecret(ctx, "tenant", fresh("absent"), neostore.Change{})
		},
		"ListSecretKeys": func(ctx context.Context) error { _, err := s.ListSecretKeys(ctx, "tenant"); return err },
		"ListTenants":    func(ctx context.Context) error { _, err := s.ListTenants(ctx); return err },
		"GetTenantKey":   func(ctx context.Context) error { _, err := s.GetTenantKey(ctx, "tenant"); return err },
		"CreateTenantKey": func(ctx context.Context) error {
			_, err := s.CreateTenantKey(ctx, fresh("tenant"), []byte("w"))
			return err
		},
		"GetKeyCheck":    func(ctx context.Context) error { _, err := s.GetKeyCheck(ctx); return err },
		"CreateKeyCheck": func(ctx context.Context) error { _, err := s.CreateKeyCheck(ctx, []byte("c")); return err },
		"CreateAPIKey": func(ctx context.Context) error {
			id := fresh("key")
			return s.CreateAPIKey(ctx, neostore.APIKey{ID: id, Tenant: "other", Hash: []byte(id), CreatedAt: time.Now()})
		},
		"ListAPIKeys":  func(ctx context.Context) error { _, err := s.ListAPIKeys(ctx, ""); return err },
		"RevokeAPIKey": func(ctx context.Context) error { return s.RevokeAPIKey(ctx, "id", time.Now()) },
		"TouchAPIKeys": func(ctx context.Context) error {
			return s.TouchAPIKeys(ctx, map[string]time.Time{"id": time.Now()})
		},
		"Ping": func(ctx context.Context) error { return s.Ping(ctx) },
	}
}
