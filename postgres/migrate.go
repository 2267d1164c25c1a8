package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLockID is the advisory-lock key that serializes migrations of
// one database: the first 8 bytes of SHA-256("neostore-secrets schema")
// with the sign bit cleared, unlikely to collide with another program's
// lock on a shared database.
const migrationLockID int64 = 0x48e115cd53ee7604

// ErrSchemaTooNew is wrapped by the error of Open and Migrate when the
// database's schema is newer than this build knows: a newer
// neostore-secrets migrated it, and this one must not touch it.
var ErrSchemaTooNew = errors.New("database schema is newer than this build of neostore-secrets")

// migration is one numbered schema change, applied in one transaction.
type migration struct {
	version int
	name    string // file name, for messages
	sql     string
}

// migrations returns the embedded migrations in order. Their file names
// are NNNN_description.sql, numbered from 0001 without gaps.
func migrations() ([]migration, error) {
	return parseMigrations(migrationFiles)
}

// parseMigrations reads migrations/*.sql of fsys.
func parseMigrations(fsys fs.FS) ([]migration, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, name := range names {
		base := path.Base(name)
		num, _, ok := strings.Cut(base, "_")
		version, err := strconv.Atoi(num)
		if !ok || err != nil || len(num) != 4 {
			return nil, fmt.Errorf("migration file %s: name is not NNNN_description.sql", base)
		}
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: version, name: base, sql: string(data)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration file %s: want version %d (versions start at 1 without gaps)", m.name, i+1)
		}
	}
	return ms, nil
}

// SchemaVersion returns the schema version this build migrates databases
// to.
func SchemaVersion() int {
	ms, err := migrations()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].version
}

// Migrate brings the database at url to this build's schema version and
// reports the version it found and the one it left. It is what
// `neostore-secrets migrate` runs and what Open runs first. Several nodes
// may migrate one database at once: a PostgreSQL advisory lock lets one
// work while the others wait, and each migration is one transaction that
// also records its version, so a crash leaves a whole version or none.
// It fails, wrapping ErrSchemaTooNew, on a database a newer build migrated.
//
// Migrate runs without a statement timeout (schema changes on big tables
// are slow); bound it with ctx. A URL without connect_timeout gets 5s.
func Migrate(ctx context.Context, url string) (from, to int, err error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return 0, 0, fmt.Errorf("postgres: migrate: %w", err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	return migrateConfig(ctx, cfg)
}

// migrateConfig runs every embedded migration on a connection of its own.
func migrateConfig(ctx context.Context, cfg *pgx.ConnConfig) (from, to int, err error) {
	ms, err := migrations()
	if err != nil {
		return 0, 0, fmt.Errorf("postgres: migrate: %w", err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return 0, 0, openError(ctx, "migrate: connect", err)
	}
	defer conn.Close(context.Background())
	from, to, err = migrate(ctx, conn, ms)
	if err != nil {
		return from, to, openError(ctx, "migrate", err)
	}
	return from, to, nil
}

// migrate applies ms (versions 1..len(ms)) on conn.
//
// A database already at the latest version is only read: no lock, no
// DDL, so nodes whose role may not change the schema start fine. Else it
// takes the advisory lock for the whole run and applies each missing
// version in a transaction whose first statement claims the version in
// schema_migrations. The lock is what makes concurrent runs safe on
// PostgreSQL; the claim makes them safe where advisory locks are no-ops
// (CockroachDB): a second claimant of a version fails on the primary key
// before its DDL runs, and rereads.
func migrate(ctx context.Context, conn *pgx.Conn, ms []migration) (from, to int, err error) {
	latest := len(ms)
	current, err := schemaVersion(ctx, conn)
	if err != nil {
		return 0, 0, err
	}
	if err := checkNotNewer(current, latest); err != nil {
		return current, current, err
	}
	if current == latest {
		return current, current, nil
	}

	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLockID); err != nil {
		return current, current, fmt.Errorf("take migration lock: %w", err)
	}
	defer func() {
		// Closing the connection releases the lock too; unlocking keeps a
		// pooled or reused connection clean.
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", migrationLockID)
	}()
	if err := createVersionTable(ctx, conn); err != nil {
		return current, current, err
	}
	// Another node may have migrated while this one waited for the lock.
	if current, err = schemaVersion(ctx, conn); err != nil {
		return 0, 0, err
	}
	if err := checkNotNewer(current, latest); err != nil {
		return current, current, err
	}
	from, to = current, current
	for _, m := range ms[current:] {
		applied, err := apply(ctx, conn, m)
		if err != nil {
			return from, to, err
		}
		if !applied {
			// Claimed by a concurrent run that holds no lock we honour.
			if to, err = schemaVersion(ctx, conn); err != nil {
				return from, to, err
			}
			if to < m.version {
				return from, to, fmt.Errorf("migration %s: claimed by another run that did not finish", m.name)
			}
			continue
		}
		to = m.version
	}
	return from, to, nil
}

// createVersionTable creates schema_migrations unless it exists. Two
// sessions creating it at once (possible only where the advisory lock is
// a no-op) make one fail on the catalog's unique index; that one tries
// again and finds the table.
func createVersionTable(ctx context.Context, conn *pgx.Conn) error {
	var err error
	for range 3 {
		_, err = conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER NOT NULL,
			applied_at TIMESTAMPTZ NOT NULL,
			CONSTRAINT schema_migrations_pkey PRIMARY KEY (version)
		)`)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || (pgErr.Code != "23505" && pgErr.Code != "42710" && pgErr.Code != "42P07") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	return nil
}

// apply runs one migration in a transaction. It returns false, and
// changes nothing, when the version is already recorded.
func apply(ctx context.Context, conn *pgx.Conn, m migration) (applied bool, err error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("migration %s: %w", m.name, err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, now())", m.version); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" {
			return false, nil
		}
		return false, fmt.Errorf("migration %s: record version: %w", m.name, err)
	}
	// No arguments: pgx sends the simple protocol, which runs the file's
	// several statements.
	if _, err := tx.Exec(ctx, m.sql); err != nil {
		return false, fmt.Errorf("migration %s: %w", m.name, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("migration %s: commit: %w", m.name, err)
	}
	return true, nil
}

// schemaVersion returns the highest recorded version, 0 for a database
// without schema_migrations.
func schemaVersion(ctx context.Context, conn *pgx.Conn) (int, error) {
	var exists bool
	err := conn.QueryRow(ctx, `SELECT EXISTS (
		SELECT 1 FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_name = 'schema_migrations'
	)`).Scan(&exists)
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	if !exists {
		return 0, nil
	}
	var v int
	if err := conn.QueryRow(ctx, "SELECT COALESCE(max(version), 0) FROM schema_migrations").Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

func checkNotNewer(current, latest int) error {
	if current > latest {
		return fmt.Errorf("%w: the database is at schema version %d, this build knows versions up to %d; run a newer neostore-secrets",
			ErrSchemaTooNew, current, latest)
	}
	return nil
}
