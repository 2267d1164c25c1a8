package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets/tlsconfig/tlstest"
)

// esoWebhookGet sends the request External Secrets Operator's webhook
// provider sends for one remoteRef, built as its GetWebhookData builds it:
// method GET (the default), the URL template with the key query-escaped,
// the body template rendered into an empty bytes.Buffer, each configured
// header added with Header.Add, and an http.Client whose transport trusts
// only the store's caBundle (TLS 1.2 minimum, renegotiation once). Without
// result.jsonPath the provider stores the response body as it is; a 404
// means the secret was deleted, any other non-2xx is an error.
func esoWebhookGet(t *testing.T, caPEM []byte, urlTemplate, key string, headers map[string]string) (*http.Response, []byte) {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("caBundle: no certificate")
	}
	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs: pool, MinVersion: tls.VersionTLS12, Renegotiation: tls.RenegotiateOnceAsClient,
		}},
	}
	defer client.CloseIdleConnections()
	target := bytes.ReplaceAll([]byte(urlTemplate), []byte("{{ .remoteRef.key }}"), []byte(url.QueryEscape(key)))
	var body bytes.Buffer // the rendered body template: empty without spec.provider.webhook.body
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, string(target), &body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Add(k, v)
	}
	if req.ContentLength != 0 || req.Header.Get("Content-Type") != "" {
		t.Fatalf("the request carries a body (%d bytes, Content-Type %q); ESO's does not", req.ContentLength, req.Header.Get("Content-Type"))
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// TestExternalSecretsWebhook runs the README's SecretStore recipe against
// the real server over HTTPS: ESO's request must get the raw value, exactly
// the bytes that were stored, with no JSON quoting or escaping.
func TestExternalSecretsWebhook(t *testing.T) {
	ca := tlstest.NewCA(t, "neostore test CA")
	certs := newCertFiles(t, ca, 2)
	client := httpsClient(ca)
	dataDir := filepath.Join(t.TempDir(), "data")
	srv := startHTTPSServer(t, client, dataDir, newMasterKey(t), certs.flags()...)
	writer := createKey(t, dataDir, "demo", "Secret.Read", "Secret.Write")
	esoKey := createKey(t, dataDir, "demo", "Secret.Read") // the key in the labelled Secret
	caPEM, err := os.ReadFile(ca.CertFile)
	if err != nil {
		t.Fatal(err)
	}

	// A value JSON would quote and escape: quotes, a backslash, a newline,
	// non-ASCII.
	value := "p@ss \"wörd\" \\ 100%\nline two"
	putBody := `{"value":"p@ss \"w\u00f6rd\" \\ 100%\nline two"}`
	if resp, body, err := send(client, "PUT", srv.base+"/api/demo/secrets/db-password", writer, putBody); err != nil || resp.StatusCode != 204 {
		t.Fatalf("PUT = %v %v %s, want 204", resp, err, body)
	}

	urlTemplate := srv.base + "/api/demo/secrets/{{ .remoteRef.key }}"
	headers := map[string]string{"X-API-KEY": esoKey, "Accept": "text/plain"}

	resp, got := esoWebhookGet(t, caPEM, urlTemplate, "db-password", headers)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d %s, want 200", resp.StatusCode, got)
	}
	if string(got) != value {
		t.Errorf("body = %q, want the raw value %q", got, value)
	}
	for name, want := range map[string]string{
		"Content-Type":           "text/plain; charset=utf-8",
		"Cache-Control":          "no-store",
		"X-Content-Type-Options": "nosniff",
	} {
		if g := resp.Header.Get(name); g != want {
			t.Errorf("%s = %q, want %q", name, g, want)
		}
	}

	t.Run("NotQuotedAsJSON", func(t *testing.T) {
		// Accept: application/json would give the JSON string; ESO without
		// jsonPath would then store the quotes and escapes as the value.
		resp, asJSON := esoWebhookGet(t, caPEM, urlTemplate, "db-password", map[string]string{"X-API-KEY": esoKey, "Accept": "application/json"})
		if resp.StatusCode != 200 || bytes.Equal(asJSON, got) || asJSON[0] != '"' {
			t.Fatalf("with Accept: application/json = %d %q, want a JSON string that differs from the text/plain body", resp.StatusCode, asJSON)
		}
		if got[0] == '"' || bytes.Contains(got, []byte(`\n`)) || bytes.Contains(got, []byte(`\"`)) {
			t.Errorf("text/plain body %q is quoted or escaped", got)
		}
	})

	t.Run("DeletedKeyIs404", func(t *testing.T) {
		// ESO reads 404 as "the secret was deleted" and applies the
		// ExternalSecret's deletionPolicy.
		resp, body := esoWebhookGet(t, caPEM, urlTemplate, "no-such-key", headers)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("status = %d %s, want 404", resp.StatusCode, body)
		}
	})

	t.Run("WrongKeyIsAnError", func(t *testing.T) {
		resp, body := esoWebhookGet(t, caPEM, urlTemplate, "db-password", map[string]string{"X-API-KEY": "nsk_wrong", "Accept": "text/plain"})
		if resp.StatusCode != http.StatusUnauthorized || bytes.Contains(body, []byte("wörd")) {
			t.Errorf("status = %d %s, want 401 without the value", resp.StatusCode, body)
		}
	})
}
