package pgtest

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		helperProcess()
		return
	}
	Main(m)
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func queryString(t *testing.T, conn *pgx.Conn, sql string, args ...any) string {
	t.Helper()
	var s string
	if err := conn.QueryRow(t.Context(), sql, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

func TestStart_FreshEmptyDatabases(t *testing.T) {
	a, b := connect(t, Start(t)), connect(t, Start(t))
	nameA := queryString(t, a, "SELECT current_database()")
	nameB := queryString(t, b, "SELECT current_database()")
	if nameA == nameB {
		t.Errorf("two Start calls gave the same database %q", nameA)
	}
	var tables int
	err := a.QueryRow(t.Context(), "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'").Scan(&tables)
	if err != nil || tables != 0 {
		t.Errorf("fresh database has %d tables (err %v), want 0", tables, err)
	}
	if _, err := a.Exec(t.Context(), "CREATE TABLE t (v int)"); err != nil {
		t.Errorf("CREATE TABLE in the fresh database: %v", err)
	}
}

func TestStart_DropsDatabaseAtCleanup(t *testing.T) {
	var name string
	t.Run("Owner", func(t *testing.T) {
		name = queryString(t, connect(t, Start(t)), "SELECT current_database()")
	})
	admin := connect(t, Start(t))
	var n int
	if err := admin.QueryRow(t.Context(), "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("database %s still exists after its test ended", name)
	}
}

func TestStartICU_NonByteOrderCollation(t *testing.T) {
	conn := connect(t, StartICU(t, "en-US"))
	var aFirst bool
	if err := conn.QueryRow(t.Context(), "SELECT 'a' < 'B'").Scan(&aFirst); err != nil {
		t.Fatal(err)
	}
	if !aFirst {
		t.Errorf("'a' < 'B' is false: the database sorts by byte order, want en-US collation")
	}
}

func TestServer_StopStartKeepsPortAndData(t *testing.T) {
	srv := StartServer(t)
	url := srv.NewDatabase(t)
	conn := connect(t, url)
	if _, err := conn.Exec(t.Context(), "CREATE TABLE t (v text); INSERT INTO t VALUES ('kept')"); err != nil {
		t.Fatal(err)
	}
	conn.Close(t.Context())
	port := srv.Port()

	srv.Stop(t)
	if srv.Running() {
		t.Errorf("Running after Stop = true")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if c, err := pgx.Connect(ctx, url); err == nil {
		c.Close(ctx)
		t.Fatalf("connected to a stopped server")
	}

	srv.Start(t)
	if got := srv.Port(); got != port {
		t.Errorf("port after restart = %d, want %d", got, port)
	}
	if got := queryString(t, connect(t, url), "SELECT v FROM t"); got != "kept" {
		t.Errorf("row after restart = %q, want %q", got, "kept")
	}
}

func TestServer_FreezeThaw(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Freeze needs Linux")
	}
	srv := StartServer(t)
	url := srv.NewDatabase(t)
	srv.Freeze(t)
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	c, err := pgx.Connect(ctx, url)
	if err == nil {
		c.Close(context.Background())
		t.Fatalf("connected to a frozen server")
	}
	if elapsed := time.Since(start); elapsed < 400*time.Millisecond {
		t.Errorf("connect to a frozen server failed after %v (%v), want it to hang until the timeout", elapsed, err)
	}
	srv.Thaw(t)
	if got := queryString(t, connect(t, url), "SELECT 'up'"); got != "up" {
		t.Errorf("after Thaw got %q", got)
	}
}

func TestWithDatabase(t *testing.T) {
	tests := []struct{ base, want string }{
		{"postgres://u:p@h:5432/postgres?sslmode=disable", "postgres://u:p@h:5432/db1?sslmode=disable"},
		{"postgresql://h/", "postgresql://h/db1"},
		{"postgres://h", "postgres://h/db1"},
		{"host=h user=u dbname=postgres", "host=h user=u dbname=postgres dbname=db1"},
	}
	for _, tt := range tests {
		got, err := withDatabase(tt.base, "db1")
		if err != nil || got != tt.want {
			t.Errorf("withDatabase(%q) = %q, %v; want %q", tt.base, got, err, tt.want)
		}
	}
}

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int // sign
	}{
		{"9.6", "15", -1},
		{"15", "16", -1},
		{"16.1", "16", 1},
		{"15", "15", 0},
	}
	for _, tt := range tests {
		got := compareVersions(tt.a, tt.b)
		if (got < 0 && tt.want >= 0) || (got > 0 && tt.want <= 0) || (got == 0 && tt.want != 0) {
			t.Errorf("compareVersions(%q, %q) = %d, want sign %d", tt.a, tt.b, got, tt.want)
		}
	}
}

// helperEnv makes the test binary, re-run as a child, start the shared
// cluster, report it and wait to be killed.
const helperEnv = "PGTEST_HELPER_PROCESS"

func helperProcess() {
	srv, err := newServer()
	if err == nil {
		err = srv.start()
	}
	if err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(1)
	}
	srv.mu.Lock()
	fmt.Printf("ready %d %s\n", srv.proc.Pid, srv.dir)
	srv.mu.Unlock()
	time.Sleep(time.Minute)
	os.Exit(2)
}
