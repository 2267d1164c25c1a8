package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets/envelope"
	"github.com/neostore/neostore-secrets/pgtest"
)

// masterKeyList is `keys list --json` output.
type masterKeyList []struct {
	ID         uint32 `json:"id"`
	Status     string `json:"status"`
	Primary    bool   `json:"primary"`
	TenantKeys int    `json:"tenantKeys"`
	KeyCheck   bool   `json:"keyCheck"`
	AuditKey   bool   `json:"auditKey"`
}

func (l masterKeyList) primary() uint32 {
	for _, k := range l {
		if k.Primary {
			return k.ID
		}
	}
	return 0
}

func (l masterKeyList) has(id uint32) bool {
	for _, k := range l {
		if k.ID == id {
			return true
		}
	}
	return false
}

// listKeys runs `keys list --json` with args and decodes it.
func listKeys(t *testing.T, args ...string) masterKeyList {
	t.Helper()
	stdout, stderr, err := cli(t, append([]string{"keys", "list", "--json"}, args...)...)
	if err != nil {
		t.Fatalf("keys list: %v\n%s", err, stderr)
	}
	var l masterKeyList
	if err := json.Unmarshal([]byte(stdout), &l); err != nil {
		t.Fatalf("keys list --json: %v\n%s", err, stdout)
	}
	return l
}

// mustCLI runs a command that must succeed and returns its stdout.
func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	stdout, stderr, err := cli(t, args...)
	if err != nil {
		t.Fatalf("%s: %v\nstdout: %s\nstderr: %s", strings.Join(args[:2], " "), err, stdout, stderr)
	}
	t.Logf("%s:\n%s%s", strings.Join(args, " "), stdout, stderr)
	return stdout
}

// load is a steady stream of reads and writes against one or more nodes,
// checking every answer: a read of a seeded secret must be 200 with its
// value, and each writer reads back what it wrote.
type load struct {
	reads, writes, errors atomic.Int64
	stop                  chan struct{}
	wg                    sync.WaitGroup

	mu   sync.Mutex
	last map[string]string // path -> last acknowledged value written by the load
	errs []string
}

// seeded is a secret written before the load starts, never changed by it.
type seeded struct{ path, key, value string }

func startLoad(t *testing.T, bases []string, static []seeded, writers []seeded) *load {
	l := &load{stop: make(chan struct{}), last: map[string]string{}}
	client := &http.Client{Timeout: 10 * time.Second}
	send := func(method, url, key, body string) (int, string, error) {
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		req.Header.Set("X-API-KEY", key)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	fail := func(format string, args ...any) {
		l.errors.Add(1)
		l.mu.Lock()
		if len(l.errs) < 20 {
			l.errs = append(l.errs, fmt.Sprintf(format, args...))
		}
		l.mu.Unlock()
	}
	for r := range 4 {
		l.wg.Go(func() {
			for i := r; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				s := static[i%len(static)]
				base := bases[i%len(bases)]
				status, body, err := send("GET", base+s.path, s.key, "")
				l.reads.Add(1)
				if err != nil || status != 200 || body != s.value {
					fail("GET %s%s = %d %q (%v), want 200 %q", base, s.path, status, body, err, s.value)
				}
			}
		})
	}
	for w, target := range writers {
		l.wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				base := bases[(w+i)%len(bases)]
				value := fmt.Sprintf("written-%d-%d", w, i)
				status, body, err := send("PUT", base+target.path, target.key, `{"value":"`+value+`"}`)
				if err != nil || status != 204 {
					fail("PUT %s%s = %d %q (%v), want 204", base, target.path, status, body, err)
					continue
				}
				l.writes.Add(1)
				l.mu.Lock()
				l.last[target.path] = value
				l.mu.Unlock()
				// Read it back on another node than the one that wrote it.
				other := bases[(w+i+1)%len(bases)]
				status, body, err = send("GET", other+target.path, target.key, "")
				l.reads.Add(1)
				if err != nil || status != 200 || body != value {
					fail("GET %s%s after PUT = %d %q (%v), want 200 %q", other, target.path, status, body, err, value)
				}
			}
		})
	}
	return l
}

// finish stops the load and fails t if any answer was wrong.
func (l *load) finish(t *testing.T) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	t.Logf("load during rotation: %d reads, %d writes, %d errors", l.reads.Load(), l.writes.Load(), l.errors.Load())
	for _, e := range l.errs {
		t.Errorf("under load: %s", e)
	}
	if l.errors.Load() != 0 {
		t.Errorf("%d requests failed during the rotation, want 0", l.errors.Load())
	}
	if l.reads.Load() == 0 || l.writes.Load() == 0 {
		t.Errorf("the load did not run (%d reads, %d writes)", l.reads.Load(), l.writes.Load())
	}
}

// seed writes n secrets per tenant on base and returns them.
func seed(t *testing.T, base string, tenants map[string]string, n int) []seeded {
	t.Helper()
	var out []seeded
	for tenant, key := range tenants {
		for i := range n {
			s := seeded{path: fmt.Sprintf("/api/%s/secrets/static-%02d", tenant, i), key: key, value: fmt.Sprintf("%s-value-%d", tenant, i)}
			if status, _, body := do(t, "PUT", base+s.path, key, `{"value":"`+s.value+`"}`); status != 204 {
				t.Fatalf("seed PUT %s = %d %s", s.path, status, body)
			}
			out = append(out, s)
		}
	}
	return out
}

// TestKeys_RotationUnderLoad rotates the master key and a tenant's data key
// of a running embedded-store server while clients read and write, and
// checks that every request succeeds throughout and that the old master
// key is really gone from use at the end.
func TestKeys_RotationUnderLoad(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	masterKey := newMasterKey(t)
	oldKeyset, err := os.ReadFile(masterKey)
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, dataDir, masterKey)
	acme := createKey(t, dataDir, "acme", "Secret.Read", "Secret.Write")
	globex := createKey(t, dataDir, "globex", "Secret.Read", "Secret.Write")
	static := seed(t, srv.base, map[string]string{"acme": acme, "globex": globex}, 25)
	writers := []seeded{
		{path: "/api/acme/secrets/hot-1", key: acme},
		{path: "/api/acme/secrets/hot-2", key: acme},
		{path: "/api/globex/secrets/hot-1", key: globex},
	}
	before := listKeys(t, "--master-key-file", masterKey, "--data", dataDir)
	oldID := before.primary()
	if len(before) != 1 || before[0].TenantKeys != 2 || !before[0].KeyCheck {
		t.Fatalf("keys before rotation = %+v, want one key wrapping 2 tenant keys and the key check", before)
	}

	l := startLoad(t, []string{srv.base}, static, writers)
	time.Sleep(200 * time.Millisecond)

	// 1. A new primary master key, picked up by the running server.
	newID := strings.TrimSpace(mustCLI(t, "keys", "rotate", "--master-key-file", masterKey, "--data", dataDir))
	after := listKeys(t, "--master-key-file", masterKey, "--data", dataDir)
	if fmt.Sprint(after.primary()) != newID || !after.has(oldID) || len(after) != 2 {
		t.Fatalf("keys after rotate = %+v, want the old key %d and the new primary %s", after, oldID, newID)
	}

	// 2. Removing the old key is refused while tenant keys depend on it.
	_, stderr, err := cli(t, "keys", "remove", "--master-key-file", masterKey, "--key-id", fmt.Sprint(oldID), "--data", dataDir)
	if err == nil || !strings.Contains(err.Error(), "rewrap") || !strings.Contains(err.Error(), "2 tenant data keys") {
		t.Fatalf("keys remove before rewrap = %v (%s), want a refusal counting 2 tenant keys and saying rewrap", err, stderr)
	}
	if l := listKeys(t, "--master-key-file", masterKey); !l.has(oldID) {
		t.Fatalf("a refused keys remove changed the key file")
	}

	// 3. Rewrap every tenant key online.
	if out := mustCLI(t, "keys", "rewrap", "--data", dataDir); !strings.Contains(out, "rewrapped 2 of 2") || !strings.Contains(out, "key-check record sealed anew") {
		t.Errorf("keys rewrap printed %q, want 2 of 2 rewrapped and the key check sealed anew", out)
	}
	usage := listKeys(t, "--master-key-file", masterKey, "--data", dataDir)
	for _, k := range usage {
		if k.ID == oldID && (k.TenantKeys != 0 || k.KeyCheck) {
			t.Errorf("old key after rewrap = %+v, want nothing wrapped under it", k)
		}
	}

	// 4. A new data key for acme; its secrets sealed anew while in use.
	out := mustCLI(t, "keys", "rotate-tenant", "acme", "--data", dataDir, "--grace", "1s")
	var newData, oldData uint32
	var examined, resealed, skipped int
	if _, err := fmt.Sscanf(out, "tenant acme: new data key %d; removed [%d]; %d secrets, %d sealed anew, %d changed", &newData, &oldData, &examined, &resealed, &skipped); err != nil {
		t.Fatalf("keys rotate-tenant printed %q: %v", out, err)
	}
	// The 25 seeded secrets were sealed anew; the hot ones too unless
	// their writers got there first.
	if examined < 25 || resealed < 25 || newData == oldData {
		t.Errorf("keys rotate-tenant: %d secrets, %d sealed anew; want at least the 25 seeded ones", examined, resealed)
	}

	// 5. Now the old master key can go.
	mustCLI(t, "keys", "remove", "--master-key-file", masterKey, "--key-id", fmt.Sprint(oldID), "--data", dataDir)
	final := listKeys(t, "--master-key-file", masterKey, "--data", dataDir)
	if len(final) != 1 || final.has(oldID) || fmt.Sprint(final.primary()) != newID {
		t.Errorf("keys after remove = %+v, want only %s", final, newID)
	}

	time.Sleep(200 * time.Millisecond)
	l.finish(t)

	// A restart with the rotated file serves every value, and the old
	// keyset alone no longer opens the store.
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}
	srv = startServer(t, dataDir, masterKey)
	for _, s := range static {
		if status, _, body := do(t, "GET", srv.base+s.path, s.key, ""); status != 200 || body != s.value {
			t.Errorf("GET %s after restart = %d %q, want 200 %q", s.path, status, body, s.value)
		}
	}
	for path, want := range l.last {
		key := acme
		if strings.Contains(path, "globex") {
			key = globex
		}
		if status, _, body := do(t, "GET", srv.base+path, key, ""); status != 200 || body != want {
			t.Errorf("GET %s after restart = %d %q, want the last acknowledged %q", path, status, body, want)
		}
	}
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}
	oldFile := filepath.Join(t.TempDir(), "old.key")
	if err := os.WriteFile(oldFile, oldKeyset, 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err = cli(t, "serve", "--listen", freeAddr(t), "--data", dataDir, "--master-key-file", oldFile)
	if err == nil || exitCode(err) != exitConfig {
		t.Errorf("serve with the removed old keyset = %v, want a refusal (exit %d)", err, exitConfig)
	}
}

// TestKeys_ReloadOnSIGHUP: a server re-reads its master key file on SIGHUP.
func TestKeys_ReloadOnSIGHUP(t *testing.T) {
	// Catch SIGHUP in the test too, so that a server that did not register
	// for it fails this test instead of killing the test binary.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	dataDir := filepath.Join(t.TempDir(), "data")
	masterKey := newMasterKey(t)
	startServer(t, dataDir, masterKey)
	newID := strings.TrimSpace(mustCLI(t, "keys", "rotate", "--master-key-file", masterKey))
	if got := listKeys(t, "--data", dataDir); fmt.Sprint(got.primary()) == newID {
		t.Fatalf("the server has the new key before any reload")
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for fmt.Sprint(listKeys(t, "--data", dataDir).primary()) != newID {
		if time.Now().After(deadline) {
			t.Fatalf("the server did not reload its master key file within 5s of SIGHUP")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestKeys_WithoutServer: on a stopped embedded store the commands open it
// themselves, with the master key file.
func TestKeys_WithoutServer(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	masterKey := newMasterKey(t)
	srv := startServer(t, dataDir, masterKey)
	key := createKey(t, dataDir, "acme", "Secret.Read", "Secret.Write")
	static := seed(t, srv.base, map[string]string{"acme": key}, 5)
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}
	oldID := listKeys(t, "--master-key-file", masterKey).primary()
	mustCLI(t, "keys", "rotate", "--master-key-file", masterKey, "--data", dataDir)
	if _, _, err := cli(t, "keys", "rewrap", "--data", dataDir); err == nil || exitCode(err) != exitConfig {
		t.Errorf("keys rewrap without a server or a master key = %v, want a configuration error", err)
	}
	mustCLI(t, "keys", "rewrap", "--data", dataDir, "--master-key-file", masterKey)
	mustCLI(t, "keys", "rotate-tenant", "acme", "--data", dataDir, "--master-key-file", masterKey, "--grace", "0s")
	mustCLI(t, "keys", "remove", "--master-key-file", masterKey, "--key-id", fmt.Sprint(oldID), "--data", dataDir)
	srv = startServer(t, dataDir, masterKey)
	for _, s := range static {
		if status, _, body := do(t, "GET", srv.base+s.path, s.key, ""); status != 200 || body != s.value {
			t.Errorf("GET %s = %d %q, want 200 %q", s.path, status, body, s.value)
		}
	}
}

func TestKeys_Refusals(t *testing.T) {
	masterKey := newMasterKey(t)
	id := listKeys(t, "--master-key-file", masterKey).primary()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"RemoveWithoutStore", []string{"keys", "remove", "--master-key-file", masterKey, "--key-id", "1"}, "where the store is"},
		{"RemovePrimary", []string{"keys", "remove", "--master-key-file", masterKey, "--key-id", fmt.Sprint(id), "--data", t.TempDir()}, "primary"},
		{"RemoveUnknown", []string{"keys", "remove", "--master-key-file", masterKey, "--key-id", "7", "--data", t.TempDir()}, "has no key 7"},
		{"RemoveBadID", []string{"keys", "remove", "--master-key-file", masterKey, "--key-id", "x", "--data", t.TempDir()}, "not a key id"},
		{"RotateWithoutFile", []string{"keys", "rotate"}, "--master-key-file is required"},
		{"ReloadWithoutServer", []string{"keys", "reload", "--data", t.TempDir()}, "no server"},
		{"RotateTenantWithoutTenant", []string{"keys", "rotate-tenant", "--data", t.TempDir()}, "one tenant id"},
		{"UnknownCommand", []string{"keys", "spin"}, "unknown command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := cli(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s = %v, want an error saying %q", strings.Join(tc.args, " "), err, tc.want)
			}
		})
	}
	t.Run("ListNeverPrintsKeyMaterial", func(t *testing.T) {
		keyset, _ := os.ReadFile(masterKey)
		var parsed struct {
			Key []struct {
				KeyData struct {
					Value string `json:"value"`
				} `json:"keyData"`
			} `json:"key"`
		}
		if err := json.Unmarshal(keyset, &parsed); err != nil || len(parsed.Key) == 0 {
			t.Fatalf("cannot read the key file's material: %v", err)
		}
		for _, args := range [][]string{{"keys", "list", "--master-key-file", masterKey}, {"keys", "list", "--json", "--master-key-file", masterKey}} {
			stdout, stderr, err := cli(t, args...)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(stdout+stderr, parsed.Key[0].KeyData.Value) {
				t.Errorf("%s printed key material", strings.Join(args, " "))
			}
		}
	})
}

// TestKeys_RotationUnderLoadPostgres rotates with two nodes on one
// PostgreSQL database while clients read and write on both.
func TestKeys_RotationUnderLoadPostgres(t *testing.T) {
	url := pgtest.Start(t)
	masterKey := newMasterKey(t)
	a, aDir := startPostgresNode(t, url, masterKey, "--apikey-reload-interval", "1s")
	b, bDir := startPostgresNode(t, url, masterKey, "--apikey-reload-interval", "1s")
	acme := createKey(t, aDir, "acme", "Secret.Read", "Secret.Write")
	globex := createKey(t, aDir, "globex", "Secret.Read", "Secret.Write")
	waitStatus(t, b.base+"/api/acme/secrets", acme, 200, 5*time.Second)
	waitStatus(t, b.base+"/api/globex/secrets", globex, 200, 5*time.Second)
	static := seed(t, a.base, map[string]string{"acme": acme, "globex": globex}, 20)
	writers := []seeded{
		{path: "/api/acme/secrets/hot-1", key: acme},
		{path: "/api/acme/secrets/hot-2", key: acme},
		{path: "/api/globex/secrets/hot-1", key: globex},
	}
	store := []string{"--store", "postgres", "--postgres-url", url}
	oldID := listKeys(t, "--master-key-file", masterKey).primary()

	l := startLoad(t, []string{a.base, b.base}, static, writers)
	time.Sleep(200 * time.Millisecond)

	// Every node reloads the rotated file before anything is wrapped
	// under the new key.
	mustCLI(t, "keys", "rotate", "--master-key-file", masterKey, "--data", aDir)
	mustCLI(t, "keys", "reload", "--data", bDir)

	_, _, err := cli(t, append([]string{"keys", "remove", "--master-key-file", masterKey, "--key-id", fmt.Sprint(oldID)}, store...)...)
	if err == nil || !strings.Contains(err.Error(), "rewrap") {
		t.Fatalf("keys remove before rewrap = %v, want a refusal saying rewrap", err)
	}
	// Rewrap straight on the database, rotate acme's data key through
	// node A: node B notices both without a restart.
	if out := mustCLI(t, append([]string{"keys", "rewrap", "--master-key-file", masterKey}, store...)...); !strings.Contains(out, "rewrapped 2 of 2") {
		t.Errorf("keys rewrap printed %q, want 2 of 2", out)
	}
	mustCLI(t, "keys", "rotate-tenant", "acme", "--data", aDir, "--grace", "3s")
	mustCLI(t, append([]string{"keys", "rotate-tenant", "globex", "--master-key-file", masterKey, "--grace", "3s"}, store...)...)
	mustCLI(t, append([]string{"keys", "remove", "--master-key-file", masterKey, "--key-id", fmt.Sprint(oldID)}, store...)...)
	mustCLI(t, "keys", "reload", "--data", aDir)
	mustCLI(t, "keys", "reload", "--data", bDir)
	if got := listKeys(t, "--data", bDir); len(got) != 1 || got.has(oldID) {
		t.Errorf("node B's keys after removal = %+v, want only the new key", got)
	}

	time.Sleep(500 * time.Millisecond)
	l.finish(t)

	// A third node started with the rotated file alone reads everything.
	c, _ := startPostgresNode(t, url, masterKey)
	for _, s := range static {
		if status, _, body := do(t, "GET", c.base+s.path, s.key, ""); status != 200 || body != s.value {
			t.Errorf("GET %s on a fresh node = %d %q, want 200 %q", s.path, status, body, s.value)
		}
	}
}

// The README's first step on a fresh machine, `keys init --out
// /etc/neostore/master.key`, failed when /etc/neostore did not exist.
func TestKeysInit_CreatesAMissingDirectory(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "etc", "neostore", "master.key")
	_, stderr, err := cli(t, "keys", "init", "--out", out)
	if err != nil {
		t.Fatalf("keys init --out %s: %v\n%s", out, err, stderr)
	}
	for path, want := range map[string]os.FileMode{
		filepath.Join(root, "etc"):             0o700,
		filepath.Join(root, "etc", "neostore"): 0o700,
		out:                                    0o600,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s has mode %#o, want %#o", path, got, want)
		}
	}
	if !strings.Contains(stderr, "created directory "+filepath.Dir(out)) {
		t.Errorf("keys init did not say it created the directory: %q", stderr)
	}
	if _, err := envelope.ReadMasterFile(out); err != nil {
		t.Errorf("the new key file does not read back: %v", err)
	}

	// An existing directory keeps its mode.
	shared := filepath.Join(root, "shared")
	os.Mkdir(shared, 0o755)
	os.Chmod(shared, 0o755)
	if _, stderr, err := cli(t, "keys", "init", "--out", filepath.Join(shared, "master.key")); err != nil {
		t.Fatalf("keys init into an existing directory: %v\n%s", err, stderr)
	}
	if fi, _ := os.Stat(shared); fi.Mode().Perm() != 0o755 {
		t.Errorf("keys init changed an existing directory's mode to %#o", fi.Mode().Perm())
	}
}
