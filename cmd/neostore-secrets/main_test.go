package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"
)

// syncBuffer is a bytes.Buffer safe for the server goroutine to write while
// the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// env turns a map into a getenv function.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// server is the real program running `serve` in-process.
type server struct {
	base   string
	stderr *syncBuffer
	stop   func() error
}

// startServer runs `neostore-secrets serve` through run() and waits until it
// answers over plain HTTP. stop cancels it and returns run's error.
func startServer(t *testing.T, dataDir, masterKeyFile string, extra ...string) *server {
	t.Helper()
	return launchServer(t, http.DefaultClient, "http", dataDir, masterKeyFile, extra...)
}

// launchServer runs serve in-process and waits until client gets
// /openapi.json from it at scheme://addr.
func launchServer(t *testing.T, client *http.Client, scheme, dataDir, masterKeyFile string, extra ...string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stderr := &syncBuffer{}
	args := append([]string{"neostore-secrets", "serve", "--listen", "127.0.0.1:0", "--data", dataDir, "--master-key-file", masterKeyFile, "--metrics-listen", "127.0.0.1:0"}, extra...)
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, env(nil), strings.NewReader(""), io.Discard, stderr) }()
	s := &server{stderr: stderr}
	var once sync.Once
	var stopErr error
	s.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(30 * time.Second):
				stopErr = errors.New("server did not stop within 30s")
			}
		})
		return stopErr
	}
	t.Cleanup(func() { s.stop() })
	s.base = scheme + "://" + waitServing(t, done, stderr)
	waitReady(t, client, s.base, done, stderr)
	return s
}

// servingLine is serve's start line, logged once its API listener is bound.
var servingLine = regexp.MustCompile(`msg=serving addr=(\S+)`)

// waitServing waits for serve's start line and returns the address in it.
// Servers in tests listen on port 0 and are found this way: a port picked
// free beforehand can be taken by another listener before serve binds it
// (the server's own metrics listener on port 0 among them).
func waitServing(t *testing.T, done <-chan error, stderr *syncBuffer) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if m := servingLine.FindStringSubmatch(stderr.String()); m != nil {
			return m[1]
		}
		select {
		case err := <-done:
			t.Fatalf("server exited before it was serving: %v\n%s", err, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("server not serving after 20s\n%s", stderr.String())
	return ""
}

// waitReady polls base/openapi.json with client until it answers 200, and
// fails the test when the server exits first or 20 s pass.
func waitReady(t *testing.T, client *http.Client, base string, done <-chan error, stderr *syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("server exited before it was ready: %v\n%s", err, stderr.String())
		default:
		}
		resp, err := client.Get(base + "/openapi.json")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("server not ready after 20s\n%s", stderr.String())
}

// cli runs one command of the real program and returns its stdout, stderr and error.
func cli(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), append([]string{"neostore-secrets"}, args...), env(nil), strings.NewReader(""), &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

// newMasterKey writes a master keyset file with `keys init`.
func newMasterKey(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "master.key")
	if _, stderr, err := cli(t, "keys", "init", "--out", path); err != nil {
		t.Fatalf("keys init: %v\n%s", err, stderr)
	}
	return path
}

// createKey issues an API key with `apikey create` and returns it.
func createKey(t *testing.T, dataDir, tenant string, scopes ...string) string {
	t.Helper()
	args := []string{"apikey", "create", "--data", dataDir, "--tenant", tenant}
	for _, s := range scopes {
		args = append(args, "--scope", s)
	}
	stdout, stderr, err := cli(t, args...)
	if err != nil {
		t.Fatalf("apikey create: %v\n%s", err, stderr)
	}
	lines := strings.Split(strings.TrimRight(stdout, "\n"), "\n")
	if len(lines) != 1 {
		t.Fatalf("apikey create printed %d lines on stdout, want only the key", len(lines))
	}
	return lines[0]
}

// do sends one API request and returns status, headers and body.
func do(t *testing.T, method, url, apiKey, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if apiKey != "" {
		req.Header.Set("X-API-KEY", apiKey)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func TestServe_EndToEnd(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	masterKey := newMasterKey(t)
	srv := startServer(t, dataDir, masterKey)

	// apikey create talks to the running server over its admin socket.
	key := createKey(t, dataDir, "acme", "Secret.Read", "Secret.Write")
	readOnly := createKey(t, dataDir, "acme", "Secret.Read")
	other := createKey(t, dataDir, "globex", "Secret.Read", "Secret.Write")
	api := srv.base + "/api/acme/secrets"

	if status, _, body := do(t, "PUT", api+"/Db-Password", key, `{"value":"hunter2"}`); status != 204 {
		t.Fatalf("PUT = %d %s, want 204", status, body)
	}
	if status, _, body := do(t, "PUT", api+"/db-password", key, `{"value":"lowercase","options":{"expiresOn":"2999-01-01T00:00:00+01:00"}}`); status != 204 {
		t.Fatalf("PUT = %d %s, want 204", status, body)
	}
	status, hdr, body := do(t, "GET", api+"/Db-Password", readOnly, "")
	if status != 200 || body != "hunter2" || hdr.Get("Cache-Control") != "no-store" {
		t.Errorf("GET = %d %q (Cache-Control %q), want 200 \"hunter2\" no-store", status, body, hdr.Get("Cache-Control"))
	}
	if status, _, body := do(t, "GET", api, readOnly, ""); status != 200 || body != `["Db-Password","db-password"]` {
		t.Errorf("list = %d %s, want both keys in ordinal order", status, body)
	}
	if status, _, _ := do(t, "PUT", api+"/x", readOnly, `{"value":"v"}`); status != 403 {
		t.Errorf("PUT with a read-only key = %d, want 403", status)
	}
	if status, _, _ := do(t, "GET", api+"/Db-Password", other, ""); status != 403 {
		t.Errorf("GET with another tenant's key = %d, want 403", status)
	}
	if status, _, _ := do(t, "DELETE", api+"/db-password", key, ""); status != 204 {
		t.Errorf("DELETE = %d, want 204", status)
	}
	if status, _, _ := do(t, "GET", api+"/db-password", key, ""); status != 404 {
		t.Errorf("GET after DELETE = %d, want 404", status)
	}

	// Revocation through the admin socket takes effect at once.
	stdout, _, err := cli(t, "apikey", "list", "--data", dataDir, "--tenant", "acme", "--json")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stdout, key) || strings.Contains(stdout, readOnly) {
		t.Fatalf("apikey list printed a key")
	}
	id := readOnlyKeyID(t, stdout)
	if _, stderr, err := cli(t, "apikey", "revoke", "--data", dataDir, id); err != nil {
		t.Fatalf("apikey revoke: %v\n%s", err, stderr)
	}
	if status, hdr, _ := do(t, "GET", api+"/Db-Password", readOnly, ""); status != 401 || hdr.Get("WWW-Authenticate") == "" {
		t.Errorf("GET with revoked key = %d (WWW-Authenticate %q), want 401 with a challenge", status, hdr.Get("WWW-Authenticate"))
	}

	// A restart keeps every secret and every key.
	if err := srv.stop(); err != nil {
		t.Fatalf("serve returned %v on SIGTERM-like stop", err)
	}
	srv = startServer(t, dataDir, masterKey)
	if status, _, body := do(t, "GET", srv.base+"/api/acme/secrets/Db-Password", key, ""); status != 200 || body != "hunter2" {
		t.Errorf("GET after restart = %d %q, want 200 \"hunter2\"", status, body)
	}
	if status, _, _ := do(t, "GET", srv.base+"/api/acme/secrets/Db-Password", readOnly, ""); status != 401 {
		t.Errorf("revoked key after restart = %d, want 401", status)
	}
}

// readOnlyKeyID returns the id of the key with only Secret.Read in
// `apikey list --json` output.
func readOnlyKeyID(t *testing.T, listJSON string) string {
	t.Helper()
	var keys []struct {
		ID     string   `json:"id"`
		Scopes []string `json:"scopes"`
	}
	if err := json.Unmarshal([]byte(listJSON), &keys); err != nil {
		t.Fatalf("apikey list --json: %v", err)
	}
	for _, k := range keys {
		if len(k.Scopes) == 1 && k.Scopes[0] == "Secret.Read" {
			return k.ID
		}
	}
	t.Fatalf("no read-only key in %s", listJSON)
	return ""
}

func TestServe_RefusesToStart(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	masterKey := newMasterKey(t)
	srv := startServer(t, dataDir, masterKey)
	key := createKey(t, dataDir, "acme", "Secret.Write")
	if status, _, _ := do(t, "PUT", srv.base+"/api/acme/secrets/k", key, `{"value":"v"}`); status != 204 {
		t.Fatalf("PUT = %d", status)
	}
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}

	unreadable := filepath.Join(t.TempDir(), "open.key")
	b, _ := os.ReadFile(masterKey)
	os.WriteFile(unreadable, b, 0o644)
	garbage := filepath.Join(t.TempDir(), "garbage.key")
	os.WriteFile(garbage, []byte("not a keyset"), 0o600)

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"WrongMasterKey", []string{"--master-key-file", newMasterKey(t)}, "not the one this data directory was written with"},
		{"NoMasterKey", nil, "no master key"},
		{"MissingFile", []string{"--master-key-file", filepath.Join(t.TempDir(), "absent.key")}, "master key"},
		{"GroupReadableFile", []string{"--master-key-file", unreadable}, "master key"},
		{"GarbageFile", []string{"--master-key-file", garbage}, "master key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"serve", "--listen", freeAddr(t), "--data", dataDir}, tc.args...)
			_, stderr, err := cli(t, args...)
			if err == nil {
				t.Fatalf("serve started")
			}
			if got := exitCode(err); got != exitConfig {
				t.Errorf("exit code = %d, want %d", got, exitConfig)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q (stderr %s)", err, tc.want, stderr)
			}
		})
	}
	t.Run("NonLoopbackWithoutInsecureHTTP", func(t *testing.T) {
		_, _, err := cli(t, "serve", "--listen", "0.0.0.0:0", "--data", dataDir, "--master-key-file", masterKey)
		if err == nil || exitCode(err) != exitUsage || !strings.Contains(err.Error(), "--insecure-http") {
			t.Errorf("serve on 0.0.0.0 = %v, want a usage error naming --insecure-http", err)
		}
	})
}

func TestServe_ValuesEncryptedAtRest(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	masterKey := newMasterKey(t)
	srv := startServer(t, dataDir, masterKey)
	acme := createKey(t, dataDir, "acme", "Secret.Read", "Secret.Write")
	globex := createKey(t, dataDir, "globex", "Secret.Read", "Secret.Write")
	const planted = "PLANTED-canary-value-7f3a9c1e"
	for _, put := range []struct{ key, tenant, name string }{
		{acme, "acme", "db-password"}, {acme, "acme", "other"}, {globex, "globex", "db-password"},
	} {
		if status, _, body := do(t, "PUT", srv.base+"/api/"+put.tenant+"/secrets/"+put.name, put.key, `{"value":"`+planted+`"}`); status != 204 {
			t.Fatalf("PUT = %d %s", status, body)
		}
	}
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}

	t.Run("PlantedValueNotInDatabaseFile", func(t *testing.T) {
		db, err := os.ReadFile(filepath.Join(dataDir, databaseFile))
		if err != nil {
			t.Fatal(err)
		}
		for _, needle := range []string{planted, "canary-value", acme, globex} {
			if bytes.Contains(db, []byte(needle)) {
				t.Errorf("the database file contains %q in clear", needle)
			}
		}
		if !bytes.Contains(db, []byte("db-password")) {
			t.Errorf("the database file does not contain the key name; is this the right file?")
		}
	})

	t.Run("MovedCiphertextDoesNotOpen", func(t *testing.T) {
		// An attacker with write access to the file copies acme's sealed
		// record over globex's and over another acme key.
		db, err := bbolt.Open(filepath.Join(dataDir, databaseFile), 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = db.Update(func(tx *bbolt.Tx) error {
			secrets := tx.Bucket([]byte("secrets"))
			rec := bytes.Clone(secrets.Bucket([]byte("acme")).Get([]byte("db-password")))
			if rec == nil {
				t.Fatal("no record at secrets/acme/db-password")
			}
			if err := secrets.Bucket([]byte("globex")).Put([]byte("db-password"), rec); err != nil {
				return err
			}
			return secrets.Bucket([]byte("acme")).Put([]byte("other"), rec)
		})
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
		srv := startServer(t, dataDir, masterKey)
		for _, tc := range []struct{ key, path string }{
			{globex, "/api/globex/secrets/db-password"},
			{acme, "/api/acme/secrets/other"},
		} {
			status, _, body := do(t, "GET", srv.base+tc.path, tc.key, "")
			if status != 500 || strings.Contains(body, planted) || strings.Contains(body, "decrypt") {
				t.Errorf("GET %s of a moved ciphertext = %d %s, want 500 without detail", tc.path, status, body)
			}
		}
		if status, _, body := do(t, "GET", srv.base+"/api/acme/secrets/db-password", acme, ""); status != 200 || body != planted {
			t.Errorf("GET of the untouched original = %d %q, want 200 and the value", status, body)
		}
		srv.stop()
		if logs := srv.stderr.String(); !strings.Contains(logs, "level=ERROR") || strings.Contains(logs, planted) {
			t.Errorf("the failed opens were not logged as errors, or the log holds the value:\n%s", logs)
		}
	})
}

func TestDev(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"neostore-secrets", "dev", "--listen", "127.0.0.1:0"}, env(nil), strings.NewReader(""), stdout, stderr)
	}()
	base := "http://" + waitServing(t, done, stderr)
	waitReady(t, http.DefaultClient, base, done, stderr)
	// serve runs dev's ready callback, which prints the banner, before it
	// accepts the first request: once the server answers, the banner is whole.
	var key string
	for _, line := range strings.Split(stdout.String(), "\n") {
		if l := strings.TrimSpace(line); strings.HasPrefix(l, "nsk_") {
			key = l
		}
	}
	if key == "" {
		t.Fatalf("dev printed no API key:\n%s", stdout.String())
	}
	if !strings.Contains(stdout.String(), "curl") {
		t.Errorf("dev printed no curl example")
	}
	if status, _, body := do(t, "PUT", base+"/api/demo/secrets/db-password", key, `{"value":"s3cr3t"}`); status != 204 {
		t.Fatalf("PUT = %d %s", status, body)
	}
	if status, _, body := do(t, "GET", base+"/api/demo/secrets/db-password", key, ""); status != 200 || body != "s3cr3t" {
		t.Errorf("GET = %d %q", status, body)
	}
	var dataDir string
	for _, f := range strings.Fields(stderr.String()) {
		if v, ok := strings.CutPrefix(f, "data="); ok {
			dataDir = v
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("dev returned %v", err)
	}
	if dataDir == "" {
		t.Fatalf("dev did not log its data directory")
	}
	if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dev left its temporary data directory behind: %v", err)
	}
}
