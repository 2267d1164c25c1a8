package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets"
)

var testNow = date("2099-01-01T00:00:00Z")

func testSender(t *testing.T, timeout time.Duration, allowPrivate bool) *sender {
	t.Helper()
	s := newSender(timeout, allowPrivate, true, nil, func() time.Time { return testNow })
	t.Cleanup(s.client.CloseIdleConnections)
	return s
}

// receiver starts a loopback server answering with h and counting requests.
func receiver(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func sendOnce(t *testing.T, s *sender, url string) Outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return s.send(ctx, url, vectorID, time.Unix(vectorTimestamp, 0), []byte(vectorPayload), [][]byte{vectorKey(t)})
}

func TestSend_HeadersVerifyIndependently(t *testing.T) {
	got := make(chan *http.Request, 1)
	var body []byte
	srv, _ := receiver(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ = io.ReadAll(r.Body)
		got <- r
		w.WriteHeader(http.StatusNoContent)
	})
	if o := sendOnce(t, testSender(t, time.Second, true), srv.URL+"/hook"); o.Result != Delivered || o.Status != 204 || o.Error != "" {
		t.Fatalf("outcome %v, want delivered 204", o)
	}
	r := <-got
	if r.Method != http.MethodPost || r.URL.Path != "/hook" {
		t.Fatalf("got %s %s", r.Method, r.URL.Path)
	}
	for h, want := range map[string]string{
		"webhook-id": vectorID, "webhook-timestamp": "1614265330", "webhook-signature": vectorSignature,
		"Content-Type": "application/json", "User-Agent": "neostore-secrets-webhooks/1",
	} {
		if v := r.Header.Get(h); v != want {
			t.Errorf("header %s = %q, want %q", h, v, want)
		}
	}
	// Verified the way the spec says a receiver does, by hand.
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(vectorSecret, "whsec_"))
	mac := hmac.New(sha256.New, raw)
	mac.Write([]byte(r.Header.Get("webhook-id") + "." + r.Header.Get("webhook-timestamp") + "." + string(body)))
	if want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)); r.Header.Get("webhook-signature") != want {
		t.Fatalf("signature does not verify")
	}
}

func TestSend_Classification(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		retryAfter string
		want       Outcome
	}{
		{"200", 200, "", Outcome{Result: Delivered, Status: 200}},
		{"202", 202, "", Outcome{Result: Delivered, Status: 202}},
		{"503RetryAfterSeconds", 503, "120", Outcome{Result: Retry, Status: 503, Error: "retryable status", RetryAfter: 120 * time.Second}},
		{"503RetryAfterDate", 503, testNow.Add(90 * time.Second).Format(http.TimeFormat), Outcome{Result: Retry, Status: 503, Error: "retryable status", RetryAfter: 90 * time.Second}},
		{"503RetryAfterCapped", 503, "86400", Outcome{Result: Retry, Status: 503, Error: "retryable status", RetryAfter: time.Hour}},
		{"503RetryAfterPastDate", 503, testNow.Add(-time.Hour).Format(http.TimeFormat), Outcome{Result: Retry, Status: 503, Error: "retryable status"}},
		{"503RetryAfterGarbage", 503, "soon", Outcome{Result: Retry, Status: 503, Error: "retryable status"}},
		{"500", 500, "", Outcome{Result: Retry, Status: 500, Error: "retryable status"}},
		{"429", 429, "7", Outcome{Result: Retry, Status: 429, Error: "retryable status", RetryAfter: 7 * time.Second}},
		{"408", 408, "", Outcome{Result: Retry, Status: 408, Error: "retryable status"}},
		{"410", 410, "", Outcome{Result: Disabled, Status: 410, Error: "endpoint gone"}},
		{"400", 400, "", Outcome{Result: Failed, Status: 400, Error: "final status"}},
		{"401", 401, "", Outcome{Result: Failed, Status: 401, Error: "final status"}},
		{"404", 404, "", Outcome{Result: Failed, Status: 404, Error: "final status"}},
	}
	s := testSender(t, 5*time.Second, true)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, n := receiver(t, func(w http.ResponseWriter, r *http.Request) {
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, strings.Repeat("x", 200<<10)) // more than is read
			})
			if got := sendOnce(t, s, srv.URL); got != tt.want {
				t.Fatalf("outcome %+v, want %+v", got, tt.want)
			}
			if n.Load() != 1 {
				t.Fatalf("%d requests, want 1", n.Load())
			}
		})
	}
}

func TestSend_RedirectNotFollowed(t *testing.T) {
	target, hits := receiver(t, func(w http.ResponseWriter, r *http.Request) {})
	srv, _ := receiver(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusTemporaryRedirect)
	})
	want := Outcome{Result: Failed, Status: 307, Error: "redirect not followed"}
	if got := sendOnce(t, testSender(t, time.Second, true), srv.URL); got != want {
		t.Fatalf("outcome %+v, want %+v", got, want)
	}
	if hits.Load() != 0 {
		t.Fatal("the redirect was followed")
	}
}

func TestSend_HangingReceiverTimesOut(t *testing.T) {
	release := make(chan struct{})
	srv, _ := receiver(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release) // before srv.Close (cleanup), which waits for the handler
	start := time.Now()
	want := Outcome{Result: Retry, Error: "timeout"}
	if got := sendOnce(t, testSender(t, 200*time.Millisecond, true), srv.URL); got != want {
		t.Fatalf("outcome %+v, want %+v", got, want)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("the attempt took %v with a 200ms timeout", el)
	}
}

func TestNew_DefaultTimeoutIs10s(t *testing.T) {
	d := New(Options{})
	if d.sender.client.Timeout != 10*time.Second || DefaultTimeout != 10*time.Second {
		t.Fatalf("default timeout %v, want 10s", d.sender.client.Timeout)
	}
	tr := d.sender.client.Transport.(*http.Transport)
	if tr.Proxy != nil {
		t.Fatal("the transport takes a proxy from the environment")
	}
	if d.retryFor != 24*time.Hour {
		t.Fatalf("default RetryFor %v, want 24h", d.retryFor)
	}
}

func TestSend_ConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	want := Outcome{Result: Retry, Error: "connection failed"}
	if got := sendOnce(t, testSender(t, time.Second, true), "http://"+addr); got != want {
		t.Fatalf("outcome %+v, want %+v", got, want)
	}
}

func TestSend_InsecureAndBadURLs(t *testing.T) {
	s := newSender(time.Second, true, false, nil, time.Now)
	if got := sendOnce(t, s, "http://127.0.0.1:1/"); got != (Outcome{Result: Failed, Error: "insecure url refused"}) {
		t.Fatalf("http with AllowInsecure false: %+v", got)
	}
	for _, u := range []string{"", "ftp://example.com/", "https:///path", "example.com/hook", "https://"} {
		if got := sendOnce(t, s, u); got != (Outcome{Result: Failed, Error: "invalid url"}) {
			t.Errorf("send to %q: %+v", u, got)
		}
	}
}

func TestValidateURL(t *testing.T) {
	for _, tt := range []struct {
		url           string
		allowInsecure bool
		ok            bool
	}{
		{"https://hooks.example.com/neostore", false, true},
		{"https://hooks.example.com:8443/x?token=1", false, true},
		{"http://hooks.example.com/neostore", false, false},
		{"http://hooks.example.com/neostore", true, true},
		{"ftp://hooks.example.com/", true, false},
		{"https://", false, false},
		{"/relative", true, false},
		{"hooks.example.com", false, false},
		{"https://exa mple.com/", false, false},
	} {
		err := ValidateURL(tt.url, tt.allowInsecure)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateURL(%q, %v) = %v, want ok %v", tt.url, tt.allowInsecure, err, tt.ok)
		}
		if err != nil && strings.Contains(err.Error()+neostoreMessage(err), "example") {
			t.Errorf("the error for %q quotes the URL: %v", tt.url, err)
		}
	}
}

func TestSSRF_RefusedDestinations(t *testing.T) {
	srv, hits := receiver(t, func(w http.ResponseWriter, r *http.Request) {})
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	s := testSender(t, 2*time.Second, false)
	want := Outcome{Result: Failed, Error: "destination refused"}
	for _, host := range []string{"127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "[::1]", "0.0.0.0"} {
		t.Run(host, func(t *testing.T) {
			if got := sendOnce(t, s, "http://"+host+":"+port+"/"); got != want {
				t.Fatalf("outcome %+v, want %+v", got, want)
			}
		})
	}
	if hits.Load() != 0 {
		t.Fatalf("the receiver got %d requests", hits.Load())
	}
	// The same receiver, with private destinations allowed, is reached.
	if got := sendOnce(t, testSender(t, 2*time.Second, true), "http://localhost:"+port+"/"); got.Result != Delivered {
		t.Fatalf("with AllowPrivate: %+v", got)
	}
}

func TestPublicAddr(t *testing.T) {
	for _, tt := range []struct {
		addr   string
		public bool
	}{
		{"8.8.8.8", true}, {"1.1.1.1", true}, {"2001:4860:4860::8888", true}, {"::ffff:8.8.8.8", true}, {"64:ff9b::808:808", true},
		{"127.0.0.1", false}, {"127.8.9.10", false}, {"::1", false},
		{"10.1.2.3", false}, {"172.16.0.1", false}, {"172.31.255.255", false}, {"192.168.1.1", false},
		{"100.64.0.1", false}, {"100.127.255.254", false},
		{"169.254.169.254", false}, {"fe80::1", false},
		{"fc00::1", false}, {"fd12:3456::1", false},
		{"0.0.0.0", false}, {"::", false}, {"0.1.2.3", false}, {"255.255.255.255", false},
		{"224.0.0.1", false}, {"239.1.1.1", false}, {"ff02::1", false}, {"ff05::2", false},
		{"::ffff:127.0.0.1", false}, {"::ffff:10.0.0.1", false}, {"::ffff:169.254.169.254", false}, {"::ffff:100.64.0.1", false},
		{"64:ff9b::7f00:1", false}, {"64:ff9b::a00:1", false},
	} {
		if got := publicAddr(netip.MustParseAddr(tt.addr)); got != tt.public {
			t.Errorf("publicAddr(%s) = %v, want %v", tt.addr, got, tt.public)
		}
	}
	// The hook itself, on the form the dialer hands it.
	if err := refusePrivate("tcp6", "[::ffff:127.0.0.1]:443", nil); err == nil {
		t.Error("refusePrivate let an IPv4-mapped loopback through")
	}
	if err := refusePrivate("tcp4", "93.184.215.14:443", nil); err != nil {
		t.Errorf("refusePrivate refused a public address: %v", err)
	}
}

// neostoreMessage returns the client-facing message of a neostore error.
func neostoreMessage(err error) string {
	return neostore.ProblemOf(err).Message
}

func TestSend_HTTPSWithPrivateCA(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	s := newSender(2*time.Second, true, false, &tls.Config{RootCAs: pool}, time.Now)
	t.Cleanup(s.client.CloseIdleConnections)
	if got := sendOnce(t, s, srv.URL); got != (Outcome{Result: Delivered, Status: 200}) {
		t.Fatalf("https with its CA: %+v", got)
	}
	// Without the CA the certificate is refused: a transport fault, retried.
	s = newSender(2*time.Second, true, false, nil, time.Now)
	if got := sendOnce(t, s, srv.URL); got != (Outcome{Result: Retry, Error: "connection failed"}) {
		t.Fatalf("https with an unknown CA: %+v", got)
	}
}

func TestOptions_Check(t *testing.T) {
	for _, c := range []struct {
		lease, timeout time.Duration
		ok             bool
	}{
		{0, 0, true},                             // 60 s and 10 s
		{20 * time.Second, 0, true},              // twice the default timeout
		{19 * time.Second, 0, false},             // under it
		{4 * time.Second, 2 * time.Second, true}, // twice a shorter timeout
		{0, 31 * time.Second, false},             // the default lease under twice a long timeout
	} {
		o := Options{Lease: c.lease, Timeout: c.timeout}
		err := o.Check()
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrLeaseTooShort)) {
			t.Errorf("Options{Lease: %v, Timeout: %v}.Check() = %v, want ok %v", c.lease, c.timeout, err, c.ok)
		}
		if !c.ok {
			func() {
				defer func() {
					if recover() == nil {
						t.Errorf("New(Options{Lease: %v, Timeout: %v}) did not panic", c.lease, c.timeout)
					}
				}()
				New(o)
			}()
		}
	}
	if d := New(Options{}); d.lease != 60*time.Second || DefaultLease != 60*time.Second {
		t.Errorf("default lease %v, want 60s", d.lease)
	}
}
