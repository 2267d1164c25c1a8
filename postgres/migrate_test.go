package postgres

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/pgtest"
)

func connectRaw(tb testing.TB, url string) *pgx.Conn {
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

func mustMigrations(tb testing.TB) []migration {
	tb.Helper()
	ms, err := migrations()
	if err != nil {
		tb.Fatalf("migrations: %v", err)
	}
	return ms
}

// fixture plants data in a database at one schema version, with SQL of
// that version, and checks through the current store that a migration to
// the latest version kept it. Adding migration N+1 means adding
// fixtures[N]: TestMigrate_EveryVersionHasFixture fails until then.
type fixture struct {
	seed  func(t *testing.T, conn *pgx.Conn)
	check func(t *testing.T, s *Store)
}

var (
	fixtureTime    = time.Date(2025, 3, 1, 12, 34, 56, 123456789, time.UTC)
	fixtureYearOne = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	fixtureCreated = time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC)
)

var fixtures = map[int]fixture{
	// Version 0 is an empty database: nothing to keep.
	0: {seed: func(*testing.T, *pgx.Conn) {}, check: func(*testing.T, *Store) {}},

	1: {seed: seedVersion1, check: func(t *testing.T, s *Store) {
		checkVersion1(t, s)
		checkTimesUnknown(t, s)
		checkDueIndexed(t, s)
	}},
	2: {seed: seedVersion2, check: func(t *testing.T, s *Store) {
		checkVersion2(t, s)
		checkTimesUnknown(t, s)
	}},
	3: {
		seed: seedVersion3,
		check: func(t *testing.T, s *Store) {
			checkVersion3(t, s)
			checkDueIndexed(t, s)
		},
	},
	4: {
		seed: func(t *testing.T, conn *pgx.Conn) {
			seedVersion3(t, conn)
			_, err := conn.Exec(t.Context(), `
				INSERT INTO webhook_subscriptions (id, name, tenant, url, events, leads_ns, secrets_sealed, secrets_expires_at_ns, created_at_ns, disabled_at_ns)
					VALUES ('wh_1', 'ops', 'acme', 'https://hooks.example.com/x', ARRAY['secret.expiring'], ARRAY[86400000000000],
					        ARRAY['\x5e'::bytea], ARRAY[NULL::bigint], 1740832496123456789, NULL);
				INSERT INTO webhook_deliveries (id, subscription_id, event, state, attempts, created_at_ns, next_attempt_at_ns,
				                                last_attempt_at_ns, last_status, last_error, finished_at_ns)
					VALUES ('dlv_1', 'wh_1', '{"id":"msg_1","type":"secret.expiring","timestamp":"2025-03-01T12:34:56.123456789Z","tenant":"acme","key":"db-password"}',
					        'pending', 0, 1740832496123456789, 1740832496123456789, NULL, 0, '', NULL);
			`)
			if err != nil {
				t.Fatalf("seed version 4: %v", err)
			}
		},
		check: func(t *testing.T, s *Store) {
			checkVersion3(t, s)
			w, err := s.GetWebhook(t.Context(), "wh_1")
			if err != nil || w.Tenant != "acme" || len(w.Leads) != 1 || w.Leads[0] != 24*time.Hour || len(w.Secrets) != 1 || !w.CreatedAt.Equal(fixtureTime) {
				t.Errorf("GetWebhook = %+v, %v; want the seeded wh_1", w, err)
			}
			d, err := s.GetDelivery(t.Context(), "dlv_1")
			if err != nil || d.Event.ID != "msg_1" || d.State != neostore.DeliveryPending || !d.NextAttemptAt.Equal(fixtureTime) {
				t.Errorf("GetDelivery = %+v, %v; want the seeded dlv_1", d, err)
			}
		},
	},
}

// seedVersion3 plants version 1 to 3 data.
func seedVersion3(t *testing.T, conn *pgx.Conn) {
	seedVersion2(t, conn)
	_, err := conn.Exec(t.Context(), `
				INSERT INTO secrets (tenant, key, ciphertext, not_before_s, not_before_ns, expires_on_s, expires_on_ns,
				                     created_on_s, created_on_ns, updated_on_s, updated_on_ns)
					VALUES ('acme', 'timed', '\x01', NULL, NULL, NULL, NULL, 1735787045, 6000, 1740832496, 123456789);
			`)
	if err != nil {
		t.Fatalf("seed version 3: %v", err)
	}
}

func checkVersion3(t *testing.T, s *Store) {
	checkVersion2(t, s)
	sec, err := s.GetSecret(t.Context(), "acme", "timed")
	if err != nil || !sec.Times.CreatedOn.At.Equal(fixtureCreated) || !sec.Times.UpdatedOn.At.Equal(fixtureTime) {
		t.Errorf("GetSecret(timed) = %+v, %v; want created %v, updated %v", sec, err, fixtureCreated, fixtureTime)
	}
}

// checkDueIndexed checks what migration 4 gave the secrets stored before
// it: db-password's expiry, and its NotBefore (its put time is unknown),
// enter the due index; a secret without a window does not.
func checkDueIndexed(t *testing.T, s *Store) {
	for _, c := range []struct {
		kind neostore.DueKind
		at   time.Time
	}{{neostore.DueExpires, fixtureTime}, {neostore.DueActivates, fixtureYearOne}} {
		es, err := s.DueEntries(t.Context(), c.kind, fixtureYearOne.Add(-time.Nanosecond), time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), 10)
		if err != nil || len(es) != 1 || es[0].Tenant != "acme" || es[0].Key != "db-password" || !es[0].At.Equal(c.at) ||
			!es[0].Validity.ExpiresOn.At.Equal(fixtureTime) {
			t.Errorf("DueEntries(kind %d) after migration 4 = %+v, %v; want db-password at %v", c.kind, es, err, c.at)
		}
	}
}

// seedVersion2 plants version 1 and 2 data.
func seedVersion2(t *testing.T, conn *pgx.Conn) {
	seedVersion1(t, conn)
	_, err := conn.Exec(t.Context(), `
				INSERT INTO audit_key (id, wrapped) VALUES (TRUE, '\xaa55');
				INSERT INTO audit_checkpoints (node, seq, hash) VALUES ('node-1', 42, '\xbeef');
			`)
	if err != nil {
		t.Fatalf("seed version 2: %v", err)
	}
}

// checkVersion2 also checks what migration 3 gave the rows of version 2:
// times unknown (NULL), and a put over such a row keeps CreatedOn unknown.
func checkVersion2(t *testing.T, s *Store) {
	checkVersion1(t, s)
	if k, err := s.GetAuditKey(t.Context()); err != nil || !bytes.Equal(k, []byte{0xaa, 0x55}) {
		t.Errorf("GetAuditKey = %x, %v; want aa55", k, err)
	}
	if seq, hash, found, err := s.LoadAuditCheckpoint(t.Context(), "node-1"); err != nil || !found || seq != 42 || !bytes.Equal(hash, []byte{0xbe, 0xef}) {
		t.Errorf("LoadAuditCheckpoint = %d %x %v %v; want 42 beef", seq, hash, found, err)
	}
}

func seedVersion1(t *testing.T, conn *pgx.Conn) {
	_, err := conn.Exec(t.Context(), `
				INSERT INTO tenant_keys (tenant, wrapped) VALUES ('acme', '\x0102');
				INSERT INTO secrets (tenant, key, ciphertext, not_before_s, not_before_ns, expires_on_s, expires_on_ns)
					VALUES ('acme', 'db-password', '\xa5a5', -62135596800, 0, 1740832496, 123456789),
					       ('acme', 'open', '\x00', NULL, NULL, NULL, NULL);
				INSERT INTO key_check (id, record) VALUES (TRUE, '\xc0ffee');
				INSERT INTO api_keys (id, hash, tenant, name, scopes, created_at, revoked_at)
					VALUES ('k1', '\x01', 'acme', 'deploy', ARRAY['Secret.Read', 'Secret.Write'],
					        '2025-01-02 03:04:05.000006+00', '2025-01-02 03:04:05.000006+00');
			`)
	if err != nil {
		t.Fatalf("seed version 1: %v", err)
	}
}

// checkTimesUnknown checks the secrets of version 1 after migration 3:
// their times are unknown, they list so, and a put over one keeps its
// CreatedOn unknown while setting UpdatedOn.
func checkTimesUnknown(t *testing.T, s *Store) {
	ctx := t.Context()
	attrs, err := s.ListSecretAttributes(ctx, "acme")
	if err != nil || len(attrs) != 2 || attrs[0].Key != "db-password" || attrs[1].Key != "open" {
		t.Fatalf("ListSecretAttributes = %+v, %v; want db-password and open", attrs, err)
	}
	for _, a := range attrs {
		if a.Times.CreatedOn.Set || a.Times.UpdatedOn.Set {
			t.Errorf("attributes of %s = %+v, want times unknown after the migration", a.Key, a)
		}
	}
	if !attrs[0].Validity.ExpiresOn.At.Equal(fixtureTime) || !attrs[0].Validity.NotBefore.At.Equal(fixtureYearOne) {
		t.Errorf("attributes of db-password = %+v, want its window kept", attrs[0])
	}
	now := neostore.At(time.Date(2026, 5, 6, 7, 8, 9, 10, time.UTC))
	if err := s.PutSecret(ctx, "acme", "open", neostore.SealedSecret{Ciphertext: []byte("x"), Times: neostore.SecretTimes{CreatedOn: now, UpdatedOn: now}}, neostore.Change{}); err != nil {
		t.Fatalf("PutSecret over a migrated row: %v", err)
	}
	sec, err := s.GetSecret(ctx, "acme", "open")
	if err != nil || sec.Times.CreatedOn.Set || !sec.Times.UpdatedOn.At.Equal(now.At) {
		t.Errorf("after a put over a migrated row, times = %+v, %v; want CreatedOn unknown, UpdatedOn %v", sec.Times, err, now.At)
	}
}

func checkVersion1(t *testing.T, s *Store) {
	ctx := t.Context()
	if wrapped, err := s.GetTenantKey(ctx, "acme"); err != nil || !bytes.Equal(wrapped, []byte{1, 2}) {
		t.Errorf("GetTenantKey = %x, %v; want 0102", wrapped, err)
	}
	sec, err := s.GetSecret(ctx, "acme", "db-password")
	if err != nil {
		t.Fatalf("GetSecret: %v", err)
	}
	if !bytes.Equal(sec.Ciphertext, []byte{0xa5, 0xa5}) ||
		!sec.Validity.NotBefore.Set || !sec.Validity.NotBefore.At.Equal(fixtureYearOne) ||
		!sec.Validity.ExpiresOn.Set || !sec.Validity.ExpiresOn.At.Equal(fixtureTime) {
		t.Errorf("GetSecret = %+v, want a5a5 valid from year 1 until %v", sec, fixtureTime)
	}
	open, err := s.GetSecret(ctx, "acme", "open")
	if err != nil || open.Validity.NotBefore.Set || open.Validity.ExpiresOn.Set {
		t.Errorf("GetSecret(open) = %+v, %v; want no bounds", open, err)
	}
	if rec, err := s.GetKeyCheck(ctx); err != nil || !bytes.Equal(rec, []byte{0xc0, 0xff, 0xee}) {
		t.Errorf("GetKeyCheck = %x, %v; want c0ffee", rec, err)
	}
	keys, err := s.ListAPIKeys(ctx, "acme")
	if err != nil || len(keys) != 1 {
		t.Fatalf("ListAPIKeys = %+v, %v; want k1", keys, err)
	}
	k := keys[0]
	if k.ID != "k1" || k.Name != "deploy" || k.Scopes != neostore.ScopeRead|neostore.ScopeWrite ||
		!bytes.Equal(k.Hash, []byte{1}) || !k.CreatedAt.Equal(fixtureCreated) ||
		!k.RevokedAt.Set || k.ExpiresAt.Set || k.LastUsed.Set {
		t.Errorf("API key = %+v, want the seeded k1", k)
	}
}

func TestMigrate_EveryVersionHasFixture(t *testing.T) {
	for v := 0; v <= len(mustMigrations(t)); v++ {
		if _, ok := fixtures[v]; !ok {
			t.Errorf("no upgrade fixture for schema version %d: add fixtures[%d] with data of that version", v, v)
		}
	}
}

func TestMigrate_EmptyDatabase(t *testing.T) {
	url := pgtest.Start(t)
	from, to, err := Migrate(t.Context(), url)
	if err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if latest := SchemaVersion(); from != 0 || to != latest || latest < 1 {
		t.Errorf("Migrate = (%d, %d), want (0, %d)", from, to, latest)
	}
	checkVersions(t, connectRaw(t, url))

	from, to, err = Migrate(t.Context(), url)
	if err != nil || from != to || to != SchemaVersion() {
		t.Errorf("second Migrate = (%d, %d, %v), want (%d, %d, nil)", from, to, err, SchemaVersion(), SchemaVersion())
	}
}

// From every earlier version (0 being an empty database): migrate to it,
// plant data with that version's SQL, migrate to the latest and find the
// data through the store.
func TestMigrate_FromEachEarlierVersion(t *testing.T) {
	ms := mustMigrations(t)
	for v := 0; v < len(ms); v++ {
		t.Run("FromVersion"+strconv.Itoa(v), func(t *testing.T) {
			url := pgtest.Start(t)
			conn := connectRaw(t, url)
			if from, to, err := migrate(t.Context(), conn, ms[:v]); err != nil || to != v {
				t.Fatalf("migrate to version %d = (%d, %d, %v)", v, from, to, err)
			}
			fixtures[v].seed(t, conn)

			from, to, err := Migrate(t.Context(), url)
			if err != nil {
				t.Fatalf("Migrate from version %d: %v", v, err)
			}
			if from != v || to != len(ms) {
				t.Errorf("Migrate = (%d, %d), want (%d, %d)", from, to, v, len(ms))
			}
			checkVersions(t, conn)
			s, err := Open(t.Context(), url, Options{SkipMigrate: true})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer s.Close()
			fixtures[v].check(t, s)
		})
	}
}

// The data of the latest version survives a Migrate that finds nothing to
// do; this also keeps the latest fixture tested before the next migration
// needs it.
func TestMigrate_CurrentVersionKeepsData(t *testing.T) {
	url := pgtest.Start(t)
	if _, _, err := Migrate(t.Context(), url); err != nil {
		t.Fatal(err)
	}
	latest := SchemaVersion()
	fixtures[latest].seed(t, connectRaw(t, url))
	s, err := Open(t.Context(), url, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	fixtures[latest].check(t, s)
}

func TestMigrate_ConcurrentOnEmptyDatabase(t *testing.T) {
	url := pgtest.Start(t)
	const nodes = 8
	type result struct {
		from, to int
		err      error
	}
	results := make([]result, nodes)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range nodes {
		wg.Go(func() {
			<-start
			from, to, err := Migrate(t.Context(), url)
			results[i] = result{from, to, err}
		})
	}
	close(start)
	wg.Wait()
	latest := SchemaVersion()
	fromEmpty := 0
	for i, r := range results {
		if r.err != nil {
			t.Errorf("Migrate #%d: %v", i, r.err)
		}
		if r.to != latest {
			t.Errorf("Migrate #%d left version %d, want %d", i, r.to, latest)
		}
		if r.from == 0 {
			fromEmpty++
		}
	}
	if fromEmpty != 1 {
		t.Errorf("%d of %d concurrent Migrate calls migrated from version 0, want exactly 1", fromEmpty, nodes)
	}
	conn := connectRaw(t, url)
	checkVersions(t, conn)
	var tables []string
	rows, _ := conn.Query(t.Context(), `SELECT table_name FROM information_schema.tables
		WHERE table_schema = current_schema() ORDER BY table_name`)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if want := "api_keys audit_checkpoints audit_key audit_log key_check schema_migrations secrets tenant_keys webhook_deliveries webhook_due_cursor webhook_outbox webhook_subscriptions"; strings.Join(tables, " ") != want {
		t.Errorf("tables = %q, want %q", tables, want)
	}
}

// A migration that fails halfway leaves nothing of itself behind: not its
// first statement, not its version.
func TestMigrate_FailedMigrationRollsBack(t *testing.T) {
	url := pgtest.Start(t)
	conn := connectRaw(t, url)
	ms := mustMigrations(t)
	broken := append(ms[:len(ms):len(ms)], migration{
		version: len(ms) + 1,
		name:    "9999_broken.sql",
		sql:     "CREATE TABLE half_done (v int); SELECT 1/0;",
	})
	from, to, err := migrate(t.Context(), conn, broken)
	if err == nil {
		t.Fatalf("migrate with a broken migration succeeded")
	}
	if from != 0 || to != len(ms) {
		t.Errorf("migrate = (%d, %d), want (0, %d): the good versions applied, the broken one not", from, to, len(ms))
	}
	var exists bool
	if err := conn.QueryRow(t.Context(), "SELECT to_regclass('half_done') IS NOT NULL").Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Errorf("table half_done exists after its migration failed")
	}
	checkVersions(t, conn)
}

func TestMigrate_RefusesNewerSchema(t *testing.T) {
	url := pgtest.Start(t)
	if _, _, err := Migrate(t.Context(), url); err != nil {
		t.Fatal(err)
	}
	newer := SchemaVersion() + 1
	if _, err := connectRaw(t, url).Exec(t.Context(), "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, now())", newer); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Migrate(t.Context(), url); !errors.Is(err, ErrSchemaTooNew) {
		t.Errorf("Migrate on a newer schema: err %v, want ErrSchemaTooNew", err)
	}
	for _, opts := range []Options{{}, {SkipMigrate: true}} {
		s, err := Open(t.Context(), url, opts)
		if err == nil {
			s.Close()
			t.Errorf("Open(%+v) on a newer schema succeeded", opts)
		} else if !errors.Is(err, ErrSchemaTooNew) {
			t.Errorf("Open(%+v) on a newer schema: err %v, want ErrSchemaTooNew", opts, err)
		}
	}
}

func TestOpen_SkipMigrateNeedsMigratedDatabase(t *testing.T) {
	url := pgtest.Start(t)
	s, err := Open(t.Context(), url, Options{SkipMigrate: true})
	if err == nil {
		s.Close()
		t.Fatalf("Open with SkipMigrate on an empty database succeeded")
	}
	if !strings.Contains(err.Error(), "migrate") {
		t.Errorf("Open error %q does not tell to run migrate", err)
	}
	if _, _, err := Migrate(t.Context(), url); err != nil {
		t.Fatal(err)
	}
	s, err = Open(t.Context(), url, Options{SkipMigrate: true})
	if err != nil {
		t.Fatalf("Open with SkipMigrate after Migrate: %v", err)
	}
	s.Close()
}

func TestMigrations_Parse(t *testing.T) {
	tests := []struct {
		name    string
		files   fstest.MapFS
		wantErr string
	}{
		{"Gap", fstest.MapFS{"migrations/0001_a.sql": {}, "migrations/0003_c.sql": {}}, "want version 2"},
		{"StartsAtTwo", fstest.MapFS{"migrations/0002_b.sql": {}}, "want version 1"},
		{"NoNumber", fstest.MapFS{"migrations/init.sql": {}}, "NNNN_description.sql"},
		{"ShortNumber", fstest.MapFS{"migrations/1_init.sql": {}}, "NNNN_description.sql"},
		{"Duplicate", fstest.MapFS{"migrations/0001_a.sql": {}, "migrations/0001_b.sql": {}}, "want version 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseMigrations(tt.files)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseMigrations = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
	ms := mustMigrations(t)
	if len(ms) == 0 || ms[0].name != "0001_init.sql" {
		t.Errorf("embedded migrations = %v, want 0001_init.sql first", ms)
	}
}

// checkVersions requires schema_migrations to hold each version from 1 to
// the latest exactly once.
func checkVersions(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	rows, _ := conn.Query(t.Context(), "SELECT version FROM schema_migrations ORDER BY version")
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		t.Fatalf("read schema_migrations: %v", err)
	}
	latest := SchemaVersion()
	if len(versions) != latest {
		t.Errorf("schema_migrations holds %v, want 1..%d once each", versions, latest)
		return
	}
	for i, v := range versions {
		if int(v) != i+1 {
			t.Errorf("schema_migrations holds %v, want 1..%d once each", versions, latest)
			return
		}
	}
}
