package webhooktest

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The test vector of the specification's reference libraries (every one of
// them, libraries/*/ in github.com/standard-webhooks/standard-webhooks,
// checks its signer against it).
const (
	vectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTimestamp = 1614265330
	vectorBody      = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	// A well-formed v1 signature of something else, from the same tests.
	otherSignature = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
)

var vectorTime = time.Unix(vectorTimestamp, 0)

func mustKey(t *testing.T, s string) []byte {
	t.Helper()
	k, err := DecodeSecret(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newSecret(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	rand.Read(b)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

func TestSign_SpecificationVector(t *testing.T) {
	if got := Sign(mustKey(t, vectorSecret), vectorID, vectorTimestamp, []byte(vectorBody)); got != vectorSignature {
		t.Fatalf("Sign = %s, want %s", got, vectorSignature)
	}
	// The prefix is optional in the serialized secret.
	if got := Sign(mustKey(t, strings.TrimPrefix(vectorSecret, "whsec_")), vectorID, vectorTimestamp, []byte(vectorBody)); got != vectorSignature {
		t.Fatalf("Sign without the whsec_ prefix = %s, want %s", got, vectorSignature)
	}
}

func TestVerify(t *testing.T) {
	key := mustKey(t, vectorSecret)
	ts := strconv.Itoa(vectorTimestamp)
	for _, tc := range []struct {
		name            string
		id, ts, sig     string
		body            string
		now             time.Time
		wantErr         error
		wantMatchedKey0 bool
	}{
		{name: "Vector", id: vectorID, ts: ts, sig: vectorSignature, body: vectorBody, now: vectorTime, wantMatchedKey0: true},
		{name: "VectorAmongOtherSchemes", id: vectorID, ts: ts, body: vectorBody, now: vectorTime, wantMatchedKey0: true,
			sig: otherSignature + " v2," + strings.TrimPrefix(otherSignature, "v1,") + " " + vectorSignature + " v1a,AAAA"},
		{name: "TamperedBody", id: vectorID, ts: ts, sig: vectorSignature, body: `{"test": 2432232315}`, now: vectorTime, wantErr: ErrNoSignature},
		{name: "BodyWithAStraySpace", id: vectorID, ts: ts, sig: vectorSignature, body: `{"test":  2432232314}`, now: vectorTime, wantErr: ErrNoSignature},
		{name: "TamperedID", id: "msg_p5jXN8AQM9LWM0D4loKWxJeK", ts: ts, sig: vectorSignature, body: vectorBody, now: vectorTime, wantErr: ErrNoSignature},
		{name: "TamperedTimestamp", id: vectorID, ts: strconv.Itoa(vectorTimestamp + 1), sig: vectorSignature, body: vectorBody, now: vectorTime, wantErr: ErrNoSignature},
		{name: "OtherSignature", id: vectorID, ts: ts, sig: otherSignature, body: vectorBody, now: vectorTime, wantErr: ErrNoSignature},
		{name: "PartialSignature", id: vectorID, ts: ts, sig: "v1,", body: vectorBody, now: vectorTime, wantErr: ErrNoSignature},
		{name: "RightBytesWrongVersion", id: vectorID, ts: ts, sig: "v2," + strings.TrimPrefix(vectorSignature, "v1,"), body: vectorBody, now: vectorTime, wantErr: ErrNoSignature},
		{name: "MissingID", ts: ts, sig: vectorSignature, body: vectorBody, now: vectorTime, wantErr: ErrMissingHeader},
		{name: "MissingTimestamp", id: vectorID, sig: vectorSignature, body: vectorBody, now: vectorTime, wantErr: ErrMissingHeader},
		{name: "MissingSignature", id: vectorID, ts: ts, body: vectorBody, now: vectorTime, wantErr: ErrMissingHeader},
		{name: "TimestampNotAnInteger", id: vectorID, ts: "2021-02-25T15:02:10Z", sig: vectorSignature, body: vectorBody, now: vectorTime, wantErr: ErrTimestamp},
		{name: "AtTheEndOfTolerance", id: vectorID, ts: ts, sig: vectorSignature, body: vectorBody, now: vectorTime.Add(DefaultTolerance), wantMatchedKey0: true},
		{name: "TooOld", id: vectorID, ts: ts, sig: vectorSignature, body: vectorBody, now: vectorTime.Add(DefaultTolerance + time.Second), wantErr: ErrTooOld},
		{name: "TooNew", id: vectorID, ts: ts, sig: vectorSignature, body: vectorBody, now: vectorTime.Add(-DefaultTolerance - time.Second), wantErr: ErrTooNew},
	} {
		t.Run(tc.name, func(t *testing.T) {
			matched, err := Verify([][]byte{key}, tc.id, tc.ts, tc.sig, []byte(tc.body), tc.now, DefaultTolerance)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Verify = %v, want %v", err, tc.wantErr)
			}
			if got := len(matched) == 1 && matched[0] == 0; got != tc.wantMatchedKey0 {
				t.Fatalf("matched = %v, want key 0 matched: %v", matched, tc.wantMatchedKey0)
			}
		})
	}
}

// TestVerify_Rotation: during a rotation the header carries one signature
// per live secret; a consumer that knows either secret accepts it, and one
// that knows both sees both match.
func TestVerify_Rotation(t *testing.T) {
	oldKey, newKey, strangerKey := mustKey(t, newSecret(t)), mustKey(t, newSecret(t)), mustKey(t, newSecret(t))
	now := time.Now()
	id, ts, body := "msg_rotation", now.Unix(), []byte(`{"type":"secret.updated"}`)
	header := Sign(newKey, id, ts, body) + " " + Sign(oldKey, id, ts, body)
	tss := strconv.FormatInt(ts, 10)
	for _, tc := range []struct {
		name string
		keys [][]byte
		want []int
	}{
		{"OldSecretOnly", [][]byte{oldKey}, []int{0}},
		{"NewSecretOnly", [][]byte{newKey}, []int{0}},
		{"Both", [][]byte{oldKey, newKey}, []int{0, 1}},
		{"StrangerThenNew", [][]byte{strangerKey, newKey}, []int{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Verify(tc.keys, id, tss, header, body, now, DefaultTolerance)
			if err != nil || len(got) != len(tc.want) || (len(got) > 0 && (got[0] != tc.want[0] || got[len(got)-1] != tc.want[len(tc.want)-1])) {
				t.Fatalf("Verify = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	if _, err := Verify([][]byte{strangerKey}, id, tss, header, body, now, DefaultTolerance); !errors.Is(err, ErrNoSignature) {
		t.Fatalf("Verify with neither secret = %v, want ErrNoSignature", err)
	}
}

func TestDecodeSecret_Refuses(t *testing.T) {
	for _, s := range []string{"", "whsec_", "whsec_not base64!"} {
		if _, err := DecodeSecret(s); err == nil {
			t.Errorf("DecodeSecret(%q) = nil error", s)
		}
	}
}

// post sends one signed delivery to the receiver.
func post(t *testing.T, url string, key []byte, id string, ts int64, body string, tamper func(*http.Request)) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", Sign(key, id, ts, []byte(body)))
	req.Header.Set("Content-Type", "application/json")
	if tamper != nil {
		tamper(req)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

const event = `{"type":"secret.updated","timestamp":"2099-01-01T00:00:00Z","data":{"tenantId":"demo","key":"db","notBefore":null,"expiresOn":null,"dueAt":null,"traceId":"t","created":true}}`

func TestReceiver_RecordsAndRejects(t *testing.T) {
	secret := newSecret(t)
	r, err := Start(Options{Secrets: []string{secret}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	key := mustKey(t, secret)
	now := time.Now().Unix()

	if resp := post(t, r.URL, key, "msg_a", now, event, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("valid delivery answered %d, want 204", resp.StatusCode)
	}
	tampered := strings.Replace(event, `"demo"`, `"evil"`, 1)
	if resp := post(t, r.URL, key, "msg_b", now, event, func(req *http.Request) {
		req.Body = nopCloser{strings.NewReader(tampered)}
		req.ContentLength = int64(len(tampered))
	}); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("tampered body answered %d, want 400", resp.StatusCode)
	}
	if resp := post(t, r.URL, key, "msg_c", now-int64(DefaultTolerance/time.Second)-10, event, nil); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("replayed old delivery answered %d, want 400", resp.StatusCode)
	}
	if resp := post(t, r.URL, key, "msg_a", now, event, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("redelivery answered %d, want 204", resp.StatusCode)
	}

	got := r.Requests()
	if len(got) != 4 {
		t.Fatalf("recorded %d requests, want 4", len(got))
	}
	first := got[0]
	if !first.Delivered() || first.ID != "msg_a" || first.Type != "secret.updated" || first.Tenant != "demo" || first.Key != "db" ||
		first.Created == nil || !*first.Created || !bytes.Equal(first.Body, []byte(event)) {
		t.Errorf("first request recorded as %+v", first)
	}
	if got[1].Verified || got[1].Tenant != "evil" || got[1].Problem == "" {
		t.Errorf("tampered request recorded as verified=%v tenant=%q problem=%q", got[1].Verified, got[1].Tenant, got[1].Problem)
	}
	if got[2].Verified {
		t.Errorf("old request recorded as verified")
	}
	s := Summarize(got)
	if s.Attempts != 4 || s.Invalid != 2 || s.Delivered != 1 || s.Duplicates != 1 || len(s.Conflicts) != 0 {
		t.Errorf("Summarize = %+v", s)
	}
}

func TestReceiver_ScriptedAnswers(t *testing.T) {
	secret := newSecret(t)
	key := mustKey(t, secret)
	hold := make(chan struct{})
	r, err := Start(Options{Secrets: []string{secret}, Respond: func(q Request, n int) Response {
		switch q.ID {
		case "msg_busy":
			if n == 0 {
				return Response{Status: 503, RetryAfter: "1"}
			}
		case "msg_gone":
			return Response{Status: 410}
		case "msg_held":
			return Response{Hold: hold}
		case "msg_hang":
			return Response{Hold: make(chan struct{})}
		}
		return Response{}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	now := time.Now().Unix()

	resp := post(t, r.URL, key, "msg_busy", now, event, nil)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("first attempt answered %d Retry-After %q, want 503 and 1", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if resp := post(t, r.URL, key, "msg_busy", now, event, nil); resp.StatusCode != 204 {
		t.Fatalf("second attempt answered %d, want 204", resp.StatusCode)
	}
	if resp := post(t, r.URL, key, "msg_gone", now, event, nil); resp.StatusCode != 410 {
		t.Fatalf("answered %d, want 410", resp.StatusCode)
	}

	answered := make(chan int, 1)
	go func() { answered <- post(t, r.URL, key, "msg_held", now, event, nil).StatusCode }()
	if err := r.WaitTimeout(10*time.Second, func(qs []Request) bool {
		return len(qs) == 4 && qs[3].ID == "msg_held" && qs[3].Status == 0
	}); err != nil {
		t.Fatal(err)
	}
	close(hold)
	if got := <-answered; got != 204 {
		t.Fatalf("held attempt answered %d after the release, want 204", got)
	}

	// A hang ends when the sender gives up: recorded as gone.
	client := &http.Client{Timeout: 200 * time.Millisecond}
	req, _ := http.NewRequest(http.MethodPost, r.URL, strings.NewReader(event))
	req.Header.Set("webhook-id", "msg_hang")
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now, 10))
	req.Header.Set("webhook-signature", Sign(key, "msg_hang", now, []byte(event)))
	if _, err := client.Do(req); err == nil {
		t.Fatal("a hanging receiver answered")
	}
	if err := r.WaitTimeout(10*time.Second, func(qs []Request) bool { return len(qs) == 5 && qs[4].Gone }); err != nil {
		t.Fatalf("the abandoned attempt was not recorded as gone: %v", err)
	}
	s := Summarize(r.Requests())
	if s.Delivered != 2 || s.Duplicates != 0 {
		t.Errorf("Summarize = %+v, want msg_busy and msg_held delivered once", s)
	}
}

type nopCloser struct{ *strings.Reader }

func (nopCloser) Close() error { return nil }
