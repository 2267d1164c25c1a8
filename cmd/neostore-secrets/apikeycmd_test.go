package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

func TestAPIKeyList_EscapesNames(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	srv := startServer(t, dataDir, newMasterKey(t))
	defer srv.stop()
	const name = "\x1b[31mred\nak_forged\tFAKE ROW"
	if _, stderr, err := cli(t, "apikey", "create", "--data", dataDir, "--tenant", "acme", "--scope", "Secret.Read", "--name", name); err != nil {
		t.Fatalf("apikey create: %v\n%s", err, stderr)
	}
	if _, stderr, err := cli(t, "apikey", "create", "--data", dataDir, "--tenant", "acme", "--scope", "Secret.Read", "--name", "plain name"); err != nil {
		t.Fatalf("apikey create: %v\n%s", err, stderr)
	}
	out, _, err := cli(t, "apikey", "list", "--data", dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(out, "\x1b\t") || strings.Count(out, "\n") != 3 {
		t.Errorf("apikey list printed raw control characters or extra rows:\n%q", out)
	}
	if want := `"\x1b[31mred\nak_forged\tFAKE ROW"`; !strings.Contains(out, want) {
		t.Errorf("apikey list lacks the escaped name %s:\n%s", want, out)
	}
	if !strings.Contains(out, "  plain name  ") {
		t.Errorf("apikey list quoted a printable name:\n%s", out)
	}
	js, _, err := cli(t, "apikey", "list", "--data", dataDir, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var keys []struct{ Name string }
	if err := json.Unmarshal([]byte(js), &keys); err != nil || keys[0].Name != name {
		t.Errorf("apikey list --json = %v %q, want the name as it was given", err, js)
	}
}

// TestAPIKeyRevoke_KeepsLastUse: a key used and revoked within the flush
// interval (a minute) still shows its use, on the node and in the store.
func TestAPIKeyRevoke_KeepsLastUse(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	masterKey := newMasterKey(t)
	srv := startServer(t, dataDir, masterKey)
	key := createKey(t, dataDir, "acme", "Secret.Read")
	if status, _, _ := do(t, "GET", srv.base+"/api/acme/secrets", key, ""); status != 200 {
		t.Fatalf("GET = %d", status)
	}
	list := func() (string, string) {
		t.Helper()
		out, _, err := cli(t, "apikey", "list", "--data", dataDir, "--json")
		if err != nil {
			t.Fatal(err)
		}
		var keys []struct {
			ID       string
			LastUsed *string `json:"lastUsed"`
		}
		if err := json.Unmarshal([]byte(out), &keys); err != nil || len(keys) != 1 {
			t.Fatalf("apikey list --json = %v %s", err, out)
		}
		if keys[0].LastUsed == nil {
			return keys[0].ID, ""
		}
		return keys[0].ID, *keys[0].LastUsed
	}
	id, _ := list()
	if _, stderr, err := cli(t, "apikey", "revoke", "--data", dataDir, id); err != nil {
		t.Fatalf("apikey revoke: %v\n%s", err, stderr)
	}
	if _, used := list(); used == "" {
		t.Errorf("after revoke through the server, the key shows never used")
	}
	srv.stop() // the CLI now reads the store itself
	if _, used := list(); used == "" {
		t.Errorf("after revoke and a stop, the store shows the key never used")
	}
}
