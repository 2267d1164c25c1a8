// Package pgtest gives tests a real PostgreSQL server: a fresh, empty
// database per test, on a throwaway cluster it starts itself or on the
// server named by NEOSTORE_TEST_POSTGRES_URL. It never mocks the database.
//
// Where the databases come from:
//
//   - NEOSTORE_TEST_POSTGRES_URL set: Start creates a database with a random
//     name on that server (the URL's role needs CREATEDB) and drops it when
//     the test ends.
//   - Otherwise Start starts one cluster per test binary with the machine's
//     PostgreSQL binaries (NEOSTORE_TEST_POSTGRES_BINDIR, else the newest
//     /usr/lib/postgresql/*/bin, else initdb on PATH): initdb into a fresh
//     directory under the system temporary directory, the server on a free
//     loopback port with its Unix socket inside that directory, fsync off.
//     As root, which PostgreSQL refuses, the cluster runs as the "postgres"
//     user. Its databases sort text by ICU en-US (PostgreSQL 15 and later),
//     not by byte, so that code relying on the collation fails here.
//
// Without binaries the tests skip and say why, unless CI is set (to anything
// but "false" or "0") or NEOSTORE_REQUIRE_POSTGRES=1: then they fail,
// because a CI run that silently skipped its database tests proves nothing.
//
// No server outlives its test binary. Packages that call Start run their
// tests through Main from TestMain, which stops the shared cluster and
// removes its files. Independently of that, every server is started as a
// direct child of the test binary with a parent-death signal, so the kernel
// stops it even when the binary is killed; directories that such a binary
// left behind are removed by the next one.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Environment variables read by this package.
const (
	// EnvURL names an existing server to create test databases on instead
	// of starting a cluster.
	EnvURL = "NEOSTORE_TEST_POSTGRES_URL"
	// EnvRequire, set to 1, makes missing PostgreSQL binaries a test
	// failure instead of a skip. CI has the same effect.
	EnvRequire = "NEOSTORE_REQUIRE_POSTGRES"
	// EnvBinDir names the directory holding initdb and postgres, for
	// installations outside /usr/lib/postgresql and PATH.
	EnvBinDir = "NEOSTORE_TEST_POSTGRES_BINDIR"
)

// shared is the one cluster of this test binary. It is package state by
// necessity: the whole point is that every test of the binary shares it.
var shared struct {
	once sync.Once
	mu   sync.Mutex
	srv  *Server
	err  error
}

// Start returns the URL of a fresh, empty database that the calling test
// owns; it is dropped when the test ends. The role in the URL is a
// superuser on the throwaway cluster, or the role of
// NEOSTORE_TEST_POSTGRES_URL.
func Start(tb testing.TB) string {
	tb.Helper()
	return createDatabase(tb, serverURL(tb), "", nil)
}

// StartICU returns the URL of a fresh, empty database whose default
// collation is the ICU locale icuLocale (for example "en-US"), so that a
// test can prove it does not depend on the database's collation. It skips
// the test when the server cannot create one (PostgreSQL before 15, or
// built without ICU).
func StartICU(tb testing.TB, icuLocale string) string {
	tb.Helper()
	return createDatabase(tb, serverURL(tb), icuLocale, nil)
}

// serverURL returns a URL on the server that test databases are created
// on, starting the shared cluster on first use.
func serverURL(tb testing.TB) string {
	tb.Helper()
	if base := os.Getenv(EnvURL); base != "" {
		return base
	}
	shared.once.Do(func() {
		srv, err := newServer()
		if err == nil {
			if err = srv.start(); err != nil {
				_ = srv.shutdown()
				srv = nil
			}
		}
		shared.mu.Lock()
		shared.srv, shared.err = srv, err
		shared.mu.Unlock()
	})
	shared.mu.Lock()
	srv, err := shared.srv, shared.err
	shared.mu.Unlock()
	if err != nil {
		fail(tb, err)
	}
	if srv == nil {
		tb.Fatalf("pgtest: the shared cluster was shut down; call Start only from tests run by pgtest.Main")
	}
	return srv.adminURL()
}

// Main runs the tests of m, stops the shared cluster and exits with the
// tests' status. Call it from TestMain in every package that uses Start.
func Main(m *testing.M) {
	code := m.Run()
	Shutdown()
	os.Exit(code)
}

// Shutdown stops the shared cluster, if one was started, and removes its
// files. Main calls it; call it yourself only from a TestMain that cannot
// use Main. Start fails after Shutdown.
func Shutdown() {
	shared.once.Do(func() {}) // a later Start must not start a new cluster
	shared.mu.Lock()
	srv := shared.srv
	shared.srv = nil
	shared.mu.Unlock()
	if srv != nil {
		if err := srv.shutdown(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		}
	}
}

// errNoBinaries is returned when no PostgreSQL installation is found.
var errNoBinaries = errors.New("no PostgreSQL binaries found")

// fail reports err as a skip when it only means PostgreSQL is not
// installed and the run does not require it, and as a failure otherwise.
func fail(tb testing.TB, err error) {
	tb.Helper()
	if errors.Is(err, errNoBinaries) && !required() {
		tb.Skipf("pgtest: skipped, PostgreSQL is not available: %v. "+
			"Install PostgreSQL (Debian: apt-get install postgresql) or set %s to a server URL whose role may CREATE DATABASE; "+
			"set %s=1 to make this a failure", err, EnvURL, EnvRequire)
	}
	if errors.Is(err, errNoBinaries) {
		tb.Fatalf("pgtest: PostgreSQL is required here (CI or %s=1) but not available: %v. "+
			"Install PostgreSQL (Debian: apt-get install postgresql) or set %s", EnvRequire, err, EnvURL)
	}
	tb.Fatalf("pgtest: %v", err)
}

// required reports whether the environment demands that the PostgreSQL
// tests run.
func required() bool {
	if os.Getenv(EnvRequire) == "1" {
		return true
	}
	ci := strings.ToLower(os.Getenv("CI"))
	return ci != "" && ci != "false" && ci != "0"
}

// createDatabase creates a database with a random name on the server of
// base, registers its drop with tb.Cleanup and returns its URL. A non-empty
// icuLocale asks for an ICU default collation and skips the test when the
// server cannot provide one. When running is not nil and reports false at
// cleanup, the server is down on purpose and the drop is left to whoever
// removes the server.
func createDatabase(tb testing.TB, base, icuLocale string, running func() bool) string {
	tb.Helper()
	name := "neostore_test_" + randomHex(8)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		tb.Fatalf("pgtest: connect to create a database: %v", err)
	}
	defer conn.Close(context.Background())

	stmt := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if icuLocale != "" {
		stmt += " TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE " + quoteLiteral(icuLocale)
	}
	if _, err := conn.Exec(ctx, stmt); err != nil {
		if icuLocale != "" {
			tb.Skipf("pgtest: skipped, the server cannot create a database with ICU locale %q (PostgreSQL 15 or later built with ICU is needed): %v", icuLocale, err)
		}
		tb.Fatalf("pgtest: %s: %v", stmt, err)
	}
	tb.Cleanup(func() {
		if running != nil && !running() {
			return
		}
		if err := dropDatabase(base, name); err != nil {
			tb.Errorf("pgtest: drop test database %s: %v", name, err)
		}
	})
	u, err := withDatabase(base, name)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	return u
}

// dropDatabase drops name, disconnecting whatever still uses it. FORCE
// needs PostgreSQL 13; older servers get a plain DROP.
func dropDatabase(base, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
		if _, err2 := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident); err2 != nil {
			return errors.Join(err, err2)
		}
	}
	return nil
}

// withDatabase returns base with its database replaced by name. base is a
// postgres:// URL or a keyword/value string, where a later dbname wins.
func withDatabase(base, name string) (string, error) {
	if strings.HasPrefix(base, "postgres://") || strings.HasPrefix(base, "postgresql://") {
		u, err := url.Parse(base)
		if err != nil {
			return "", errors.New("cannot parse the server URL") // the URL may hold a password
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	return base + " dbname=" + name, nil
}

func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}
