package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets/pgtest"
)

// planted is a value that must never appear in a backup file in clear.
const planted = "PLANTED-backup-canary-5d1e0b7a"

// populate writes a mix of secrets through the API and returns what it
// wrote: tenant -> key -> value.
func populate(t *testing.T, base string, keys map[string]string) map[string]map[string]string {
	t.Helper()
	values := map[string]map[string]string{}
	for tenant, apiKey := range keys {
		values[tenant] = map[string]string{}
		for i := range 40 {
			name := fmt.Sprintf("key-%02d", i)
			var value string
			switch i % 4 {
			case 0:
				value = planted
			case 1:
				value = fmt.Sprintf("ünïcødé ✓ %s %d \"quoted\" \\ back\nslash", tenant, i)
			case 2:
				value = strings.Repeat(fmt.Sprintf("%s-%d-", tenant, i), 700) // ~ 8 KiB
			case 3:
				value = fmt.Sprintf("v%d", i)
			}
			body, _ := json.Marshal(map[string]any{"value": value, "options": map[string]string{
				"notBefore": "2020-01-01T00:00:00Z", "expiresOn": "2999-01-01T00:00:00+02:00",
			}})
			if status, _, resp := do(t, "PUT", base+"/api/"+tenant+"/secrets/"+name, apiKey, string(body)); status != 204 {
				t.Fatalf("PUT %s/%s = %d %s", tenant, name, status, resp)
			}
			values[tenant][name] = value
		}
	}
	return values
}

// writeLoad PUTs fresh keys load-N with value load-value-N into tenant until
// stop is closed, and records the acknowledged ones in acked.
type writeLoad struct {
	mu    sync.Mutex
	acked map[string]string
	seq   atomic.Int64
	wg    sync.WaitGroup
	stop  chan struct{}
}

func startWriteLoad(t *testing.T, base, tenant, apiKey string, writers int) *writeLoad {
	l := &writeLoad{acked: map[string]string{}, stop: make(chan struct{})}
	for range writers {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				n := l.seq.Add(1)
				name, value := fmt.Sprintf("load-%d", n), fmt.Sprintf("load-value-%d", n)
				if status, _, _ := do(t, "PUT", base+"/api/"+tenant+"/secrets/"+name, apiKey, `{"value":"`+value+`"}`); status == 204 {
					l.mu.Lock()
					l.acked[name] = value
					l.mu.Unlock()
				}
			}
		})
	}
	return l
}

// snapshot returns a copy of the writes acknowledged so far.
func (l *writeLoad) snapshot() map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := make(map[string]string, len(l.acked))
	for k, v := range l.acked {
		m[k] = v
	}
	return m
}

func (l *writeLoad) finish() { close(l.stop); l.wg.Wait() }

func fileMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Mode().Perm()
}

func TestBackup_OnlineRoundTrip(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	masterKey := newMasterKey(t)
	srv := startServer(t, dataDir, masterKey)
	keys := map[string]string{}
	for _, tenant := range []string{"acme", "globex", "initech"} {
		keys[tenant] = createKey(t, dataDir, tenant, "Secret.Read", "Secret.Write")
	}
	values := populate(t, srv.base, keys)

	// Back up while four writers keep adding secrets.
	load := startWriteLoad(t, srv.base, "acme", keys["acme"], 4)
	for load.seq.Load() < 50 { // the snapshot is taken under load
		time.Sleep(5 * time.Millisecond)
	}
	ackedBefore := load.snapshot()
	backupFile := filepath.Join(t.TempDir(), "backups", "neostore.db")
	os.MkdirAll(filepath.Dir(backupFile), 0o700)
	stdout, stderr, err := cli(t, "backup", "--data", dataDir, "--out", backupFile)
	load.finish()
	if err != nil {
		t.Fatalf("backup: %v\n%s", err, stderr)
	}
	if !strings.Contains(stdout, "running server") {
		t.Errorf("backup did not go through the running server: %s", stdout)
	}
	ackedAll := load.snapshot()
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}

	t.Run("FileIsPrivateAndSealed", func(t *testing.T) {
		if got := fileMode(t, backupFile); got != 0o600 {
			t.Errorf("backup file mode = %o, want 600", got)
		}
		b, err := os.ReadFile(backupFile)
		if err != nil {
			t.Fatal(err)
		}
		for _, needle := range []string{planted, "backup-canary", keys["acme"]} {
			if bytes.Contains(b, []byte(needle)) {
				t.Errorf("the backup contains %q in clear", needle)
			}
		}
		if !bytes.Contains(b, []byte("key-00")) {
			t.Errorf("the backup does not contain a key name; is it the store?")
		}
		if matches, _ := filepath.Glob(filepath.Join(filepath.Dir(backupFile), ".*")); len(matches) != 0 {
			t.Errorf("temporary files left beside the backup: %v", matches)
		}
	})

	restored := filepath.Join(t.TempDir(), "restored")
	t.Run("RefusedIntoNonEmptyDirectory", func(t *testing.T) {
		_, _, err := cli(t, "restore", "--from", backupFile, "--data", dataDir)
		if err == nil || !strings.Contains(err.Error(), "not empty") {
			t.Errorf("restore into the live data directory = %v, want refused as not empty", err)
		}
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o600)
		if _, _, err := cli(t, "restore", "--from", backupFile, "--data", dir); err == nil {
			t.Errorf("restore into a directory holding a file succeeded")
		}
		if _, err := os.Stat(filepath.Join(dir, databaseFile)); err == nil {
			t.Errorf("a refused restore left a database behind")
		}
	})
	t.Run("RefusedWithAnotherMasterKey", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "d")
		_, _, err := cli(t, "restore", "--from", backupFile, "--data", dir, "--master-key-file", newMasterKey(t))
		if err == nil || exitCode(err) != exitConfig {
			t.Errorf("restore with another master key = %v, want exit %d", err, exitConfig)
		}
		if _, err := os.Stat(filepath.Join(dir, databaseFile)); err == nil {
			t.Errorf("a refused restore left a database behind")
		}
	})
	t.Run("Restores", func(t *testing.T) {
		stdout, stderr, err := cli(t, "restore", "--from", backupFile, "--data", restored, "--master-key-file", masterKey)
		if err != nil {
			t.Fatalf("restore: %v\n%s", err, stderr)
		}
		if !strings.Contains(stdout, "3 tenants") || !strings.Contains(stdout, "3 API keys") {
			t.Errorf("restore reported %q, want 3 tenants and 3 API keys", stdout)
		}
		if got := fileMode(t, restored); got != 0o700 {
			t.Errorf("restored directory mode = %o, want 700", got)
		}
		if got := fileMode(t, filepath.Join(restored, databaseFile)); got != 0o600 {
			t.Errorf("restored database mode = %o, want 600", got)
		}
	})
	t.Run("ServerWithAnotherMasterKeyRefusesToStart", func(t *testing.T) {
		_, _, err := cli(t, "serve", "--listen", freeAddr(t), "--data", restored, "--master-key-file", newMasterKey(t))
		if err == nil || exitCode(err) != exitConfig || !strings.Contains(err.Error(), "master key") {
			t.Errorf("serve on the restore with another master key = %v, want exit %d naming the master key", err, exitConfig)
		}
	})
	t.Run("ServesByteIdenticalValues", func(t *testing.T) {
		srv := startServer(t, restored, masterKey)
		checked := 0
		for tenant, kv := range values {
			for name, want := range kv {
				status, _, got := do(t, "GET", srv.base+"/api/"+tenant+"/secrets/"+name, keys[tenant], "")
				if status != 200 || got != want {
					t.Errorf("GET %s/%s after restore = %d (%d bytes), want 200 and the %d bytes written", tenant, name, status, len(got), len(want))
				}
				checked++
			}
		}
		// Every write acknowledged before the backup started is in it; a
		// write racing the snapshot may or may not be, but never torn.
		_, _, listing := do(t, "GET", srv.base+"/api/acme/secrets", keys["acme"], "")
		var names []string
		if err := json.Unmarshal([]byte(listing), &names); err != nil {
			t.Fatalf("list: %v: %s", err, listing)
		}
		present := map[string]bool{}
		for _, n := range names {
			present[n] = true
		}
		for name := range ackedBefore {
			if !present[name] {
				t.Errorf("%s, acknowledged before the backup started, is missing from the restore", name)
			}
		}
		inBackup := 0
		for _, name := range names {
			if !strings.HasPrefix(name, "load-") {
				continue
			}
			want, acked := ackedAll[name]
			status, _, got := do(t, "GET", srv.base+"/api/acme/secrets/"+name, keys["acme"], "")
			if !acked || status != 200 || got != want {
				t.Errorf("restored %s = %d %q (acknowledged %v), want the acknowledged value", name, status, got, acked)
			}
			inBackup++
		}
		t.Logf("restored %d populated secrets byte-identical; concurrent load: %d writes acknowledged before the backup, %d by its end, %d in the backup",
			checked, len(ackedBefore), len(ackedAll), inBackup)
	})
}

func TestBackup_Offline(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	masterKey := newMasterKey(t)
	srv := startServer(t, dataDir, masterKey)
	key := createKey(t, dataDir, "acme", "Secret.Read", "Secret.Write")
	values := populate(t, srv.base, map[string]string{"acme": key})
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}

	backupFile := filepath.Join(t.TempDir(), "neostore.db")
	os.WriteFile(backupFile, []byte("an older backup"), 0o644)
	stdout, stderr, err := cli(t, "backup", "--data", dataDir, "--out", backupFile, "--force")
	if err != nil {
		t.Fatalf("backup: %v\n%s", err, stderr)
	}
	if !strings.Contains(stdout, "no server running") {
		t.Errorf("backup output %q does not say it read the file directly", stdout)
	}
	if got := fileMode(t, backupFile); got != 0o600 {
		t.Errorf("backup replaced a 0644 file and left mode %o, want 600", got)
	}
	restored := filepath.Join(t.TempDir(), "restored")
	if _, stderr, err := cli(t, "restore", "--from", backupFile, "--data", restored); err != nil {
		t.Fatalf("restore: %v\n%s", err, stderr)
	}
	srv = startServer(t, restored, masterKey)
	for name, want := range values["acme"] {
		if status, _, got := do(t, "GET", srv.base+"/api/acme/secrets/"+name, key, ""); status != 200 || got != want {
			t.Errorf("GET %s after an offline backup and restore = %d, want 200 and the value", name, status)
		}
	}
}

func TestBackup_Refusals(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	masterKey := newMasterKey(t)
	srv := startServer(t, dataDir, masterKey)
	srv.stop()

	empty := filepath.Join(t.TempDir(), "empty.db")
	os.WriteFile(empty, nil, 0o600)
	garbage := filepath.Join(t.TempDir(), "garbage.db")
	os.WriteFile(garbage, bytes.Repeat([]byte("not a database "), 2000), 0o600)

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"BackupOverTheLiveDatabase", []string{"backup", "--data", dataDir, "--out", filepath.Join(dataDir, databaseFile)}, "live database"},
		{"BackupOfNoStore", []string{"backup", "--data", t.TempDir(), "--out", filepath.Join(t.TempDir(), "b.db")}, "no embedded store"},
		{"BackupWithoutOut", []string{"backup", "--data", dataDir}, "--out"},
		{"RestoreOfEmptyFile", []string{"restore", "--from", empty, "--data", filepath.Join(t.TempDir(), "r")}, "not a backup"},
		{"RestoreOfGarbage", []string{"restore", "--from", garbage, "--data", filepath.Join(t.TempDir(), "r")}, "not a neostore backup"},
		{"RestoreOfMissingFile", []string{"restore", "--from", filepath.Join(t.TempDir(), "absent"), "--data", filepath.Join(t.TempDir(), "r")}, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := cli(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v = %v, want an error saying %q", tc.args, err, tc.want)
			}
		})
	}
	t.Run("BackupOverAnExistingFileNeedsForce", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "b.db")
		older := []byte("an older backup, maybe the only one")
		os.WriteFile(out, older, 0o600)
		_, _, err := cli(t, "backup", "--data", dataDir, "--out", out)
		if err == nil || !strings.Contains(err.Error(), "already exists") || !strings.Contains(err.Error(), "--force") || exitCode(err) != 1 {
			t.Errorf("backup over an existing file = %v (exit %d), want exit 1 naming --force", err, exitCode(err))
		}
		if got, _ := os.ReadFile(out); !bytes.Equal(got, older) {
			t.Errorf("the existing file was changed")
		}
		if _, stderr, err := cli(t, "backup", "--data", dataDir, "--out", out, "--force"); err != nil {
			t.Fatalf("backup --force: %v\n%s", err, stderr)
		}
		if got, _ := os.ReadFile(out); bytes.Equal(got, older) {
			t.Errorf("backup --force left the old file")
		}
	})
	t.Run("BackupOfAPostgresServer", func(t *testing.T) {
		node, nodeDir := startPostgresNode(t, pgtest.Start(t), masterKey)
		defer node.stop()
		_, _, err := cli(t, "backup", "--data", nodeDir, "--out", filepath.Join(t.TempDir(), "b.db"))
		if err == nil || !strings.Contains(err.Error(), "pg_dump") {
			t.Errorf("backup of a PostgreSQL node = %v, want a pointer to pg_dump", err)
		}
	})
}
