package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// hookMessage is one request a hookReceiver got.
type hookMessage struct {
	id, timestamp string
	signatures    []string
	body          []byte
}

// eventType is the message's "type".
func (m hookMessage) eventType() string {
	var p struct{ Type string }
	json.Unmarshal(m.body, &p)
	return p.Type
}

// signedBy reports whether one of the message's signatures is the Standard
// Webhooks signature under secret: base64 HMAC-SHA256 of id.timestamp.body
// with the base64-decoded secret after "whsec_". It is written here from
// the specification, sharing nothing with the signer.
func (m hookMessage) signedBy(t *testing.T, secret string) bool {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || !strings.HasPrefix(secret, "whsec_") || len(key) != 32 {
		t.Fatalf("signing secret %q is not whsec_ and the base64 of 32 bytes", secret)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(m.id + "." + m.timestamp + "."))
	mac.Write(m.body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, s := range m.signatures {
		if hmac.Equal([]byte(s), []byte(want)) {
			return true
		}
	}
	return false
}

// hookReceiver is a loopback webhook endpoint that answers with a status
// the test sets and hands every message to the test.
type hookReceiver struct {
	url  string
	msgs chan hookMessage

	mu     sync.Mutex
	status int
}

func newHookReceiver(t *testing.T) *hookReceiver {
	t.Helper()
	rc := &hookReceiver{msgs: make(chan hookMessage, 64), status: http.StatusNoContent}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.msgs <- hookMessage{
			id: r.Header.Get("webhook-id"), timestamp: r.Header.Get("webhook-timestamp"),
			signatures: strings.Fields(r.Header.Get("webhook-signature")), body: body,
		}
		rc.mu.Lock()
		status := rc.status
		rc.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	rc.url = srv.URL
	return rc
}

func (rc *hookReceiver) answer(status int) {
	rc.mu.Lock()
	rc.status = status
	rc.mu.Unlock()
}

// next returns the next message, of type typ, skipping others.
func (rc *hookReceiver) next(t *testing.T, typ string) hookMessage {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case m := <-rc.msgs:
			if m.eventType() == typ {
				return m
			}
		case <-timeout:
			t.Fatalf("the receiver got no %s message within 15s", typ)
			return hookMessage{}
		}
	}
}

// addWebhook runs `webhook add` and returns the secret on its first line
// and the subscription id.
func addWebhook(t *testing.T, args ...string) (secret, id string) {
	t.Helper()
	out := mustCLI(t, append([]string{"webhook", "add"}, args...)...)
	lines := strings.Split(out, "\n")
	secret = lines[0]
	for _, l := range lines[1:] {
		if v, ok := strings.CutPrefix(l, "id"); ok {
			id = strings.TrimSpace(v)
			break
		}
	}
	if !strings.HasPrefix(secret, "whsec_") || !strings.HasPrefix(id, "wh_") {
		t.Fatalf("webhook add printed %q; want the signing secret on the first line, then the id", out)
	}
	return secret, id
}

// webhookJSON is what `webhook list --json` and `deliveries --json` give.
type webhookJSON struct {
	ID         string
	URL        string
	DisabledAt *time.Time
	Secrets    []struct{ ExpiresAt *time.Time }
}

type deliveryJSON struct {
	ID, EventID, Type, State string
	Attempts, LastStatus     int
}

// waitDelivery polls `webhook deliveries --json` until a delivery of the
// event id is in state, and returns it.
func waitDelivery(t *testing.T, dataDir, sub, eventID, state string, failedOnly bool) deliveryJSON {
	t.Helper()
	args := []string{"webhook", "deliveries", "--data", dataDir, sub, "--json"}
	if failedOnly {
		args = append(args, "--failed")
	}
	deadline := time.Now().Add(15 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		out, stderr, err := cli(t, args...)
		if err != nil {
			t.Fatalf("webhook deliveries: %v\n%s", err, stderr)
		}
		last = out
		var ds []deliveryJSON
		if err := json.Unmarshal([]byte(out), &ds); err != nil {
			t.Fatalf("webhook deliveries --json printed %q: %v", out, err)
		}
		for _, d := range ds {
			if d.EventID == eventID && d.State == state {
				return d
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no %s delivery of %s within 15s; deliveries:\n%s", state, eventID, last)
	return deliveryJSON{}
}

func listWebhooks(t *testing.T, args ...string) []webhookJSON {
	t.Helper()
	var subs []webhookJSON
	out := mustCLI(t, append([]string{"webhook", "list", "--json"}, args...)...)
	if err := json.Unmarshal([]byte(out), &subs); err != nil {
		t.Fatalf("webhook list --json printed %q: %v", out, err)
	}
	return subs
}

// TestWebhook_Commands drives every webhook command against a real server
// over its admin socket, with a loopback receiver that checks signatures.
func TestWebhook_Commands(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	srv, metricsURL := startServerWithMetrics(t, dataDir, newMasterKey(t), "--webhook-allow-insecure", "--webhook-allow-private")
	key := createKey(t, dataDir, "demo", "Secret.Read", "Secret.Write")
	rc := newHookReceiver(t)
	const token = "tok-canary-3f9e"

	secret, id := addWebhook(t, "--data", dataDir, "--tenant", "demo", "--url", rc.url+"/hook?token="+token,
		"--events", "secret.updated,secret.deleted", "--lead", "1h,48h", "--name", "ci")
	secrets := []string{secret}

	t.Run("ListNeverShowsTheSecret", func(t *testing.T) {
		table := mustCLI(t, "webhook", "list", "--data", dataDir)
		if !strings.Contains(table, id) || !strings.Contains(table, "48h,1h") || !strings.Contains(table, "secret.updated,secret.deleted") {
			t.Errorf("webhook list = %q, want the subscription with its leads (longest first) and events", table)
		}
		if strings.Contains(table, token) {
			t.Errorf("webhook list shows the URL's query: %q", table)
		}
		listJSON := mustCLI(t, "webhook", "list", "--data", dataDir, "--json")
		for _, out := range []string{table, listJSON} {
			if strings.Contains(out, strings.TrimPrefix(secret, "whsec_")) {
				t.Errorf("webhook list shows the signing secret: %q", out)
			}
		}
	})

	t.Run("Test", func(t *testing.T) {
		out := mustCLI(t, "webhook", "test", "--data", dataDir, id)
		if !strings.HasPrefix(out, "delivered: HTTP 204 in ") {
			t.Errorf("webhook test printed %q, want delivered: HTTP 204 in ...", out)
		}
		m := rc.next(t, "webhook.test")
		if !m.signedBy(t, secret) || len(m.signatures) != 1 {
			t.Errorf("the test message's signatures %q are not one signature by the secret add printed", m.signatures)
		}
	})

	t.Run("AChangeIsDelivered", func(t *testing.T) {
		if status, _, body := do(t, "PUT", srv.base+"/api/demo/secrets/db", key, `{"value":"VALUE-canary-77a1"}`); status != 204 {
			t.Fatalf("PUT = %d %s", status, body)
		}
		m := rc.next(t, "secret.updated")
		if !m.signedBy(t, secret) {
			t.Errorf("secret.updated is not signed by the subscription's secret")
		}
		if strings.Contains(string(m.body), "VALUE-canary") || !strings.Contains(string(m.body), `"key":"db"`) {
			t.Errorf("payload = %s, want the key and never the value", m.body)
		}
		d := waitDelivery(t, dataDir, id, m.id, "delivered", false)
		if d.Attempts != 1 || d.LastStatus != 204 || d.Type != "secret.updated" {
			t.Errorf("delivery = %+v, want delivered at the first attempt with 204", d)
		}
	})

	t.Run("RotateSecretSignsWithBothDuringTheGrace", func(t *testing.T) {
		out := mustCLI(t, "webhook", "rotate-secret", "--data", dataDir, id, "--grace", "1h")
		next := strings.SplitN(out, "\n", 2)[0]
		if !strings.HasPrefix(next, "whsec_") || next == secret {
			t.Fatalf("rotate-secret printed %q first, want a new signing secret", next)
		}
		secrets = append(secrets, next)
		mustCLI(t, "webhook", "test", "--data", dataDir, id)
		m := rc.next(t, "webhook.test")
		if len(m.signatures) != 2 || !m.signedBy(t, secret) || !m.signedBy(t, next) {
			t.Errorf("signatures during the grace = %q, want two: by the old and by the new secret", m.signatures)
		}
		if table := mustCLI(t, "webhook", "list", "--data", dataDir); !strings.Contains(table, "old secret signs until") {
			t.Errorf("webhook list = %q, want it to show the rotation's end", table)
		}

		out = mustCLI(t, "webhook", "rotate-secret", "--data", dataDir, id, "--grace", "0s")
		last := strings.SplitN(out, "\n", 2)[0]
		secrets = append(secrets, last)
		mustCLI(t, "webhook", "test", "--data", dataDir, id)
		m = rc.next(t, "webhook.test")
		// The first rotation's old secret is still in its grace; the
		// second one's previous secret stopped at once.
		if !m.signedBy(t, last) || m.signedBy(t, next) || !m.signedBy(t, secret) || len(m.signatures) != 2 {
			t.Errorf("signatures after a rotation without grace = %q, want the newest and the first (still in its grace) only", m.signatures)
		}
		secret = last
	})

	t.Run("FailedAndRedelivered", func(t *testing.T) {
		rc.answer(http.StatusBadRequest)
		do(t, "DELETE", srv.base+"/api/demo/secrets/db", key, "")
		m := rc.next(t, "secret.deleted")
		failed := waitDelivery(t, dataDir, id, m.id, "failed", true)
		if failed.LastStatus != 400 {
			t.Errorf("failed delivery = %+v, want its last status 400", failed)
		}
		table := mustCLI(t, "webhook", "deliveries", "--data", dataDir, id, "--failed")
		if !strings.Contains(table, failed.ID) || !strings.Contains(table, "400") || strings.Contains(table, "delivered") {
			t.Errorf("deliveries --failed = %q, want only the failed delivery with its status", table)
		}

		rc.answer(http.StatusNoContent)
		mustCLI(t, "webhook", "redeliver", "--data", dataDir, failed.ID)
		again := rc.next(t, "secret.deleted")
		if again.id != m.id || !again.signedBy(t, secret) {
			t.Errorf("redelivered message id %s signed %v, want the same id %s signed by the current secret", again.id, again.signedBy(t, secret), m.id)
		}
		waitDelivery(t, dataDir, id, m.id, "delivered", false)
	})

	t.Run("GoneDisablesTheEndpoint", func(t *testing.T) {
		rc.answer(http.StatusGone)
		do(t, "PUT", srv.base+"/api/demo/secrets/gone", key, `{"value":"v"}`)
		rc.next(t, "secret.updated")
		deadline := time.Now().Add(15 * time.Second)
		for {
			subs := listWebhooks(t, "--data", dataDir)
			if len(subs) == 1 && subs[0].DisabledAt != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the subscription is not disabled 15s after a 410: %+v", subs)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if table := mustCLI(t, "webhook", "list", "--data", dataDir); !strings.Contains(table, "disabled") {
			t.Errorf("webhook list = %q, want the subscription shown disabled", table)
		}
		_, _, err := cli(t, "webhook", "redeliver", "--data", dataDir, "dlv_aaaaaaaaaaaaaaaaaaaaaaaaaa")
		if err == nil || !strings.Contains(err.Error(), "No webhook delivery") {
			t.Errorf("redeliver of an unknown delivery = %v, want a not-found error", err)
		}
		waitAudit(t, filepath.Join(dataDir, "audit.log"), `"op":"webhook.disable"`)
		// Receivers that fail, refuse or are gone are no reason to take
		// this node out of a load balancer.
		if status, _, body := do(t, "GET", srv.base+"/readyz", "", ""); status != 200 {
			t.Errorf("/readyz after failing receivers = %d %s, want 200", status, body)
		}
	})

	t.Run("Metrics", func(t *testing.T) {
		deadline := time.Now().Add(15 * time.Second)
		for {
			text := scrape(t, metricsURL)
			delivered := metricValue(t, text, "neostore_webhook_deliveries_total", `outcome="delivered"`)
			failed := metricValue(t, text, "neostore_webhook_deliveries_total", `outcome="failed"`)
			disabled := metricValue(t, text, "neostore_webhook_deliveries_total", `outcome="disabled"`)
			endpoints := gaugeValue(t, text, "neostore_webhook_disabled_endpoints")
			if delivered >= 2 && failed >= 1 && disabled >= 1 && endpoints == 1 {
				if !strings.Contains(text, "neostore_webhook_pending_deliveries ") || !strings.Contains(text, "neostore_webhook_oldest_pending_age_seconds ") {
					t.Errorf("the metrics lack the pending count or the oldest age")
				}
				if strings.Contains(text, "127.0.0.1:"+strings.Split(rc.url, ":")[2]) || strings.Contains(text, id) {
					t.Errorf("a metric names the endpoint or the subscription")
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("metrics after the deliveries: delivered %v, failed %v, disabled %v, disabled endpoints %v", delivered, failed, disabled, endpoints)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("Remove", func(t *testing.T) {
		mustCLI(t, "webhook", "remove", "--data", dataDir, id)
		if subs := listWebhooks(t, "--data", dataDir); len(subs) != 0 {
			t.Errorf("subscriptions after remove = %+v, want none", subs)
		}
		for _, args := range [][]string{{"remove", id}, {"deliveries", id}, {"test", id}, {"rotate-secret", id}} {
			_, _, err := cli(t, append([]string{"webhook", args[0], "--data", dataDir}, args[1:]...)...)
			if err == nil || !strings.Contains(err.Error(), "No webhook subscription") {
				t.Errorf("webhook %s of a removed subscription = %v, want a not-found error", args[0], err)
			}
		}
	})

	t.Run("AuditTrail", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(dataDir, "audit.log"))
		if err != nil {
			t.Fatal(err)
		}
		trail := string(b)
		for _, op := range []string{"webhook.add", "webhook.test", "webhook.rotate-secret", "webhook.remove", "webhook.disable"} {
			if !strings.Contains(trail, `"op":"`+op+`","tenant":"demo","key":"`+id+`"`) {
				t.Errorf("the audit trail has no %s record naming the tenant and the subscription", op)
			}
		}
		if !strings.Contains(trail, `"op":"webhook.redeliver","key":"dlv_`) {
			t.Errorf("the audit trail has no webhook.redeliver record naming the delivery")
		}
		if !strings.Contains(trail, `"op":"webhook.add","tenant":"demo","key":"`+id+`"`) {
			t.Errorf("the webhook.add record does not name the tenant and the new id")
		}
		if !strings.Contains(trail, `"op":"webhook.remove","key":"`+id+`","principal":{"kind":"operator","id":"admin-socket"},"status":404`) {
			t.Errorf("the refused second remove has no record of its 404")
		}
		for _, leak := range append(secrets, token, rc.url) {
			if strings.Contains(trail, strings.TrimPrefix(leak, "whsec_")) {
				t.Errorf("the audit trail holds %q", leak)
			}
			if strings.Contains(srv.stderr.String(), strings.TrimPrefix(leak, "whsec_")) {
				t.Errorf("the server's log holds %q", leak)
			}
		}
	})
}

// gaugeValue returns the value of an unlabelled sample.
func gaugeValue(t *testing.T, text, name string) float64 {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return -1
}

// waitAudit waits until the audit file holds want.
func waitAudit(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the audit trail has no %s within 15s", want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWebhook_Refusals checks what the commands and the server refuse,
// each with a clear message and nothing stored.
func TestWebhook_Refusals(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	startServer(t, dataDir, newMasterKey(t), "--webhook-allow-insecure")
	rc := newHookReceiver(t)
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"NoURL", []string{"--tenant", "demo"}, "--url are required"},
		{"BadURL", []string{"--tenant", "demo", "--url", "not a url"}, "absolute https URL"},
		{"NotHTTP", []string{"--tenant", "demo", "--url", "ftp://example.com/x"}, "absolute https URL"},
		{"BadTenant", []string{"--tenant", "Demo!", "--url", "https://example.com/x"}, "--tenant"},
		{"UnknownEvent", []string{"--tenant", "demo", "--url", "https://example.com/x", "--events", "secret.updated,secret.read"}, `unknown event type "secret.read"`},
		{"ZeroLead", []string{"--tenant", "demo", "--url", "https://example.com/x", "--lead", "0s"}, "positive duration"},
		{"NegativeLead", []string{"--tenant", "demo", "--url", "https://example.com/x", "--lead", "-1h"}, "positive duration"},
		{"LongLead", []string{"--tenant", "demo", "--url", "https://example.com/x", "--lead", "9000h"}, "at most 8760h"},
		{"NotALead", []string{"--tenant", "demo", "--url", "https://example.com/x", "--lead", "soon"}, "positive duration"},
		{"TooManyLeads", []string{"--tenant", "demo", "--url", "https://example.com/x", "--lead", "1h,2h,3h,4h,5h,6h,7h,8h,9h,10h,11h"}, "at most 10"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := cli(t, append([]string{"webhook", "add", "--data", dataDir}, c.args...)...)
			if err == nil || !strings.Contains(err.Error(), c.want) || exitCode(err) != exitUsage {
				t.Errorf("webhook add %v = %v (exit %d), want a usage error saying %q", c.args, err, exitCode(err), c.want)
			}
		})
	}
	t.Run("UnknownID", func(t *testing.T) {
		for _, args := range [][]string{{"remove", "wh_nope"}, {"rotate-secret", "wh_nope"}, {"test", "wh_nope"}, {"deliveries", "wh_nope"}, {"redeliver", "dlv_nope"}} {
			_, _, err := cli(t, append([]string{"webhook", args[0], "--data", dataDir}, args[1:]...)...)
			if err == nil || !strings.Contains(err.Error(), `has the id "`+args[1]+`"`) {
				t.Errorf("webhook %s %s = %v, want a not-found error naming the id", args[0], args[1], err)
			}
		}
	})
	if subs := listWebhooks(t, "--data", dataDir); len(subs) != 0 {
		t.Fatalf("refused adds stored %+v", subs)
	}

	t.Run("PrivateDestinationRefused", func(t *testing.T) {
		// This server allows http but not private addresses: the loopback
		// receiver is refused on the address actually dialled.
		_, id := addWebhook(t, "--data", dataDir, "--tenant", "*", "--url", rc.url+"/hook")
		out, _, err := cli(t, "webhook", "test", "--data", dataDir, id)
		if err == nil || !strings.HasPrefix(out, "not delivered: destination refused") {
			t.Errorf("webhook test to loopback = %q, %v; want not delivered: destination refused, and an error", out, err)
		}
		select {
		case m := <-rc.msgs:
			t.Errorf("the refused destination got a message: %s", m.body)
		default:
		}
		mustCLI(t, "webhook", "remove", "--data", dataDir, id)
	})
}

// TestWebhook_InsecureRefused checks that a server without
// --webhook-allow-insecure refuses http endpoints at `webhook add`.
func TestWebhook_InsecureRefused(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	startServer(t, dataDir, newMasterKey(t), "--webhook-allow-private")
	_, _, err := cli(t, "webhook", "add", "--data", dataDir, "--tenant", "demo", "--url", "http://127.0.0.1:9/hook")
	if err == nil || !strings.Contains(err.Error(), "must use https") {
		t.Errorf("webhook add of an http URL = %v, want a refusal saying it must use https", err)
	}
	if subs := listWebhooks(t, "--data", dataDir); len(subs) != 0 {
		t.Errorf("the refused add stored %+v", subs)
	}
}

// TestWebhook_WithoutServer adds a subscription on the embedded store with
// no server running: the command seals the secret with the master key and
// records the change itself, and the server started afterwards signs with
// that secret.
func TestWebhook_WithoutServer(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	masterKey := newMasterKey(t)
	srv := startServer(t, dataDir, masterKey)
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}
	rc := newHookReceiver(t)
	if _, _, err := cli(t, "webhook", "add", "--data", dataDir, "--tenant", "demo", "--url", rc.url); err == nil || !strings.Contains(err.Error(), "master key") {
		t.Errorf("webhook add without a server or a master key = %v, want it to ask for the master key", err)
	}
	if _, _, err := cli(t, "webhook", "add", "--data", dataDir, "--master-key-file", masterKey, "--tenant", "demo", "--url", rc.url); err == nil || !strings.Contains(err.Error(), "https") {
		t.Errorf("webhook add of http without --webhook-allow-insecure = %v, want a refusal", err)
	}
	secret, id := addWebhook(t, "--data", dataDir, "--master-key-file", masterKey, "--webhook-allow-insecure", "--tenant", "demo", "--url", rc.url)
	if subs := listWebhooks(t, "--data", dataDir, "--master-key-file", masterKey); len(subs) != 1 || subs[0].ID != id {
		t.Fatalf("webhook list without a server = %+v, want %s", subs, id)
	}
	waitAudit(t, filepath.Join(dataDir, "audit.log"), `"op":"webhook.add","tenant":"demo","key":"`+id+`"`)

	srv = startServer(t, dataDir, masterKey, "--webhook-allow-insecure", "--webhook-allow-private")
	if out := mustCLI(t, "webhook", "test", "--data", dataDir, id); !strings.HasPrefix(out, "delivered") {
		t.Errorf("webhook test = %q, want delivered", out)
	}
	if m := rc.next(t, "webhook.test"); !m.signedBy(t, secret) {
		t.Errorf("the server does not sign with the secret the command sealed")
	}
	// The command's records continue the chain the server left, and the
	// server's continue the command's.
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}
	if out, _, err := cli(t, "audit", "verify", "--file", filepath.Join(dataDir, "audit.log"), "--data", dataDir, "--master-key-file", masterKey); err != nil {
		t.Errorf("audit verify = %v\n%s", err, out)
	}
}

// TestWebhook_ShutdownWithinTheDrain stops a server while its dispatcher
// waits on a receiver that never answers: the server stops within its
// shutdown grace, not the attempt's timeout, and the delivery stays
// pending for the next start.
func TestWebhook_ShutdownWithinTheDrain(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	masterKey := newMasterKey(t)
	srv := startServer(t, dataDir, masterKey, "--webhook-allow-insecure", "--webhook-allow-private", "--shutdown-grace", "1s")
	key := createKey(t, dataDir, "demo", "Secret.Write")
	arrived, release := make(chan struct{}, 8), make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hang.Close()
	defer close(release)
	_, id := addWebhook(t, "--data", dataDir, "--tenant", "demo", "--url", hang.URL)
	do(t, "PUT", srv.base+"/api/demo/secrets/db", key, `{"value":"v"}`)
	select {
	case <-arrived:
	case <-time.After(15 * time.Second):
		t.Fatal("the receiver got nothing within 15s")
	}
	start := time.Now()
	if err := srv.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the server took %v to stop with an attempt in flight, want about its 1s grace", d)
	}
	out := mustCLI(t, "webhook", "deliveries", "--data", dataDir, "--master-key-file", masterKey, id)
	if !strings.Contains(out, "pending") {
		t.Errorf("deliveries after the stop = %q, want the cut attempt still pending", out)
	}
}

// TestWebhook_Off checks that a node with --webhooks off keeps managing
// subscriptions but sends nothing, and says so when asked to test one.
func TestWebhook_Off(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	masterKey := newMasterKey(t)
	startServer(t, dataDir, masterKey, "--webhooks", "off")
	_, id := addWebhook(t, "--data", dataDir, "--tenant", "demo", "--url", "https://example.com/hook")
	_, _, err := cli(t, "webhook", "test", "--data", dataDir, id)
	if err == nil || !strings.Contains(err.Error(), "--webhooks off") {
		t.Errorf("webhook test on a node with --webhooks off = %v, want it to say so", err)
	}
	if _, _, err := cli(t, "serve", "--data", filepath.Join(t.TempDir(), "d"), "--master-key-file", masterKey, "--metrics-listen", "off", "--webhooks", "maybe"); err == nil || !strings.Contains(err.Error(), "want on or off") {
		t.Errorf("serve --webhooks maybe = %v, want a usage error", err)
	}
}

// TestWebhook_LeaseFlag checks --webhook-lease and NEOSTORE_WEBHOOK_LEASE:
// a lease under twice the 10 s attempt timeout is refused before the
// server starts; 20 s serves.
func TestWebhook_LeaseFlag(t *testing.T) {
	masterKey := newMasterKey(t)
	serve := func(getenv func(string) string, extra ...string) error {
		args := append([]string{"neostore-secrets", "serve", "--data", filepath.Join(t.TempDir(), "d"), "--master-key-file", masterKey, "--metrics-listen", "off"}, extra...)
		var stdout, stderr bytes.Buffer
		return run(context.Background(), args, getenv, strings.NewReader(""), &stdout, &stderr)
	}
	for _, c := range []struct {
		name   string
		getenv func(string) string
		args   []string
	}{
		{"Flag", env(nil), []string{"--webhook-lease", "19s"}},
		{"Negative", env(nil), []string{"--webhook-lease", "-1m"}},
		{"Environment", env(map[string]string{"NEOSTORE_WEBHOOK_LEASE": "5s"}), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := serve(c.getenv, c.args...)
			if err == nil || !strings.Contains(err.Error(), "--webhook-lease") || !strings.Contains(err.Error(), "at least 20s") || exitCode(err) != exitUsage {
				t.Errorf("serve with a short lease = %v (exit %d), want a usage error saying --webhook-lease wants at least 20s", err, exitCode(err))
			}
		})
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	srv := startServer(t, dataDir, masterKey, "--webhook-lease", "20s")
	if err := srv.stop(); err != nil {
		t.Errorf("serve --webhook-lease 20s: %v", err)
	}
}

// TestWebhook_KeysRewrap rotates the master key of a server with a
// subscription: keys list counts its signing secret under the old key,
// keys remove refuses until keys rewrap has sealed it anew, and the
// server still signs with the same secret afterwards.
func TestWebhook_KeysRewrap(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	masterKey := newMasterKey(t)
	startServer(t, dataDir, masterKey, "--webhook-allow-insecure", "--webhook-allow-private")
	rc := newHookReceiver(t)
	secret, id := addWebhook(t, "--data", dataDir, "--tenant", "demo", "--url", rc.url)
	oldID := listKeys(t, "--data", dataDir).primary()
	if table := mustCLI(t, "keys", "list", "--data", dataDir); !strings.Contains(table, "WEBHOOK SECRETS") {
		t.Errorf("keys list = %q, want a WEBHOOK SECRETS column", table)
	}
	mustCLI(t, "keys", "rotate", "--master-key-file", masterKey, "--data", dataDir)
	_, _, err := cli(t, "keys", "remove", "--master-key-file", masterKey, "--key-id", strconv.FormatUint(uint64(oldID), 10), "--data", dataDir)
	if err == nil || !strings.Contains(err.Error(), "1 webhook signing secrets") {
		t.Errorf("keys remove before rewrap = %v, want a refusal counting the webhook signing secret", err)
	}
	if out := mustCLI(t, "keys", "rewrap", "--data", dataDir); !strings.Contains(out, "1 webhook signing secrets sealed anew") {
		t.Errorf("keys rewrap printed %q, want the webhook signing secret sealed anew", out)
	}
	mustCLI(t, "keys", "remove", "--master-key-file", masterKey, "--key-id", strconv.FormatUint(uint64(oldID), 10), "--data", dataDir)
	mustCLI(t, "webhook", "test", "--data", dataDir, id)
	if m := rc.next(t, "webhook.test"); !m.signedBy(t, secret) {
		t.Errorf("after the master key rotation the server no longer signs with the subscription's secret")
	}
}
