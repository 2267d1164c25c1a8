package main

import (
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// dialFrom opens a TCP connection to addr from the loopback address from.
func dialFrom(from, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	return d.Dial("tcp", addr)
}

// One client that holds every connection it may have cannot keep another
// client's request or the admin socket waiting: its excess connections
// are reset at once, and the others are served within a second.
func TestServe_ConnectionLimitPerClient(t *testing.T) {
	const perClient = 20
	dataDir := filepath.Join(t.TempDir(), "data")
	srv := startServer(t, dataDir, newMasterKey(t), "--max-connections", "40", "--max-connections-per-client", "20")
	addr := strings.TrimPrefix(srv.base, "http://")
	key := createKey(t, dataDir, "acme", "Secret.Read", "Secret.Write")
	victim := createKey(t, dataDir, "acme", "Secret.Read")
	if status, _, body := do(t, "PUT", srv.base+"/api/acme/secrets/db", key, `{"value":"v"}`); status != 204 {
		t.Fatalf("PUT = %d %s", status, body)
	}

	// The attacker on 127.0.0.2 opens connections and sends nothing, as a
	// slow client would: none of them is idle, so none can be evicted.
	for i := range perClient {
		c, err := dialFrom("127.0.0.2", addr)
		if err != nil {
			t.Fatalf("attacker connection %d: %v", i, err)
		}
		defer c.Close()
	}
	start := time.Now()
	c, err := dialFrom("127.0.0.2", addr)
	if err == nil {
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
	}
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) {
		t.Fatalf("attacker connection %d: %v, want it reset", perClient+1, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the excess connection was reset after %v, want within a second", d)
	}

	// Another client, on a fresh connection from 127.0.0.1.
	client := &http.Client{Transport: &http.Transport{
		DialContext:       (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}}).DialContext,
		DisableKeepAlives: true,
	}, Timeout: 5 * time.Second}
	get := func(apiKey string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.base+"/api/acme/secrets/db", nil)
		req.Header.Set("X-API-KEY", apiKey)
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET from another client: %v", err)
		}
		resp.Body.Close()
		if d := time.Since(start); d > time.Second {
			t.Errorf("GET from another client took %v, want under a second", d)
		}
		return resp.StatusCode
	}
	if status := get(victim); status != 200 {
		t.Fatalf("GET from another client = %d, want 200", status)
	}

	// The admin socket answers: the key is revoked within a second.
	stdout, _, err := cli(t, "apikey", "list", "--data", dataDir, "--tenant", "acme", "--json")
	if err != nil {
		t.Fatal(err)
	}
	id := readOnlyKeyID(t, stdout)
	start = time.Now()
	if _, stderr, err := cli(t, "apikey", "revoke", "--data", dataDir, id); err != nil {
		t.Fatalf("apikey revoke: %v\n%s", err, stderr)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("apikey revoke took %v, want under a second", d)
	}
	if status := get(victim); status != 401 {
		t.Errorf("GET with the revoked key = %d, want 401", status)
	}
	if !strings.Contains(srv.stderr.String(), "maxConnectionsPerClient=20") {
		t.Errorf("the log does not show the connection limits:\n%s", srv.stderr.String())
	}
}

// A PUT of a new key beyond --max-keys-per-tenant gets a 409 problem that
// says why, and stores nothing; replacing a key of a full tenant works.
func TestServe_MaxKeysPerTenant(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	srv := startServer(t, dataDir, newMasterKey(t), "--max-keys-per-tenant", "2")
	key := createKey(t, dataDir, "acme", "Secret.Read", "Secret.Write")
	api := srv.base + "/api/acme/secrets"
	for _, k := range []string{"a", "b"} {
		if status, _, body := do(t, "PUT", api+"/"+k, key, `{"value":"v"}`); status != 204 {
			t.Fatalf("PUT %s = %d %s, want 204", k, status, body)
		}
	}
	status, hdr, body := do(t, "PUT", api+"/c", key, `{"value":"v"}`)
	if status != 409 || hdr.Get("Content-Type") != "application/problem+json; charset=utf-8" ||
		!strings.Contains(body, `"title":"Conflict"`) || !strings.Contains(body, "delete one before adding another") {
		t.Errorf("PUT over the quota = %d %s %s, want a 409 problem with a detail", status, hdr.Get("Content-Type"), body)
	}
	if status, _, body := do(t, "PUT", api+"/a", key, `{"value":"new"}`); status != 204 {
		t.Errorf("PUT replacing a key of a full tenant = %d %s, want 204", status, body)
	}
	if status, _, body := do(t, "GET", api, key, ""); status != 200 || body != `["a","b"]` {
		t.Errorf("list = %d %s, want [\"a\",\"b\"]", status, body)
	}
}
