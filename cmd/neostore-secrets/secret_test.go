package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/neostore/neostore-secrets/tlsconfig/tlstest"
)

// secretEnv is a running server with API keys for the secret command.
type secretEnv struct {
	base, key, readOnly, other string
}

func startSecretServer(t *testing.T, extra ...string) secretEnv {
	t.Helper()
	dataDir := filepath.Join(t.TempDir(), "data")
	srv := startServer(t, dataDir, newMasterKey(t), extra...)
	return secretEnv{
		base:     srv.base,
		key:      createKey(t, dataDir, "acme", "Secret.Read", "Secret.Write"),
		readOnly: createKey(t, dataDir, "acme", "Secret.Read"),
		other:    createKey(t, dataDir, "globex", "Secret.Read", "Secret.Write"),
	}
}

// environ is the environment a user of tenant acme sets.
func (s secretEnv) environ(apiKey string) map[string]string {
	return map[string]string{"NEOSTORE_ADDR": s.base, "NEOSTORE_TENANT": "acme", "NEOSTORE_API_KEY": apiKey}
}

// secretCLI runs `neostore-secrets secret ...` in-process with vars and stdin.
func secretCLI(t *testing.T, vars map[string]string, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := run(ctx, append([]string{"neostore-secrets", "secret"}, args...), env(vars), strings.NewReader(stdin), &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

// wantExit fails unless err has exit code want and its message (what main
// prints on stderr) contains every one of parts.
func wantExit(t *testing.T, what string, err error, want int, parts ...string) {
	t.Helper()
	got := 0
	if err != nil {
		got = exitCode(err)
	}
	if got != want {
		t.Errorf("%s: exit %d (%v), want %d", what, got, err, want)
		return
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %q does not name %q", what, err, p)
		}
	}
}

func TestSecretCommand_PutGetListRemove(t *testing.T) {
	s := startSecretServer(t)
	vars := s.environ(s.key)
	const value = "line one\nline two ünïcode \t \n" // a trailing newline is part of the value
	if _, _, err := secretCLI(t, vars, value, "put", "db-password"); err != nil {
		t.Fatalf("put: %v", err)
	}
	if _, _, err := secretCLI(t, vars, "v2", "put", "api-token", "--expires-in", "720h"); err != nil {
		t.Fatalf("put --expires-in: %v", err)
	}
	stdout, stderr, err := secretCLI(t, vars, "", "get", "db-password")
	if err != nil || stdout != value || stderr != "" {
		t.Errorf("get = %q, stderr %q, %v; want exactly %q", stdout, stderr, err, value)
	}
	if stdout, _, err := secretCLI(t, vars, "", "ls"); err != nil || stdout != "api-token\ndb-password\n" {
		t.Errorf("ls = %q, %v; want one key per line", stdout, err)
	}
	stdout, _, err = secretCLI(t, vars, "", "ls", "--json")
	var keys []string
	if err != nil || json.Unmarshal([]byte(stdout), &keys) != nil || strings.Join(keys, ",") != "api-token,db-password" {
		t.Errorf("ls --json = %q, %v; want a JSON array of both keys", stdout, err)
	}
	if _, _, err := secretCLI(t, vars, "", "rm", "db-password"); err != nil {
		t.Errorf("rm: %v", err)
	}
	_, _, err = secretCLI(t, vars, "", "get", "db-password")
	wantExit(t, "get after rm", err, exitNotFound, "404", "Not Found", "traceId 00-")
	if _, _, err := secretCLI(t, vars, "", "rm", "db-password"); err != nil {
		t.Errorf("rm of an absent key: %v, want done", err)
	}
	if stdout, _, err := secretCLI(t, s.environ(s.other), "", "ls", "--json", "--tenant", "globex"); err != nil || stdout != "[]\n" {
		t.Errorf("ls --json of an empty tenant = %q, %v; want []", stdout, err)
	}

	// --from-file, and the flags that take the place of the variables.
	file := filepath.Join(t.TempDir(), "value")
	if err := os.WriteFile(file, []byte("from a file"), 0o600); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte(s.key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	flagsOnly := map[string]string{}
	if _, _, err := secretCLI(t, flagsOnly, "", "put", "from-file", "--from-file", file, "--addr", s.base, "--tenant", "acme", "--api-key-file", keyFile); err != nil {
		t.Fatalf("put --from-file --api-key-file: %v", err)
	}
	if stdout, _, err := secretCLI(t, flagsOnly, "", "get", "--addr", s.base, "--tenant", "acme", "--api-key-file", keyFile, "from-file"); err != nil || stdout != "from a file" {
		t.Errorf("get = %q, %v", stdout, err)
	}
}

func TestSecretCommand_ExitCodes(t *testing.T) {
	s := startSecretServer(t)
	vars := s.environ(s.key)
	const canary = "CANARY-value-5c1e"
	if _, _, err := secretCLI(t, vars, canary, "put", "db-password"); err != nil {
		t.Fatal(err)
	}
	with := func(m map[string]string, kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	tests := []struct {
		name  string
		vars  map[string]string
		stdin string
		args  []string
		code  int
		parts []string
	}{
		{"not found", vars, "", []string{"get", "absent"}, exitNotFound, []string{"404 Not Found", "traceId 00-"}},
		{"another tenant's key", vars, "", []string{"get", "db-password", "--tenant", "globex"}, exitRefused, []string{"403 Forbidden", "traceId 00-"}},
		{"another tenant's credential", s.environ(s.other), "", []string{"get", "db-password"}, exitRefused, []string{"403 Forbidden"}},
		{"unknown API key", s.environ("nsk_" + strings.Repeat("A", 48)), "", []string{"ls"}, exitRefused, []string{"401 Unauthorized", "traceId 00-"}},
		{"read-only key writes", s.environ(s.readOnly), "x", []string{"put", "db-password"}, exitRefused, []string{"403 Forbidden"}},
		{"bad key name", vars, "x", []string{"put", "bad_key"}, 1, []string{"400 One or more validation errors occurred.", "traceId 00-", "key: The key must be"}},
		{"bad window", vars, "x", []string{"put", "k", "--not-before", "2099-01-02T00:00:00Z", "--expires-on", "2099-01-01T00:00:00Z"}, 1, []string{"expiresOn must be after notBefore"}},
		{"value as an argument", vars, "", []string{"put", "db-password", canary}, exitUsage, []string{"never taken from the command line"}},
		{"rotate value as an argument", vars, "", []string{"rotate", "db-password", "db-password-2", canary}, exitUsage, []string{"never taken from the command line"}},
		{"no key", vars, "", []string{"get"}, exitUsage, []string{"want KEY"}},
		{"no tenant", with(vars, "NEOSTORE_TENANT", ""), "", []string{"ls"}, exitUsage, []string{"--tenant"}},
		{"no credential", with(vars, "NEOSTORE_API_KEY", ""), "", []string{"ls"}, exitUsage, []string{"NEOSTORE_API_KEY"}},
		{"two credentials", with(vars, "NEOSTORE_TOKEN", "t"), "", []string{"ls"}, exitUsage, []string{"NEOSTORE_API_KEY, NEOSTORE_TOKEN"}},
		{"no api-key flag", vars, "", []string{"ls", "--api-key", s.key}, exitUsage, []string{"api-key"}},
		{"expires twice", vars, "x", []string{"put", "k", "--expires-in", "1h", "--expires-on", "2099-01-01T00:00:00Z"}, exitUsage, []string{"not both"}},
		{"bad time", vars, "x", []string{"put", "k", "--expires-on", "tomorrow"}, exitUsage, []string{"RFC 3339"}},
		{"bad addr", with(vars, "NEOSTORE_ADDR", "127.0.0.1:8200"), "", []string{"ls"}, exitUsage, []string{"--addr"}},
		{"unknown command", vars, "", []string{"cat", "k"}, exitUsage, []string{"unknown command"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, err := secretCLI(t, tt.vars, tt.stdin, tt.args...)
			wantExit(t, tt.name, err, tt.code, tt.parts...)
			if stdout != "" && tt.args[0] != "help" {
				t.Errorf("stdout = %q, want nothing on failure", stdout)
			}
			for _, leak := range []string{canary, s.key, s.other, s.readOnly} {
				if err != nil && strings.Contains(err.Error(), leak) || strings.Contains(stderr, leak) {
					t.Errorf("the error or stderr contains a value or credential")
				}
			}
		})
	}
	// Nothing was stored by the refused or malformed puts.
	if stdout, _, err := secretCLI(t, vars, "", "ls"); err != nil || stdout != "db-password\n" {
		t.Errorf("ls = %q, %v; want only db-password", stdout, err)
	}
	if stdout, _, _ := secretCLI(t, vars, "", "get", "db-password"); stdout != canary {
		t.Errorf("db-password = %q, want it unchanged", stdout)
	}
}

func TestSecretCommand_Window(t *testing.T) {
	s := startSecretServer(t)
	vars := s.environ(s.key)
	if _, _, err := secretCLI(t, vars, "later", "put", "later", "--not-before", "2099-01-01T00:00:00Z"); err != nil {
		t.Fatal(err)
	}
	_, _, err := secretCLI(t, vars, "", "get", "later")
	wantExit(t, "get before notBefore", err, exitNotFound, "404")
	if _, _, err := secretCLI(t, vars, "until", "put", "until", "--expires-on", "2099-01-01T00:00:00Z"); err != nil {
		t.Fatal(err)
	}
	if stdout, _, err := secretCLI(t, vars, "", "get", "until"); err != nil || stdout != "until" {
		t.Errorf("get before expiresOn = %q, %v", stdout, err)
	}
}

func TestSecretCommand_Rotate(t *testing.T) {
	s := startSecretServer(t)
	vars := s.environ(s.key)
	if _, _, err := secretCLI(t, vars, "v1", "put", "db-password-1"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, stderr, err := secretCLI(t, vars, "v2", "rotate", "db-password-1", "db-password-2", "--grace", "2s")
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	if !strings.Contains(stderr, "db-password-1 is served until") {
		t.Errorf("rotate said %q, want when the old key stops", stderr)
	}
	if stdout, _, err := secretCLI(t, vars, "", "get", "db-password-2"); err != nil || stdout != "v2" {
		t.Errorf("get NEW = %q, %v; want v2", stdout, err)
	}
	stdout, _, err := secretCLI(t, vars, "", "get", "db-password-1")
	if time.Since(start) < 2*time.Second && (err != nil || stdout != "v1") {
		t.Errorf("get OLD within the grace = %q, %v; want v1", stdout, err)
	}
	// After the grace, OLD is no longer served (but still listed).
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, _, err := secretCLI(t, vars, "", "get", "db-password-1")
		if err != nil {
			wantExit(t, "get OLD after the grace", err, exitNotFound, "404")
			if time.Since(start) < 2*time.Second {
				t.Errorf("OLD stopped after %v, before the 2s grace", time.Since(start))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("OLD still served 20s after a 2s grace")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if stdout, _, _ := secretCLI(t, vars, "", "ls"); stdout != "db-password-1\ndb-password-2\n" {
		t.Errorf("ls = %q, want both keys", stdout)
	}

	// A missing OLD stops the rotation before NEW is written.
	_, _, err = secretCLI(t, vars, "v3", "rotate", "absent", "db-password-3")
	wantExit(t, "rotate of an absent key", err, exitNotFound, "reading absent", "404")
	_, _, err = secretCLI(t, vars, "", "get", "db-password-3")
	wantExit(t, "NEW after a failed rotate", err, exitNotFound)
	_, _, err = secretCLI(t, vars, "v3", "rotate", "db-password-2", "db-password-2")
	wantExit(t, "rotate onto itself", err, exitUsage, "same key")
}

// TestSecretCommand_HTTPSAndToken: --cacert trusts the server's CA, and
// NEOSTORE_TOKEN sends a bearer token.
func TestSecretCommand_HTTPSAndToken(t *testing.T) {
	ca := tlstest.NewCA(t, "neostore test CA")
	is := newIssuer(t)
	is.addKey(t, "rsa-1", jwa.RS256())
	dataDir := filepath.Join(t.TempDir(), "data")
	srv := startHTTPSServer(t, httpsClient(ca), dataDir, newMasterKey(t),
		append(newCertFiles(t, ca, 1).flags(), "--jwt-issuer", testIssuer, "--jwks-url", is.srv.URL)...)
	token := is.sign(t, "rsa-1", jwa.RS256(), claims([]string{"acme"}, "Secret.Read Secret.Write", nil))
	vars := map[string]string{"NEOSTORE_ADDR": srv.base, "NEOSTORE_TENANT": "acme", "NEOSTORE_TOKEN": token, "NEOSTORE_CACERT": ca.CertFile}
	if _, _, err := secretCLI(t, vars, "over tls", "put", "db-password"); err != nil {
		t.Fatalf("put over HTTPS with a token: %v", err)
	}
	if stdout, _, err := secretCLI(t, vars, "", "get", "db-password"); err != nil || stdout != "over tls" {
		t.Errorf("get = %q, %v", stdout, err)
	}
	delete(vars, "NEOSTORE_CACERT")
	_, _, err := secretCLI(t, vars, "", "get", "db-password")
	wantExit(t, "get without --cacert", err, 1, "certificate")
	if err != nil && strings.Contains(err.Error(), token) {
		t.Error("the error contains the token")
	}
}
