package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets/webhooktest"
)

// The end-to-end tests of webhook notifications (issue 14): the real
// program serving, subscriptions made with `webhook add` over the admin
// socket, and a receiver written from the Standard Webhooks specification
// alone (package webhooktest), never from the server's signer.

// webhookRecord is what `webhook list --json` says of a subscription.
type webhookRecord struct {
	ID         string     `json:"id"`
	Tenant     string     `json:"tenant"`
	DisabledAt *time.Time `json:"disabledAt"`
}

// deliveryRecord is what `webhook deliveries --json` says of a delivery.
type deliveryRecord struct {
	ID         string `json:"id"`
	EventID    string `json:"eventId"`
	Type       string `json:"type"`
	Tenant     string `json:"tenant"`
	Key        string `json:"key"`
	State      string `json:"state"`
	Attempts   int    `json:"attempts"`
	LastStatus int    `json:"lastStatus"`
	LastError  string `json:"lastError"`
}

// subscribeURL subscribes url to tenant's events with `webhook add` and
// returns the subscription's id and signing secret.
func subscribeURL(t *testing.T, dataDir, tenant, url string) (string, string) {
	t.Helper()
	stdout, stderr, err := cli(t, "webhook", "add", "--data", dataDir, "--tenant", tenant, "--url", url, "--name", "e2e", "--json")
	if err != nil {
		t.Fatalf("webhook add: %v\n%s", err, stderr)
	}
	var out struct {
		Secret string        `json:"secret"`
		Record webhookRecord `json:"record"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil || out.Record.ID == "" || !strings.HasPrefix(out.Secret, "whsec_") {
		t.Fatalf("webhook add --json printed no id and secret (%v)", err)
	}
	return out.Record.ID, out.Secret
}

func webhookRecords(t *testing.T, dataDir string) []webhookRecord {
	t.Helper()
	stdout, stderr, err := cli(t, "webhook", "list", "--data", dataDir, "--json")
	if err != nil {
		t.Fatalf("webhook list: %v\n%s", err, stderr)
	}
	var subs []webhookRecord
	if err := json.Unmarshal([]byte(stdout), &subs); err != nil {
		t.Fatalf("webhook list --json: %v\n%s", err, stdout)
	}
	return subs
}

func listDeliveries(t *testing.T, dataDir, id string, failedOnly bool) []deliveryRecord {
	t.Helper()
	args := []string{"webhook", "deliveries", "--data", dataDir, "--json", id}
	if failedOnly {
		args = append(args[:len(args)-1], "--failed", id)
	}
	stdout, stderr, err := cli(t, args...)
	if err != nil {
		t.Fatalf("webhook deliveries: %v\n%s", err, stderr)
	}
	var ds []deliveryRecord
	if err := json.Unmarshal([]byte(stdout), &ds); err != nil {
		t.Fatalf("webhook deliveries --json: %v\n%s", err, stdout)
	}
	return ds
}

// waitDeliveries polls `webhook deliveries` until cond holds, for at most
// limit: the store's record of an attempt is written after the receiver
// answered, so no signal of the receiver's says it is there.
func waitDeliveries(t *testing.T, dataDir, id string, failedOnly bool, limit time.Duration, cond func([]deliveryRecord) bool) []deliveryRecord {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ds := listDeliveries(t, dataDir, id, failedOnly)
		if cond(ds) {
			return ds
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries of %s (failed only: %v) after %v: %+v", id, failedOnly, limit, ds)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startWebhookReceiver starts a receiver for the test; Close comes with cleanup.
func startWebhookReceiver(t *testing.T, respond webhooktest.Responder) *webhooktest.Receiver {
	t.Helper()
	r, err := webhooktest.Start(webhooktest.Options{Respond: respond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// subscribed is a tenant with an API key and one subscription to a receiver.
type subscribed struct {
	rcv    *webhooktest.Receiver
	id     string
	secret string
	key    string // API key with Secret.Read and Secret.Write on the tenant
	base   string // the API's base URL and tenant path: base + "/db"
}

func subscribe(t *testing.T, srv *server, dataDir, tenant string, respond webhooktest.Responder) subscribed {
	t.Helper()
	rcv := startWebhookReceiver(t, respond)
	id, secret := subscribeURL(t, dataDir, tenant, rcv.URL)
	if err := rcv.SetSecrets(secret); err != nil {
		t.Fatal(err)
	}
	return subscribed{rcv: rcv, id: id, secret: secret, key: createKey(t, dataDir, tenant, "Secret.Read", "Secret.Write"),
		base: srv.base + "/api/" + tenant + "/secrets"}
}

func (s subscribed) put(t *testing.T, key string) {
	t.Helper()
	if status, _, body := do(t, "PUT", s.base+"/"+key, s.key, `{"value":"v-`+key+`"}`); status != 204 {
		t.Fatalf("PUT %s = %d %s", key, status, body)
	}
}

// delivered returns a condition: at least n distinct webhook-ids delivered.
func delivered(n int) func([]webhooktest.Request) bool {
	return func(qs []webhooktest.Request) bool { return webhooktest.Summarize(qs).Delivered >= n }
}

func TestWebhook_EndToEnd(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	masterKey := newMasterKey(t)
	// The receivers listen on loopback over http: allowed for the test.
	srv := startServer(t, dataDir, masterKey, "--webhook-allow-private", "--webhook-allow-insecure")

	t.Run("Cases", func(t *testing.T) {
		t.Run("SignedEventsAndARotation", func(t *testing.T) {
			t.Parallel()
			s := subscribe(t, srv, dataDir, "signed", nil)
			s.put(t, "db")
			s.put(t, "db")
			if status, _, _ := do(t, "DELETE", s.base+"/db", s.key, ""); status != 204 {
				t.Fatalf("DELETE = %d", status)
			}
			if err := s.rcv.WaitTimeout(30*time.Second, delivered(3)); err != nil {
				t.Fatalf("%v: %+v", err, s.rcv.Requests())
			}
			var kinds []string
			for _, q := range s.rcv.Requests() {
				if !q.Verified || !slices.Equal(q.Matched, []int{0}) {
					t.Errorf("delivery %s: verified %v matched %v (%s)", q.ID, q.Verified, q.Matched, q.Problem)
				}
				if q.Tenant != "signed" || q.Key != "db" || strings.Contains(string(q.Body), "v-db") {
					t.Errorf("delivery %s names %s/%s or carries the value: %s", q.ID, q.Tenant, q.Key, q.Body)
				}
				if q.Header.Get("Content-Type") != "application/json" || !strings.HasPrefix(q.ID, "msg_") {
					t.Errorf("delivery %s: Content-Type %q", q.ID, q.Header.Get("Content-Type"))
				}
				kind := q.Type
				if q.Created != nil {
					kind += fmt.Sprintf(" created=%v", *q.Created)
				}
				kinds = append(kinds, kind)
			}
			slices.Sort(kinds)
			if want := []string{"secret.deleted", "secret.updated created=false", "secret.updated created=true"}; !slices.Equal(kinds, want) {
				t.Errorf("events %v, want %v", kinds, want)
			}

			// A rotation with a grace period: both secrets sign every
			// delivery, and a receiver knowing either one accepts it.
			stdout, stderr, err := cli(t, "webhook", "rotate-secret", "--data", dataDir, "--grace", "1h", "--json", s.id)
			if err != nil {
				t.Fatalf("webhook rotate-secret: %v\n%s", err, stderr)
			}
			var rotated struct {
				Secret string `json:"secret"`
			}
			if err := json.Unmarshal([]byte(stdout), &rotated); err != nil || !strings.HasPrefix(rotated.Secret, "whsec_") || rotated.Secret == s.secret {
				t.Fatalf("rotate-secret --json printed no new secret (%v)", err)
			}
			if err := s.rcv.SetSecrets(s.secret, rotated.Secret); err != nil {
				t.Fatal(err)
			}
			s.put(t, "after-rotation")
			if err := s.rcv.WaitTimeout(30*time.Second, delivered(4)); err != nil {
				t.Fatal(err)
			}
			last := s.rcv.Requests()[len(s.rcv.Requests())-1]
			if !last.Verified || !slices.Equal(last.Matched, []int{0, 1}) || len(strings.Fields(last.Signature)) != 2 {
				t.Fatalf("delivery during the grace period: verified %v, matched secrets %v, %d signatures; want both secrets' signatures",
					last.Verified, last.Matched, len(strings.Fields(last.Signature)))
			}
		})

		t.Run("503WithRetryAfterIsRetriedNoSooner", func(t *testing.T) {
			t.Parallel()
			// 6 s lies above the first retry's jitter ceiling (5 s): only
			// Retry-After can make the wait that long.
			const retryAfter = 6 * time.Second
			s := subscribe(t, srv, dataDir, "busy", func(q webhooktest.Request, n int) webhooktest.Response {
				if n == 0 {
					return webhooktest.Response{Status: 503, RetryAfter: "6"}
				}
				return webhooktest.Response{}
			})
			s.put(t, "db")
			if err := s.rcv.WaitTimeout(60*time.Second, delivered(1)); err != nil {
				t.Fatalf("%v: %+v", err, s.rcv.Requests())
			}
			qs := s.rcv.Requests()
			if len(qs) != 2 || qs[0].Status != 503 || qs[1].ID != qs[0].ID || !qs[1].Delivered() {
				t.Fatalf("attempts %+v, want a 503 and then a delivery of the same webhook-id", qs)
			}
			waited := qs[1].Received.Sub(qs[0].Answered)
			if waited < retryAfter || waited > retryAfter+10*time.Second {
				t.Fatalf("retried %v after the 503, want at least Retry-After (%v) and not much more", waited, retryAfter)
			}
			t.Logf("retried %v after a 503 with Retry-After: 6", waited.Round(time.Millisecond))
			ds := waitDeliveries(t, dataDir, s.id, false, 10*time.Second, func(ds []deliveryRecord) bool {
				return len(ds) == 1 && ds[0].State == "delivered"
			})
			if ds[0].Attempts != 2 {
				t.Errorf("delivery recorded %d attempts, want 2", ds[0].Attempts)
			}
		})

		t.Run("410DisablesTheEndpoint", func(t *testing.T) {
			t.Parallel()
			gone := subscribe(t, srv, dataDir, "gone", func(webhooktest.Request, int) webhooktest.Response {
				return webhooktest.Response{Status: 410}
			})
			// A second endpoint on the tenant shows when an event has
			// been fanned out, so that the first's silence means something.
			witness := startWebhookReceiver(t, nil)
			_, witnessSecret := subscribeURL(t, dataDir, "gone", witness.URL)
			if err := witness.SetSecrets(witnessSecret); err != nil {
				t.Fatal(err)
			}

			gone.put(t, "first")
			if err := gone.rcv.WaitTimeout(30*time.Second, func(qs []webhooktest.Request) bool { return len(qs) == 1 && qs[0].Status == 410 }); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(10 * time.Second)
			for !disabled(webhookRecords(t, dataDir), gone.id) {
				if time.Now().After(deadline) {
					t.Fatalf("subscription %s not disabled 10s after a 410", gone.id)
				}
				time.Sleep(100 * time.Millisecond)
			}
			stdout, _, err := cli(t, "webhook", "list", "--data", dataDir)
			if err != nil || !lineWith(stdout, gone.id, "disabled") {
				t.Errorf("webhook list does not show %s disabled:\n%s", gone.id, stdout)
			}
			waitDeliveries(t, dataDir, gone.id, true, 10*time.Second, func(ds []deliveryRecord) bool {
				return len(ds) == 1 && ds[0].LastStatus == 410 && ds[0].State == "failed"
			})

			gone.put(t, "second")
			if err := witness.WaitTimeout(30*time.Second, delivered(2)); err != nil {
				t.Fatal(err)
			}
			if n := len(gone.rcv.Requests()); n != 1 {
				t.Errorf("the disabled endpoint got %d attempts, want only the one it answered 410", n)
			}
		})

		t.Run("400IsFinalAndRedeliverSendsItAgain", func(t *testing.T) {
			t.Parallel()
			s := subscribe(t, srv, dataDir, "bad", func(q webhooktest.Request, n int) webhooktest.Response {
				if n == 0 {
					return webhooktest.Response{Status: 400}
				}
				return webhooktest.Response{}
			})
			s.put(t, "db")
			failed := waitDeliveries(t, dataDir, s.id, true, 30*time.Second, func(ds []deliveryRecord) bool { return len(ds) == 1 })
			if d := failed[0]; d.State != "failed" || d.LastStatus != 400 || d.Attempts != 1 || d.Key != "db" || d.Type != "secret.updated" {
				t.Fatalf("failed delivery %+v, want one attempt answered 400", d)
			}
			if n := len(s.rcv.Requests()); n != 1 {
				t.Fatalf("receiver got %d attempts of a delivery answered 400, want 1", n)
			}
			if _, stderr, err := cli(t, "webhook", "redeliver", "--data", dataDir, failed[0].ID); err != nil {
				t.Fatalf("webhook redeliver: %v\n%s", err, stderr)
			}
			if err := s.rcv.WaitTimeout(30*time.Second, delivered(1)); err != nil {
				t.Fatal(err)
			}
			qs := s.rcv.Requests()
			if len(qs) != 2 || qs[1].ID != qs[0].ID || qs[1].ID != failed[0].EventID {
				t.Fatalf("attempts %+v, want the redelivery under the same webhook-id %s", qs, failed[0].EventID)
			}
			waitDeliveries(t, dataDir, s.id, false, 10*time.Second, func(ds []deliveryRecord) bool { return len(ds) == 1 && ds[0].State == "delivered" })
			if ds := listDeliveries(t, dataDir, s.id, true); len(ds) != 0 {
				t.Errorf("--failed still lists %+v after the redelivery", ds)
			}
		})

		t.Run("HangingReceiverTimesOutAndIsRetried", func(t *testing.T) {
			t.Parallel()
			hang := make(chan struct{}) // never closed
			s := subscribe(t, srv, dataDir, "hang", func(q webhooktest.Request, n int) webhooktest.Response {
				if n == 0 {
					return webhooktest.Response{Hold: hang}
				}
				return webhooktest.Response{}
			})
			s.put(t, "db")
			if err := s.rcv.WaitTimeout(60*time.Second, delivered(1)); err != nil {
				t.Fatalf("%v: %+v", err, s.rcv.Requests())
			}
			qs := s.rcv.Requests()
			if len(qs) != 2 || !qs[0].Gone || qs[1].ID != qs[0].ID || !qs[1].Delivered() {
				t.Fatalf("attempts %+v, want one the sender gave up on, then a delivery of the same webhook-id", qs)
			}
			// The sender's timeout is 10 s (from before the receiver saw
			// the request, so a little less from here).
			if held := qs[0].Answered.Sub(qs[0].Received); held < 9*time.Second || held > 20*time.Second {
				t.Errorf("the sender gave up after %v, want its 10 s timeout", held)
			}
			waitDeliveries(t, dataDir, s.id, false, 10*time.Second, func(ds []deliveryRecord) bool {
				return len(ds) == 1 && ds[0].State == "delivered" && ds[0].Attempts == 2
			})
		})
	})
}

// TestWebhook_PrivateDestinationRefused: without --webhook-allow-private a
// loopback endpoint is never posted to; the delivery fails at once with a
// phrase of ours.
func TestWebhook_PrivateDestinationRefused(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	srv := startServer(t, dataDir, newMasterKey(t), "--webhook-allow-insecure")
	s := subscribe(t, srv, dataDir, "private", nil)
	s.put(t, "db")
	ds := waitDeliveries(t, dataDir, s.id, true, 30*time.Second, func(ds []deliveryRecord) bool { return len(ds) == 1 })
	if d := ds[0]; d.State != "failed" || d.LastError != "destination refused" || d.LastStatus != 0 {
		t.Fatalf("delivery to loopback %+v, want failed with \"destination refused\"", d)
	}
	if n := len(s.rcv.Requests()); n != 0 {
		t.Fatalf("the loopback receiver got %d requests, want none", n)
	}
}

func disabled(subs []webhookRecord, id string) bool {
	for _, s := range subs {
		if s.ID == id {
			return s.DisabledAt != nil
		}
	}
	return false
}

// lineWith reports whether some line of s contains every one of parts.
func lineWith(s string, parts ...string) bool {
	for line := range strings.SplitSeq(s, "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			return true
		}
	}
	return false
}
