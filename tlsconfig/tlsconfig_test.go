package tlsconfig_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets/tlsconfig"
	"github.com/neostore/neostore-secrets/tlsconfig/tlstest"
)

// logBuffer collects log output written from other goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// pair is a certificate and key file in a temporary directory.
type pair struct{ cert, key string }

func newPair(t *testing.T) pair {
	dir := t.TempDir()
	return pair{filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")}
}

func newReloader(t *testing.T, p pair, logs io.Writer) *tlsconfig.Reloader {
	t.Helper()
	r, err := tlsconfig.NewReloader(p.cert, p.key, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatalf("NewReloader: %v", err)
	}
	return r
}

func serial(r *tlsconfig.Reloader) string { return r.Certificate().Leaf.SerialNumber.String() }

func TestNewReloader(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	one, two := ca.Issue(t, 1, "127.0.0.1"), ca.Issue(t, 2, "127.0.0.1")

	t.Run("LoadsThePair", func(t *testing.T) {
		p := newPair(t)
		one.WriteFiles(t, p.cert, p.key)
		r := newReloader(t, p, io.Discard)
		if got := serial(r); got != "1" {
			t.Errorf("serial = %s, want 1", got)
		}
		got, err := r.GetCertificate(nil)
		if err != nil || got != r.Certificate() {
			t.Errorf("GetCertificate = %v, %v; want the current certificate", got, err)
		}
	})
	for _, tc := range []struct {
		name      string
		cert, key []byte
	}{
		{"MissingFiles", nil, nil},
		{"GarbageKey", one.CertPEM, []byte("not a key")},
		{"KeyOfAnotherCertificate", one.CertPEM, two.KeyPEM},
		{"KeyInCertificateFile", one.KeyPEM, one.KeyPEM},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t)
			if tc.cert != nil {
				os.WriteFile(p.cert, tc.cert, 0o600)
				os.WriteFile(p.key, tc.key, 0o600)
			}
			_, err := tlsconfig.NewReloader(p.cert, p.key, nil)
			if err == nil {
				t.Fatal("NewReloader accepted a bad pair")
			}
			if strings.Contains(err.Error(), "PRIVATE KEY-----") || strings.Contains(err.Error(), string(two.KeyPEM[40:80])) {
				t.Errorf("error %q carries key material", err)
			}
		})
	}
}

func TestReloader_Reload(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	one, two := ca.Issue(t, 1, "127.0.0.1"), ca.Issue(t, 2, "127.0.0.1")

	t.Run("ServesTheNewCertificate", func(t *testing.T) {
		p := newPair(t)
		one.WriteFiles(t, p.cert, p.key)
		r := newReloader(t, p, io.Discard)
		two.WriteFiles(t, p.cert, p.key)
		if err := r.Reload(); err != nil {
			t.Fatalf("Reload: %v", err)
		}
		if got := serial(r); got != "2" {
			t.Errorf("serial after reload = %s, want 2", got)
		}
	})
	t.Run("FailureKeepsTheCurrentCertificate", func(t *testing.T) {
		p := newPair(t)
		one.WriteFiles(t, p.cert, p.key)
		logs := &logBuffer{}
		r := newReloader(t, p, logs)
		// A renewal that wrote the new certificate but not yet its key.
		os.WriteFile(p.cert, two.CertPEM, 0o600)
		if err := r.Reload(); err == nil {
			t.Fatal("Reload of a mismatched pair succeeded")
		}
		if got := serial(r); got != "1" {
			t.Errorf("serial after a failed reload = %s, want 1 (the old certificate)", got)
		}
		if !strings.Contains(logs.String(), "level=ERROR") {
			t.Errorf("the failed reload was not logged as an error:\n%s", logs)
		}
		if strings.Contains(logs.String(), "PRIVATE KEY") {
			t.Errorf("the log carries key material:\n%s", logs)
		}
	})
}

func TestReloader_Watch(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	p := newPair(t)
	ca.Issue(t, 1, "127.0.0.1").WriteFiles(t, p.cert, p.key)
	logs := &logBuffer{}
	r := newReloader(t, p, logs)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { r.Watch(ctx, 10*time.Millisecond); close(done) }()
	defer func() { cancel(); <-done }()

	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if ok() {
				return
			}
		}
		t.Fatalf("timed out waiting for %s", what)
	}

	t.Run("ReloadsWhenTheFilesAreReplaced", func(t *testing.T) {
		ca.Issue(t, 2, "127.0.0.1").WriteFiles(t, p.cert, p.key)
		waitFor("serial 2", func() bool { return serial(r) == "2" })
	})
	t.Run("ReloadsWhenAFileIsRewrittenInPlace", func(t *testing.T) {
		three := ca.Issue(t, 3, "127.0.0.1")
		if err := os.WriteFile(p.key, three.KeyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p.cert, three.CertPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		waitFor("serial 3", func() bool { return serial(r) == "3" })
	})
	t.Run("BrokenFilesLogOnceAndKeepTheCertificate", func(t *testing.T) {
		before := strings.Count(logs.String(), "level=ERROR")
		if err := os.WriteFile(p.key, []byte("truncated"), 0o600); err != nil {
			t.Fatal(err)
		}
		waitFor("an error logged", func() bool { return strings.Count(logs.String(), "level=ERROR") > before })
		time.Sleep(100 * time.Millisecond) // ten more polls of unchanged broken files
		if got := strings.Count(logs.String(), "level=ERROR") - before; got != 1 {
			t.Errorf("%d errors logged for one broken change, want 1:\n%s", got, logs)
		}
		if got := serial(r); got != "3" {
			t.Errorf("serial = %s, want 3 (kept)", got)
		}
	})
}

// serveTLS serves a handler that reports the protocol with cfg and returns
// its address.
func serveTLS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:   http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Proto) }),
		TLSConfig: cfg,
		ErrorLog:  slog.NewLogLogger(slog.DiscardHandler, slog.LevelError),
	}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// get fetches / from addr with client; it offers HTTP/2 unless client
// names its own protocols.
func get(addr string, client *tls.Config) (string, error) {
	tr := &http.Transport{TLSClientConfig: client, ForceAttemptHTTP2: client.NextProtos == nil}
	c := &http.Client{Timeout: 5 * time.Second, Transport: tr}
	defer c.CloseIdleConnections()
	resp, err := c.Get("https://" + addr + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// present returns a GetClientCertificate that sends cert whatever CAs the
// server asks for (a client given Certificates sends none that does not match).
func present(cert tls.Certificate) func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
}

// exchange performs a handshake with addr and reads the server's first
// bytes after sending an HTTP/1.1 request, and returns the first error. Under
// TLS 1.3 the server refuses a client certificate after the handshake, so the
// refusal shows only on that read; net/http's HTTP/2 client hides its cause.
func exchange(addr string, client *tls.Config) error {
	client = client.Clone()
	client.NextProtos = []string{"http/1.1"}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, client)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return err
	}
	_, err = conn.Read(make([]byte, 1))
	return err
}

func TestServerConfig(t *testing.T) {
	serverCA, clientCA, otherCA := tlstest.NewCA(t, "server CA"), tlstest.NewCA(t, "client CA"), tlstest.NewCA(t, "other CA")
	p := newPair(t)
	serverCA.Issue(t, 1, "127.0.0.1", "localhost").WriteFiles(t, p.cert, p.key)
	r := newReloader(t, p, io.Discard)
	plain := serveTLS(t, tlsconfig.ServerConfig(r, nil))
	mutual := serveTLS(t, tlsconfig.ServerConfig(r, clientCA.Pool()))
	clientCert := clientCA.Issue(t, 10, "client").TLS
	strangerCert := otherCA.Issue(t, 11, "client").TLS

	for _, tc := range []struct {
		name    string
		addr    string
		client  *tls.Config
		want    string // response body (the protocol), or "" for a refusal
		wantErr string // part of the error when refused
	}{
		{"TrustingClientGetsHTTP2", plain, &tls.Config{RootCAs: serverCA.Pool()}, "HTTP/2.0", ""},
		{"TLS12Accepted", plain, &tls.Config{RootCAs: serverCA.Pool(), MaxVersion: tls.VersionTLS12}, "HTTP/2.0", ""},
		{"HTTP1ClientServed", plain, &tls.Config{RootCAs: serverCA.Pool(), NextProtos: []string{"http/1.1"}}, "HTTP/1.1", ""},
		{"UntrustingClientRefuses", plain, &tls.Config{}, "", "certificate"},
		{"TLS11Refused", plain, &tls.Config{RootCAs: serverCA.Pool(), MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}, "", "protocol version"},
		{"MutualWithoutClientCertRefused", mutual, &tls.Config{RootCAs: serverCA.Pool()}, "", "certificate required"},
		{"MutualWithStrangerCertRefused", mutual, &tls.Config{RootCAs: serverCA.Pool(), GetClientCertificate: present(strangerCert)}, "", "unknown certificate authority"},
		{"MutualWithClientCertServed", mutual, &tls.Config{RootCAs: serverCA.Pool(), Certificates: []tls.Certificate{clientCert}}, "HTTP/2.0", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want == "" {
				err := exchange(tc.addr, tc.client)
				if err == nil {
					t.Fatal("the server answered, want a refusal")
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %q does not mention %q", err, tc.wantErr)
				}
				return
			}
			got, err := get(tc.addr, tc.client)
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestLoadCertPool(t *testing.T) {
	ca := tlstest.NewCA(t, "client CA")
	if _, err := tlsconfig.LoadCertPool(ca.CertFile); err != nil {
		t.Errorf("LoadCertPool(CA file) = %v", err)
	}
	garbage := filepath.Join(t.TempDir(), "bundle.pem")
	os.WriteFile(garbage, []byte("no certificates here"), 0o600)
	if _, err := tlsconfig.LoadCertPool(garbage); !errors.Is(err, tlsconfig.ErrNoCertificates) {
		t.Errorf("LoadCertPool(garbage) = %v, want ErrNoCertificates", err)
	}
	if _, err := tlsconfig.LoadCertPool(filepath.Join(t.TempDir(), "absent.pem")); err == nil {
		t.Errorf("LoadCertPool(absent file) succeeded")
	}
}
