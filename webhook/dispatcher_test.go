package webhook_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/bolt"
	"github.com/neostore/neostore-secrets/webhook"
)

// store is what the dispatcher tests need of a store: secrets to change
// and the webhook side the dispatcher reads.
type store interface {
	neostore.SecretStore
	neostore.WebhookStore
}

func openBolt(t *testing.T) store {
	t.Helper()
	s, err := bolt.Open(filepath.Join(t.TempDir(), "store.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// plainOpener stands in for the master key: the "sealed" secret is the
// secret, bound to its subscription by a prefix.
type plainOpener struct{}

func (plainOpener) OpenSigningSecret(id string, sealed []byte) ([]byte, error) {
	s, ok := strings.CutPrefix(string(sealed), id+":")
	if !ok {
		return nil, io.ErrUnexpectedEOF
	}
	return []byte(s), nil
}

// message is what the receiver got.
type message struct {
	ID        string `json:"-"` // the headers
	Timestamp string `json:"-"`
	Signature string `json:"-"`
	Body      []byte `json:"-"`
	Type      string `json:"type"`
	Data      struct {
		TenantID  string  `json:"tenantId"`
		Key       string  `json:"key"`
		NotBefore *string `json:"notBefore"`
		ExpiresOn *string `json:"expiresOn"`
		DueAt     *string `json:"dueAt"`
		TraceID   *string `json:"traceId"`
		Created   *bool   `json:"created"`
	} `json:"data"`
}

// line is how a test states a message it expects: type and dueAt (or
// "-" for none).
func (m message) line() string {
	due := "-"
	if m.Data.DueAt != nil {
		due = *m.Data.DueAt
	}
	return m.Type + " " + due
}

// rig is a dispatcher on a real store, with a clock the test moves and a
// loopback receiver whose answers the test chooses.
type rig struct {
	t       *testing.T
	store   store
	d       *webhook.Dispatcher
	sub     neostore.WebhookSubscription
	secret  string
	opts    webhook.Options
	wake    chan struct{} // a message arrived
	release chan struct{} // closed: the held answers go

	mu       sync.Mutex
	now      time.Time
	got      []message
	status   func(n int) (int, http.Header) // the answer to the nth request (from 1)
	seen     map[string]int                 // webhook-id → times received
	requests int
}

// hang is an answer that never comes: the receiver holds the request
// until the client gives up.
const hang = -1

// held is an answer that waits for r.release to be closed, then 204.
const held = -2

var t0 = time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)

func newRig(t *testing.T, st store, tweak func(*webhook.Options), leads ...time.Duration) *rig {
	t.Helper()
	r := &rig{t: t, store: st, now: t0, seen: map[string]int{}, wake: make(chan struct{}, 1), release: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(r.receive))
	t.Cleanup(srv.Close)
	secret, err := webhook.NewSigningSecret()
	if err != nil {
		t.Fatal(err)
	}
	r.secret = secret
	r.sub = neostore.WebhookSubscription{
		ID: "wh_test", Name: "test", Tenant: "demo", URL: srv.URL + "/hook", Leads: leads,
		Secrets: []neostore.WebhookSecret{{Sealed: []byte("wh_test:" + secret)}}, CreatedAt: t0.Add(-time.Hour),
	}
	if err := st.CreateWebhook(context.Background(), r.sub); err != nil {
		t.Fatal(err)
	}
	opts := webhook.Options{
		Store: st, Opener: plainOpener{}, Now: r.clock, Owner: "test",
		AllowInsecure: true, AllowPrivate: true, // the receiver is on loopback
		Jitter: func(d time.Duration) time.Duration { return d }, // the ceiling: a schedule the test can state
		Logger: slog.New(slog.DiscardHandler),
	}
	if tweak != nil {
		tweak(&opts)
	}
	r.opts = opts
	r.d = webhook.New(opts)
	r.step() // the first scan starts the due cursor at t0
	return r
}

func (r *rig) clock() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.now
}

func (r *rig) set(t time.Time) {
	r.mu.Lock()
	r.now = t
	r.mu.Unlock()
}

func (r *rig) receive(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	m := message{ID: req.Header.Get("webhook-id"), Timestamp: req.Header.Get("webhook-timestamp"), Signature: req.Header.Get("webhook-signature"), Body: body}
	if err := json.Unmarshal(body, &m); err != nil {
		r.t.Errorf("receiver: body %q: %v", body, err)
	}
	r.mu.Lock()
	r.got = append(r.got, m)
	r.seen[m.ID]++
	r.requests++
	n, answer := r.requests, r.status
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	status := http.StatusNoContent
	if answer != nil {
		var h http.Header
		status, h = answer(n)
		for k, v := range h {
			w.Header()[k] = v
		}
	}
	if status == hang {
		<-req.Context().Done() // the client's timeout ends it
		return
	}
	if status == held {
		select {
		case <-r.release:
			status = http.StatusNoContent
		case <-req.Context().Done():
			return
		}
	}
	w.WriteHeader(status)
}

// step makes one dispatcher pass and returns the messages it delivered,
// each checked for its signature.
func (r *rig) step() []message {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.d.Step(ctx); err != nil {
		r.t.Fatalf("Step: %v", err)
	}
	r.mu.Lock()
	got := r.got
	r.got = nil
	r.mu.Unlock()
	key, _ := webhook.SigningKey([]byte(r.secret))
	for _, m := range got {
		sec, err := strconv.ParseInt(m.Timestamp, 10, 64)
		if err != nil {
			r.t.Errorf("message %s: webhook-timestamp %q", m.ID, m.Timestamp)
		}
		if want := webhook.Sign(key, m.ID, time.Unix(sec, 0), m.Body); m.Signature != want {
			r.t.Errorf("message %s: signature %q does not verify", m.ID, m.Signature)
		}
	}
	return got
}

// stepAt moves the clock to at and makes a pass; it returns the lines of
// the messages delivered, sorted.
func (r *rig) stepAt(at time.Time) []string {
	r.t.Helper()
	r.set(at)
	var lines []string
	for _, m := range r.step() {
		lines = append(lines, m.line())
	}
	slices.Sort(lines)
	return lines
}

func (r *rig) put(key string, v neostore.Validity) {
	r.t.Helper()
	now := r.clock()
	id := neostore.NewEventID()
	err := r.store.PutSecret(context.Background(), "demo", key, neostore.SealedSecret{
		Ciphertext: []byte("sealed"), Validity: v, Times: neostore.SecretTimes{CreatedOn: neostore.At(now), UpdatedOn: neostore.At(now)},
	}, neostore.Change{Notice: &neostore.ChangeNotice{EventID: id, TraceID: "trace-" + key, At: now}})
	if err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) del(key string) {
	r.t.Helper()
	id := neostore.NewEventID()
	if err := r.store.DeleteSecret(context.Background(), "demo", key, neostore.Change{Notice: &neostore.ChangeNotice{EventID: id, TraceID: "trace-del", At: r.clock()}}); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) noDuplicates() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, n := range r.seen {
		if n != 1 {
			r.t.Errorf("message %s received %d times", id, n)
		}
	}
}

func expires(at time.Time) neostore.Validity {
	return neostore.Validity{ExpiresOn: neostore.At(at)}
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

const day = 24 * time.Hour

func want(t *testing.T, when string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: got %q, want %q", when, got, want)
	}
}

// clockTests are the "must show" with an injected clock, on the
// store open returns.
func clockTests(t *testing.T, open func(t *testing.T) store) {
	leads := []time.Duration{168 * time.Hour, 24 * time.Hour}

	t.Run("ExpiringLeadsThenExpired", func(t *testing.T) {
		r := newRig(t, open(t), nil, leads...)
		r.put("db", expires(t0.Add(8*day)))
		want(t, "the put", r.stepAt(t0), "secret.updated -")
		want(t, "just before the 7-day lead", r.stepAt(t0.Add(day-time.Second)))
		want(t, "at the 7-day lead", r.stepAt(t0.Add(day)), "secret.expiring "+ts(t0.Add(day)))
		want(t, "again", r.stepAt(t0.Add(day+time.Minute)))
		want(t, "at the 1-day lead", r.stepAt(t0.Add(7*day)), "secret.expiring "+ts(t0.Add(7*day)))
		want(t, "before expiry", r.stepAt(t0.Add(8*day-time.Nanosecond)))
		want(t, "at expiry", r.stepAt(t0.Add(8*day)), "secret.expired "+ts(t0.Add(8*day)))
		want(t, "after", r.stepAt(t0.Add(30*day)))
		r.noDuplicates()
	})

	t.Run("PutMovesWindow", func(t *testing.T) {
		r := newRig(t, open(t), nil, leads...)
		r.put("db", expires(t0.Add(8*day)))
		want(t, "the put", r.stepAt(t0), "secret.updated -")
		want(t, "7-day lead", r.stepAt(t0.Add(day)), "secret.expiring "+ts(t0.Add(day)))
		r.set(t0.Add(2 * day))
		r.put("db", expires(t0.Add(20*day)))
		want(t, "the second put", r.stepAt(t0.Add(2*day)), "secret.updated -")
		want(t, "the old window's 1-day lead", r.stepAt(t0.Add(7*day)))
		want(t, "the old window's end", r.stepAt(t0.Add(8*day)))
		want(t, "the new 7-day lead", r.stepAt(t0.Add(13*day)), "secret.expiring "+ts(t0.Add(13*day)))
		want(t, "the new 1-day lead", r.stepAt(t0.Add(19*day)), "secret.expiring "+ts(t0.Add(19*day)))
		want(t, "the new end", r.stepAt(t0.Add(20*day)), "secret.expired "+ts(t0.Add(20*day)))
		r.noDuplicates()
	})

	t.Run("DeleteCancels", func(t *testing.T) {
		r := newRig(t, open(t), nil, leads...)
		r.put("db", expires(t0.Add(8*day)))
		want(t, "the put", r.stepAt(t0), "secret.updated -")
		r.set(t0.Add(12 * time.Hour))
		r.del("db")
		want(t, "the delete", r.stepAt(t0.Add(12*time.Hour)), "secret.deleted -")
		want(t, "through the old window", r.stepAt(t0.Add(30*day)))
	})

	t.Run("PutWithLessTimeLeftThanLeads", func(t *testing.T) {
		r := newRig(t, open(t), nil, 720*time.Hour, 168*time.Hour, 24*time.Hour)
		r.put("db", expires(t0.Add(2*time.Hour)))
		want(t, "the put", r.stepAt(t0),
			"secret.expiring "+ts(t0.Add(2*time.Hour-720*time.Hour)),
			"secret.expiring "+ts(t0.Add(2*time.Hour-168*time.Hour)),
			"secret.expiring "+ts(t0.Add(2*time.Hour-24*time.Hour)),
			"secret.updated -")
		want(t, "at expiry", r.stepAt(t0.Add(2*time.Hour)), "secret.expired "+ts(t0.Add(2*time.Hour)))
		want(t, "after", r.stepAt(t0.Add(40*day)))
		r.noDuplicates()
	})

	t.Run("DowntimeSendsEachOnceLate", func(t *testing.T) {
		r := newRig(t, open(t), nil, leads...)
		r.put("db", expires(t0.Add(8*day)))
		r.put("other", neostore.Validity{NotBefore: neostore.At(t0.Add(3 * day))})
		want(t, "the puts", r.stepAt(t0), "secret.updated -", "secret.updated -")
		want(t, "after ten days down", r.stepAt(t0.Add(10*day)),
			"secret.activated "+ts(t0.Add(3*day)),
			"secret.expired "+ts(t0.Add(8*day)),
			"secret.expiring "+ts(t0.Add(day)),
			"secret.expiring "+ts(t0.Add(7*day)))
		want(t, "after", r.stepAt(t0.Add(40*day)))
		r.noDuplicates()
	})

	t.Run("ChangeEvents", func(t *testing.T) {
		r := newRig(t, open(t), nil)
		nb := t0.Add(-day)
		r.put("db", neostore.Validity{NotBefore: neostore.At(nb), ExpiresOn: neostore.At(t0.Add(100 * day))})
		r.set(t0.Add(time.Minute))
		r.put("db", neostore.Validity{})
		r.set(t0.Add(2 * time.Minute))
		r.del("db")
		r.del("never-stored")
		got := r.step()
		if len(got) != 3 {
			t.Fatalf("got %d messages, want 3: %+v", len(got), got)
		}
		byType := map[string][]message{}
		for _, m := range got {
			byType[m.Type] = append(byType[m.Type], m)
		}
		up := byType["secret.updated"]
		if len(up) != 2 || len(byType["secret.deleted"]) != 1 {
			t.Fatalf("got %v, want two secret.updated and one secret.deleted", byType)
		}
		created := []bool{}
		for _, m := range up {
			if m.Data.Created == nil {
				t.Fatalf("secret.updated without created: %s", m.Body)
			}
			created = append(created, *m.Data.Created)
		}
		if !slices.Contains(created, true) || !slices.Contains(created, false) {
			t.Fatalf("created flags %v, want one true (first put) and one false", created)
		}
		for _, m := range up {
			if *m.Data.Created && (m.Data.NotBefore == nil || *m.Data.NotBefore != ts(nb) || *m.Data.ExpiresOn != ts(t0.Add(100*day))) {
				t.Errorf("the creating put's window: %s", m.Body)
			}
			if !*m.Data.Created && (m.Data.NotBefore != nil || m.Data.ExpiresOn != nil) {
				t.Errorf("the second put's window should be open: %s", m.Body)
			}
		}
		dm := byType["secret.deleted"][0]
		if dm.Data.Created != nil || dm.Data.TraceID == nil || *dm.Data.TraceID != "trace-del" || dm.Data.TenantID != "demo" || dm.Data.Key != "db" {
			t.Errorf("secret.deleted: %s", dm.Body)
		}
		for _, m := range got {
			if strings.Contains(string(m.Body), "sealed") {
				t.Errorf("a message carries the ciphertext: %s", m.Body)
			}
		}
	})
}

func TestDispatcher_Clock_Bolt(t *testing.T) {
	clockTests(t, openBolt)
}

// answers makes the receiver answer the nth request with statuses[n-1]
// (and 204 after them), with the Retry-After of the same index if any.
func (r *rig) answers(statuses []int, retryAfter ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status = func(n int) (int, http.Header) {
		if n > len(statuses) {
			return http.StatusNoContent, nil
		}
		h := http.Header{}
		if n <= len(retryAfter) && retryAfter[n-1] != "" {
			h.Set("Retry-After", retryAfter[n-1])
		}
		return statuses[n-1], h
	}
}

// delivery returns the subscription's only delivery.
func (r *rig) delivery() neostore.Delivery {
	r.t.Helper()
	ds, err := r.store.ListDeliveries(context.Background(), r.sub.ID, false, 100)
	if err != nil {
		r.t.Fatal(err)
	}
	if len(ds) != 1 {
		r.t.Fatalf("%d deliveries, want 1: %+v", len(ds), ds)
	}
	return ds[0]
}

func (r *rig) wantDelivery(state neostore.DeliveryState, attempts, status int, lastError string) neostore.Delivery {
	r.t.Helper()
	d := r.delivery()
	if d.State != state || d.Attempts != attempts || d.LastStatus != status || d.LastError != lastError {
		r.t.Fatalf("delivery %s: %s, %d attempts, last %d %q; want %s, %d, %d %q",
			d.ID, d.State, d.Attempts, d.LastStatus, d.LastError, state, attempts, status, lastError)
	}
	return d
}

// finalStateTests are the retry schedule and the final states, on the
// store open returns.
func finalStateTests(t *testing.T, open func(t *testing.T) store) {
	t.Run("503RetryAfterThenDelivered", func(t *testing.T) {
		r := newRig(t, open(t), nil)
		r.answers([]int{503, 503}, "120", t0.Add(120*time.Second+time.Hour).Format(http.TimeFormat))
		r.put("db", neostore.Validity{})
		first := r.step()
		d := r.wantDelivery(neostore.DeliveryPending, 1, 503, "retryable status")
		if !d.NextAttemptAt.Equal(t0.Add(120 * time.Second)) {
			t.Fatalf("next attempt at %v, want t0+120s (Retry-After over the 5s backoff)", d.NextAttemptAt)
		}
		want(t, "before Retry-After", r.stepAt(t0.Add(119*time.Second)))
		r.set(t0.Add(120 * time.Second))
		second := r.step()
		if len(first) != 1 || len(second) != 1 || first[0].ID != second[0].ID {
			t.Fatalf("the retry's webhook-id differs or is missing: %v, %v", first, second)
		}
		// The second 503 names an HTTP date an hour on.
		d = r.wantDelivery(neostore.DeliveryPending, 2, 503, "retryable status")
		if !d.NextAttemptAt.Equal(t0.Add(120*time.Second + time.Hour)) {
			t.Fatalf("next attempt at %v, want the Retry-After date", d.NextAttemptAt)
		}
		r.set(d.NextAttemptAt)
		if got := r.step(); len(got) != 1 || got[0].ID != first[0].ID {
			t.Fatalf("third attempt: %v", got)
		}
		d = r.wantDelivery(neostore.DeliveryDelivered, 3, 204, "")
		if !d.FinishedAt.Set {
			t.Fatal("delivered without FinishedAt")
		}
	})

	t.Run("410DisablesEndpoint", func(t *testing.T) {
		r := newRig(t, open(t), nil)
		r.answers([]int{503, 410})
		r.put("db", neostore.Validity{})
		want(t, "the first put", r.stepAt(t0), "secret.updated -") // 503: again at t0+5s
		r.set(t0.Add(time.Second))
		r.put("db2", neostore.Validity{})
		want(t, "the second put", r.stepAt(t0.Add(time.Second)), "secret.updated -") // 410
		sub, err := r.store.GetWebhook(context.Background(), r.sub.ID)
		if err != nil || !sub.DisabledAt.Set || !sub.DisabledAt.At.Equal(t0.Add(time.Second)) {
			t.Fatalf("subscription after 410: %+v, %v; want disabled at t0+1s", sub, err)
		}
		// The first put's retry finds the endpoint disabled: failed, not sent.
		want(t, "the first put's retry", r.stepAt(t0.Add(5*time.Second)))
		ds, err := r.store.ListDeliveries(context.Background(), r.sub.ID, true, 10)
		if err != nil || len(ds) != 2 {
			t.Fatalf("failed deliveries: %+v, %v; want 2", ds, err)
		}
		errs := []string{ds[0].LastError, ds[1].LastError}
		slices.Sort(errs)
		if !slices.Equal(errs, []string{"endpoint disabled", "endpoint gone"}) {
			t.Fatalf("last errors %q", errs)
		}
		r.put("db3", neostore.Validity{})
		want(t, "a change after disabling", r.stepAt(t0.Add(time.Hour)))
	})

	t.Run("400Final", func(t *testing.T) {
		r := newRig(t, open(t), nil)
		r.answers([]int{400})
		r.put("db", neostore.Validity{})
		r.step()
		r.wantDelivery(neostore.DeliveryFailed, 1, 400, "final status")
		want(t, "later", r.stepAt(t0.Add(day)))
	})

	t.Run("HangingReceiverTimesOut", func(t *testing.T) {
		r := newRig(t, open(t), func(o *webhook.Options) { o.Timeout = 200 * time.Millisecond })
		r.answers([]int{hang})
		r.put("db", neostore.Validity{})
		start := time.Now()
		r.step()
		if el := time.Since(start); el > 5*time.Second {
			t.Fatalf("a pass with a hanging receiver took %v", el)
		}
		d := r.wantDelivery(neostore.DeliveryPending, 1, 0, "timeout")
		if !d.NextAttemptAt.Equal(t0.Add(5 * time.Second)) {
			t.Fatalf("next attempt at %v, want t0+5s", d.NextAttemptAt)
		}
		r.set(t0.Add(5 * time.Second))
		r.step()
		r.wantDelivery(neostore.DeliveryDelivered, 2, 204, "")
	})

	t.Run("RetryForCutOff", func(t *testing.T) {
		r := newRig(t, open(t), func(o *webhook.Options) { o.RetryFor = time.Hour })
		r.answers(slices.Repeat([]int{503}, 100))
		r.put("db", neostore.Validity{})
		ids := map[string]bool{}
		for i := 0; i < 50; i++ {
			for _, m := range r.step() {
				ids[m.ID] = true
			}
			d := r.delivery()
			if d.State != neostore.DeliveryPending {
				break
			}
			r.set(d.NextAttemptAt)
		}
		// Waits 5s, 10s, ... 1280s: attempt 10 at 2555s would wait
		// 2560s more, past the hour.
		d := r.wantDelivery(neostore.DeliveryFailed, 10, 503, "out of retries: retryable status")
		if !d.FinishedAt.Set || !d.FinishedAt.At.Equal(t0.Add(2555*time.Second)) || len(ids) != 1 {
			t.Fatalf("finished %v, %d webhook-ids; want at t0+2555s with one id", d.FinishedAt, len(ids))
		}
	})

	t.Run("RefusedPrivateDestination", func(t *testing.T) {
		r := newRig(t, open(t), func(o *webhook.Options) { o.AllowPrivate = false })
		r.put("db", neostore.Validity{})
		if got := r.step(); len(got) != 0 {
			t.Fatalf("the loopback receiver got %d messages", len(got))
		}
		r.wantDelivery(neostore.DeliveryFailed, 1, 0, "destination refused")
	})

	t.Run("SendTest", func(t *testing.T) {
		r := newRig(t, open(t), nil)
		o, err := r.d.SendTest(context.Background(), r.sub)
		if err != nil || o.Result != webhook.Delivered || o.Status != 204 {
			t.Fatalf("SendTest: %+v, %v", o, err)
		}
		got := r.step()
		if len(got) != 1 || got[0].Type != "webhook.test" || !strings.Contains(string(got[0].Body), `"subscriptionId":"wh_test"`) {
			t.Fatalf("got %+v", got)
		}
		if ds, _ := r.store.ListDeliveries(context.Background(), r.sub.ID, false, 10); len(ds) != 0 {
			t.Fatalf("a test left %d deliveries", len(ds))
		}
		refusing := newRig(t, open(t), func(o *webhook.Options) { o.AllowPrivate = false })
		if o, err := refusing.d.SendTest(context.Background(), refusing.sub); err != nil || o != (webhook.Outcome{Result: webhook.Failed, Error: "destination refused"}) {
			t.Fatalf("SendTest to a refused destination: %+v, %v", o, err)
		}
	})
}

func TestDispatcher_FinalStates_Bolt(t *testing.T) {
	finalStateTests(t, openBolt)
}
