package main

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets/tlsconfig/tlstest"
)

// httpsClient returns a client that trusts only ca, offers HTTP/2 and
// presents certs when a server asks for a client certificate.
func httpsClient(ca *tlstest.CA, certs ...tls.Certificate) *http.Client {
	cfg := &tls.Config{Certificates: certs}
	if ca != nil {
		cfg.RootCAs = ca.Pool()
	}
	return &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true},
	}
}

// startHTTPSServer is startServer for a server that serves HTTPS: it waits
// until client gets /openapi.json over TLS.
func startHTTPSServer(t *testing.T, client *http.Client, dataDir, masterKeyFile string, extra ...string) *server {
	t.Helper()
	return launchServer(t, client, "https", dataDir, masterKeyFile, extra...)
}

// send is do with a given client; it returns the response with its body read
// into body, or the transport error.
func send(client *http.Client, method, url, apiKey, reqBody string) (resp *http.Response, body string, err error) {
	req, err := http.NewRequest(method, url, strings.NewReader(reqBody))
	if err != nil {
		return nil, "", err
	}
	if apiKey != "" {
		req.Header.Set("X-API-KEY", apiKey)
	}
	if reqBody != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err = client.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

// presentedSerial connects afresh and returns the serial number of the
// certificate the server presents.
func presentedSerial(t *testing.T, ca *tlstest.CA, base string) string {
	t.Helper()
	c := httpsClient(ca)
	defer c.CloseIdleConnections()
	resp, _, err := send(c, "GET", base+"/openapi.json", "", "")
	if err != nil {
		return "error: " + err.Error()
	}
	return resp.TLS.PeerCertificates[0].SerialNumber.String()
}

// waitSerial waits until a new connection to base is served the certificate
// with serial want.
func waitSerial(t *testing.T, ca *tlstest.CA, base, want string) {
	t.Helper()
	var got string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(25 * time.Millisecond) {
		if got = presentedSerial(t, ca, base); got == want {
			return
		}
	}
	t.Fatalf("the server still presents serial %s after 10s, want %s", got, want)
}

// certFiles is a certificate and key file pair for --tls-cert and --tls-key.
type certFiles struct{ cert, key string }

func (c certFiles) flags() []string { return []string{"--tls-cert", c.cert, "--tls-key", c.key} }

func newCertFiles(t *testing.T, ca *tlstest.CA, serial int64) certFiles {
	t.Helper()
	dir := t.TempDir()
	c := certFiles{filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")}
	ca.Issue(t, serial, "127.0.0.1", "localhost").WriteFiles(t, c.cert, c.key)
	return c
}

func TestServe_HTTPS(t *testing.T) {
	ca := tlstest.NewCA(t, "neostore test CA")
	files := newCertFiles(t, ca, 1)
	dataDir := filepath.Join(t.TempDir(), "data")
	client := httpsClient(ca)
	srv := startHTTPSServer(t, client, dataDir, newMasterKey(t), append(files.flags(), "--tls-reload-interval", "50ms")...)
	key := createKey(t, dataDir, "acme", "Secret.Read", "Secret.Write")
	secret := srv.base + "/api/acme/secrets/db-password"
	if resp, body, err := send(client, "PUT", secret, key, `{"value":"hunter2"}`); err != nil || resp.StatusCode != 204 {
		t.Fatalf("PUT over HTTPS = %v %v %s, want 204", resp, err, body)
	}

	t.Run("TrustingClientGetsTheSecretOverHTTP2", func(t *testing.T) {
		resp, body, err := send(client, "GET", secret, key, "")
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || body != "hunter2" {
			t.Errorf("GET = %d %q, want 200 \"hunter2\"", resp.StatusCode, body)
		}
		if resp.ProtoMajor != 2 {
			t.Errorf("protocol = %s, want HTTP/2", resp.Proto)
		}
		if got := resp.TLS.Version; got != tls.VersionTLS13 {
			t.Errorf("TLS version = %x, want TLS 1.3 (%x) with a modern client", got, tls.VersionTLS13)
		}
	})
	t.Run("HSTSOnEveryResponse", func(t *testing.T) {
		for _, tc := range []struct{ method, url, key string }{
			{"GET", secret, key}, // 200
			{"GET", secret, ""},  // 401
			{"GET", srv.base + "/api/acme/secrets/absent", key}, // 404
			{"GET", srv.base + "/healthz", ""},
			{"GET", srv.base + "/no/such/route", ""},
		} {
			resp, _, err := send(client, tc.method, tc.url, tc.key, "")
			if err != nil {
				t.Fatal(err)
			}
			if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=31536000" {
				t.Errorf("%s %s (%d): Strict-Transport-Security = %q, want max-age=31536000", tc.method, tc.url, resp.StatusCode, got)
			}
		}
	})
	t.Run("UntrustingClientFails", func(t *testing.T) {
		// Trusts the system roots, not our CA.
		_, _, err := send(httpsClient(nil), "GET", secret, key, "")
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("GET from a client that does not trust the CA = %v, want a certificate error", err)
		}
	})
	t.Run("TLS11ClientRefused", func(t *testing.T) {
		old := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs: ca.Pool(), MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11,
		}}}
		_, _, err := send(old, "GET", secret, key, "")
		if err == nil || !strings.Contains(err.Error(), "protocol version") {
			t.Errorf("GET with TLS 1.1 = %v, want a protocol version alert", err)
		}
	})
	t.Run("PlainHTTPToTheTLSPortGetsNoSecret", func(t *testing.T) {
		status, _, body := do(t, "GET", "http://"+strings.TrimPrefix(secret, "https://"), key, "")
		if status != 400 || strings.Contains(body, "hunter2") {
			t.Errorf("plain HTTP to the TLS port = %d %q, want 400 without the value", status, body)
		}
	})
	t.Run("CertificateReloadsWithoutRestartOrDroppedConnections", func(t *testing.T) {
		// A connection opened before the renewal.
		var reused bool
		trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused }}
		get := func() (*http.Response, string) {
			t.Helper()
			req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", secret, nil)
			req.Header.Set("X-API-KEY", key)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp, string(b)
		}
		if resp, _ := get(); resp.TLS.PeerCertificates[0].SerialNumber.Int64() != 1 {
			t.Fatalf("serial before renewal = %v, want 1", resp.TLS.PeerCertificates[0].SerialNumber)
		}

		ca.Issue(t, 2, "127.0.0.1", "localhost").WriteFiles(t, files.cert, files.key)
		waitSerial(t, ca, srv.base, "2")

		resp, body := get()
		if resp.StatusCode != 200 || body != "hunter2" || !reused {
			t.Errorf("GET on the connection opened before the renewal = %d %q (reused %v), want 200 on the same connection", resp.StatusCode, body, reused)
		}
		if got := resp.TLS.PeerCertificates[0].SerialNumber.Int64(); got != 1 {
			t.Errorf("the old connection now shows serial %d, want 1 (it was not re-handshaked)", got)
		}
		if logs := srv.stderr.String(); !strings.Contains(logs, "TLS certificate loaded") || !strings.Contains(logs, "serial=2") {
			t.Errorf("the reload was not logged:\n%s", logs)
		}
	})
}

func TestServe_HTTPSReloadOnSIGHUP(t *testing.T) {
	ca := tlstest.NewCA(t, "neostore test CA")
	files := newCertFiles(t, ca, 1)
	// Polling is slowed to an hour, so only the signal can cause a reload.
	srv := startHTTPSServer(t, httpsClient(ca), filepath.Join(t.TempDir(), "data"), newMasterKey(t),
		append(files.flags(), "--tls-reload-interval", "1h")...)
	// The running server has registered for SIGHUP (before it became ready),
	// so the signal goes to it and cannot terminate the test process.
	hup := func() {
		t.Helper()
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("Reloads", func(t *testing.T) {
		ca.Issue(t, 7, "127.0.0.1", "localhost").WriteFiles(t, files.cert, files.key)
		if got := presentedSerial(t, ca, srv.base); got != "1" {
			t.Fatalf("serial before SIGHUP = %s, want 1 (polling must be off in this test)", got)
		}
		hup()
		waitSerial(t, ca, srv.base, "7")
	})
	t.Run("FailedReloadKeepsTheCertificate", func(t *testing.T) {
		if err := os.WriteFile(files.key, []byte("-----BEGIN PRIVATE KEY-----\ntruncated"), 0o600); err != nil {
			t.Fatal(err)
		}
		hup()
		for deadline := time.Now().Add(10 * time.Second); !strings.Contains(srv.stderr.String(), "TLS certificate reload failed"); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no reload failure logged after SIGHUP:\n%s", srv.stderr.String())
			}
		}
		if got := presentedSerial(t, ca, srv.base); got != "7" {
			t.Errorf("serial after a failed reload = %s, want 7 (kept)", got)
		}
	})
	if err := srv.stop(); err != nil {
		t.Errorf("serve returned %v", err)
	}
}

func TestServe_MutualTLS(t *testing.T) {
	serverCA, clientCA, otherCA := tlstest.NewCA(t, "server CA"), tlstest.NewCA(t, "client CA"), tlstest.NewCA(t, "other CA")
	files := newCertFiles(t, serverCA, 1)
	dataDir := filepath.Join(t.TempDir(), "data")
	withCert := httpsClient(serverCA, clientCA.Issue(t, 100, "app").TLS)
	srv := startHTTPSServer(t, withCert, dataDir, newMasterKey(t), append(files.flags(), "--tls-client-ca", clientCA.CertFile)...)
	key := createKey(t, dataDir, "acme", "Secret.Read", "Secret.Write")
	secret := srv.base + "/api/acme/secrets/db-password"
	if resp, body, err := send(withCert, "PUT", secret, key, `{"value":"hunter2"}`); err != nil || resp.StatusCode != 204 {
		t.Fatalf("PUT with a client certificate = %v %v %s, want 204", resp, err, body)
	}

	t.Run("ClientWithCertificateGetsThrough", func(t *testing.T) {
		resp, body, err := send(withCert, "GET", secret, key, "")
		if err != nil || resp.StatusCode != 200 || body != "hunter2" {
			t.Errorf("GET = %v %v %q, want 200 \"hunter2\"", resp, err, body)
		}
	})
	// A client given Certificates sends none that the server's CA list does
	// not match; this one sends its certificate regardless.
	strangerClient := httpsClient(serverCA)
	stranger := otherCA.Issue(t, 101, "app").TLS
	strangerClient.Transport.(*http.Transport).TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return &stranger, nil
	}
	for _, tc := range []struct {
		name   string
		client *http.Client
	}{
		{"ClientWithoutCertificateRefused", httpsClient(serverCA)},
		{"ClientWithCertificateOfAnotherCARefused", strangerClient},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The cause (certificate required, unknown authority) is
			// checked in tlsconfig; net/http's HTTP/2 client hides it.
			if resp, body, err := send(tc.client, "GET", secret, key, ""); err == nil {
				t.Fatalf("GET = %d %q, want the connection refused", resp.StatusCode, body)
			}
		})
	}
}

func TestServe_TransportFlags(t *testing.T) {
	ca := tlstest.NewCA(t, "neostore test CA")
	files := newCertFiles(t, ca, 1)
	masterKey := newMasterKey(t)
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	os.WriteFile(garbage, []byte("not PEM"), 0o600)

	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{"CertWithoutKey", []string{"--tls-cert", files.cert}, exitUsage, "--tls-key"},
		{"KeyWithoutCert", []string{"--tls-key", files.key}, exitUsage, "--tls-cert"},
		{"ClientCAWithoutCert", []string{"--tls-client-ca", ca.CertFile}, exitUsage, "--tls-client-ca"},
		{"InsecureHTTPWithTLS", append(files.flags(), "--insecure-http"), exitUsage, "--insecure-http"},
		{"UnreadableKey", []string{"--tls-cert", files.cert, "--tls-key", garbage}, exitConfig, "tls"},
		{"ClientCABundleWithoutCertificates", append(files.flags(), "--tls-client-ca", garbage), exitConfig, "no PEM certificate"},
		{"PlainHTTPOnNonLoopback", []string{"--listen", "0.0.0.0:0"}, exitUsage, "--insecure-http"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"serve", "--listen", freeAddr(t), "--data", filepath.Join(t.TempDir(), "data"), "--master-key-file", masterKey}, tc.args...)
			_, stderr, err := cli(t, args...)
			if err == nil {
				t.Fatal("serve started")
			}
			if got := exitCode(err); got != tc.wantCode {
				t.Errorf("exit code = %d, want %d (%v)", got, tc.wantCode, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q\n%s", err, tc.want, stderr)
			}
			if strings.Contains(err.Error()+stderr, "PRIVATE KEY") {
				t.Errorf("output carries key material")
			}
		})
	}
	t.Run("PlainHTTPOnLoopbackWarns", func(t *testing.T) {
		srv := startServer(t, filepath.Join(t.TempDir(), "data"), masterKey)
		if _, hdr, _ := do(t, "GET", srv.base+"/healthz", "", ""); hdr.Get("Strict-Transport-Security") != "" {
			t.Errorf("plain HTTP response carries Strict-Transport-Security (browsers ignore it there; it belongs to TLS)")
		}
		srv.stop()
		if logs := srv.stderr.String(); !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "plain HTTP on a loopback address") {
			t.Errorf("no warning about plain HTTP at start:\n%s", logs)
		}
	})
}
