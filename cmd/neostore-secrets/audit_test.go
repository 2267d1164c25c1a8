package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"
)

// TestAudit_EndToEnd runs the real server with its default audit trail,
// plants canary values and credentials, and checks that the trail records
// every request, never holds a secret, verifies, and catches tampering.
func TestAudit_EndToEnd(t *testing.T) {
	is := newIssuer(t)
	is.addKey(t, "rsa-1", jwa.RS256())
	dataDir := filepath.Join(t.TempDir(), "data")
	masterKey := newMasterKey(t)
	srv := startServer(t, dataDir, masterKey, "--jwt-issuer", testIssuer, "--jwks-url", is.srv.URL, "--log-level", "debug")
	key := createKey(t, dataDir, "acme", "Secret.Read", "Secret.Write")
	token := is.sign(t, "rsa-1", jwa.RS256(), claims([]string{"acme"}, "Secret.Read Secret.Write", nil))
	const canary = "CANARY-secret-value-0f9e8d"
	wrongKey := "nsk_" + strings.Repeat("A", 48) // a credential the server refuses

	var bodies []string
	send := func(method, path, cred, body string, wantStatus int) {
		t.Helper()
		status, _, b := do(t, method, srv.base+path, cred, body)
		if status != wantStatus {
			t.Fatalf("%s %s = %d %s, want %d", method, path, status, b, wantStatus)
		}
		bodies = append(bodies, b)
	}
	send("PUT", "/api/acme/secrets/db-password", key, `{"value":"`+canary+`"}`, 204)
	send("GET", "/api/acme/secrets/db-password", key, "", 200)
	send("GET", "/api/acme/secrets", key, "", 200)
	send("PUT", "/api/acme/secrets/bad.key", key, `{"value":"`+canary+`"}`, 400)
	send("PUT", "/api/acme/secrets/x", key, `{"value":"`+canary+`","extra":"`+canary+`"}`, 400)
	send("GET", "/api/acme/secrets/db-password", wrongKey, "", 401)
	send("GET", "/api/globex/secrets/db-password", key, "", 403)
	send("GET", "/api/acme/secrets/absent", key, "", 404)
	send("DELETE", "/api/acme/secrets/db-password", key, "", 204)
	req := func(cred string) {
		status, _, b := doBearer(t, "GET", srv.base+"/api/acme/secrets", cred)
		if status != 200 && status != 401 {
			t.Fatalf("bearer GET = %d", status)
		}
		bodies = append(bodies, b)
	}
	req(token)
	req(token + "x")
	stdout, _, err := cli(t, "apikey", "list", "--data", dataDir, "--tenant", "acme")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}

	auditFile := filepath.Join(dataDir, "audit.log")
	trail, err := os.ReadFile(auditFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(trail)), "\n")
	ops := map[string]int{}
	for _, l := range lines {
		var r struct {
			Op     string `json:"op"`
			Status int    `json:"status"`
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("audit line is not JSON: %v", err)
		}
		ops[r.Op]++
	}
	// 11 API requests (one of them a bad bearer) + the API keys created and listed.
	if ops["secret.put"] != 3 || ops["secret.get"] != 4 || ops["secret.list"] != 3 || ops["secret.delete"] != 1 ||
		ops["apikey.create"] != 1 || ops["apikey.list"] != 1 {
		t.Errorf("records by operation = %v", ops)
	}

	t.Run("Canaries", func(t *testing.T) {
		masterJSON, _ := os.ReadFile(masterKey)
		var ks struct {
			Key []struct {
				KeyData struct{ Value string } `json:"keyData"`
			} `json:"key"`
		}
		json.Unmarshal(masterJSON, &ks)
		secrets := map[string]string{"value": canary, "api key": key, "refused api key": wrongKey, "token": token, "token signature": strings.Split(token, ".")[2]}
		for i, k := range ks.Key {
			secrets["master key material "+string(rune('0'+i))] = k.KeyData.Value
		}
		places := map[string]string{"audit file": string(trail), "server log": srv.stderr.String(), "error bodies": strings.Join(bodies[3:], "\n"), "apikey list": stdout}
		for what, secret := range secrets {
			if secret == "" {
				t.Fatalf("canary %s is empty", what)
			}
			for where, text := range places {
				if strings.Contains(text, secret) {
					t.Errorf("the %s appears in the %s", what, where)
				}
			}
		}
	})

	verify := func(t *testing.T, file string) (string, error) {
		t.Helper()
		out, _, err := cli(t, "audit", "verify", "--file", file, "--data", dataDir, "--master-key-file", masterKey)
		return out, err
	}
	t.Run("VerifyIntact", func(t *testing.T) {
		if out, err := verify(t, auditFile); err != nil || !strings.Contains(out, "OK:") {
			t.Fatalf("audit verify = %v\n%s", err, out)
		}
	})
	tamper := func(name string, edit func(lines []string) []string, want string) {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "audit.log")
			if err := os.WriteFile(file, []byte(strings.Join(edit(append([]string(nil), lines...)), "\n")+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := verify(t, file)
			if err == nil || !strings.Contains(out, want) {
				t.Errorf("audit verify of a file with %s = %v\n%s\nwant a failure naming %q", name, err, out, want)
			}
		})
	}
	tamper("EditedByte", func(l []string) []string { l[3] = strings.Replace(l[3], `"status":200`, `"status":201`, 1); return l }, "altered")
	tamper("DeletedLine", func(l []string) []string { return append(l[:4], l[5:]...) }, "removed")
	tamper("SwappedLines", func(l []string) []string { l[2], l[3] = l[3], l[2]; return l }, "reordered")
	tamper("CutTail", func(l []string) []string { return l[:len(l)-2] }, "truncated")

	const torn = `{"time":"2026-03-01T12:00:00Z","node":"` // a write cut short by a crash
	t.Run("VerifyReportsATornTail", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "audit.log")
		if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"+torn), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := verify(t, file)
		want := fmt.Sprintf("WARNING: torn tail: an unacknowledged record was cut short at %s line %d (%d bytes, no newline)", file, len(lines)+1, len(torn))
		if err != nil || !strings.Contains(out, want) || !strings.Contains(out, "OK:") {
			t.Errorf("audit verify of a file with a torn tail = %v\n%s\nwant success with %q", err, out, want)
		}
	})
	t.Run("StartCutsATornTailAndLogsIt", func(t *testing.T) {
		f, err := os.OpenFile(auditFile, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(torn)
		f.Close()
		srv := startServer(t, dataDir, masterKey)
		srv.stop()
		log := srv.stderr.String()
		if !strings.Contains(log, "level=WARN") || !strings.Contains(log, "cut a partial last line") || !strings.Contains(log, fmt.Sprintf("bytes=%d", len(torn))) {
			t.Errorf("the server log does not report the cut at warn with its size:\n%s", log)
		}
		if out, err := verify(t, auditFile); err != nil || strings.Contains(out, "torn") {
			t.Errorf("audit verify after the cut = %v\n%s", err, out)
		}
	})

	t.Run("ChainContinuesAcrossRestart", func(t *testing.T) {
		srv := startServer(t, dataDir, masterKey)
		send := func() {
			if status, _, _ := do(t, "GET", srv.base+"/api/acme/secrets", key, ""); status != 200 {
				t.Fatalf("GET after restart = %d", status)
			}
		}
		send()
		send()
		srv.stop()
		if out, err := verify(t, auditFile); err != nil {
			t.Fatalf("audit verify after a restart = %v\n%s", err, out)
		}
		out, _, err := cli(t, "audit", "search", "--file", auditFile, "--tenant", "acme", "--op", "secret.list", "--json")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			if !bytes.Contains(sc.Bytes(), []byte(`"op":"secret.list"`)) {
				t.Errorf("audit search returned a record of another operation: %s", sc.Text())
			}
			n++
		}
		if n != 5 {
			t.Errorf("audit search found %d secret.list records of acme, want 5", n)
		}
	})
}

// doBearer sends a request with a bearer token.
func doBearer(t *testing.T, method, url, token string) (int, string, string) {
	t.Helper()
	status, _, body := doWith(t, method, url, map[string]string{"Authorization": "Bearer " + token})
	return status, "", body
}

// doWith sends a request with the given headers and returns status, headers and body.
func doWith(t *testing.T, method, url string, headers map[string]string) (int, map[string][]string, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.StatusCode, resp.Header, readAll(resp)
}
