package oidc_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/oidc"
)

const testIssuer = "https://auth.neostore.cloud/"

// genericMessage is the only thing a client learns about a rejected token.
const genericMessage = "The bearer token is invalid or expired."

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable clock for token validity and the refresh rate limit.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// signer is an issuer's private key with the kid and alg it signs with.
type signer struct {
	kid  string
	alg  jwa.SignatureAlgorithm
	priv jwk.Key
	raw  any // the crypto private key
}

// RSA key generation is slow under -race, so the fixtures share a few keys.
var rsaKeys = sync.OnceValue(func() []*rsa.PrivateKey {
	keys := make([]*rsa.PrivateKey, 4)
	for i := range keys {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		keys[i] = k
	}
	return keys
})

func newSigner(t testing.TB, kid string, alg jwa.SignatureAlgorithm, raw any) *signer {
	t.Helper()
	priv, err := jwk.Import(raw)
	if err != nil {
		t.Fatalf("import key: %v", err)
	}
	return &signer{kid: kid, alg: alg, priv: priv, raw: raw}
}

// rsaSigner returns a signer on the i-th shared RSA key (0..3).
func rsaSigner(t testing.TB, kid string, i int) *signer {
	return newSigner(t, kid, jwa.RS256(), rsaKeys()[i])
}

func ecSigner(t testing.TB, kid string) *signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return newSigner(t, kid, jwa.ES256(), k)
}

func edSigner(t testing.TB, kid string) *signer {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return newSigner(t, kid, jwa.EdDSA(), k)
}

// with returns a copy of s signing with another algorithm.
func (s *signer) with(alg jwa.SignatureAlgorithm) *signer {
	c := *s
	c.alg = alg
	return &c
}

// public returns the JWK the issuer publishes for s, with extra members set.
func (s *signer) public(t testing.TB, extra map[string]any) jwk.Key {
	t.Helper()
	pub, err := s.priv.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Set(jwk.KeyIDKey, s.kid); err != nil {
		t.Fatal(err)
	}
	for k, v := range extra {
		if err := pub.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	return pub
}

// sign mints a compact JWS over the JSON of claims. The protected header
// has alg, typ and s.kid, then hdr on top; a nil value in hdr removes that
// header.
func (s *signer) sign(t testing.TB, claims map[string]any, hdr map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return s.signBytes(t, payload, hdr)
}

func (s *signer) signBytes(t testing.TB, payload []byte, hdr map[string]any) string {
	t.Helper()
	h := jws.NewHeaders()
	must(t, h.Set(jws.TypeKey, "JWT"))
	must(t, h.Set(jws.KeyIDKey, s.kid))
	for k, v := range hdr {
		if v == nil {
			must(t, h.Remove(k))
			continue
		}
		must(t, h.Set(k, v))
	}
	out, err := jws.Sign(payload, jws.WithKey(s.alg, s.priv, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return string(out)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// b64 is the base64url encoding used in JWS.
func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func b64JSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b64(b)
}

// claims returns a valid claim set at time now; overrides replace claims,
// and an override of absent removes the claim.
func claims(now time.Time, overrides map[string]any) map[string]any {
	c := map[string]any{
		"iss":                   testIssuer,
		"sub":                   "auth0|alice",
		"aud":                   []string{oidc.DefaultAudience, "https://auth.neostore.cloud/userinfo"},
		"azp":                   "client-backoffice",
		"exp":                   now.Add(time.Hour).Unix(),
		"iat":                   now.Unix(),
		"scope":                 "openid Secret.Read",
		oidc.DefaultTenantClaim: []string{"tenant-a"},
	}
	for k, v := range overrides {
		if v == absent {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

type absentClaim struct{}

var absent = absentClaim{}

// idp is an identity provider on loopback: a discovery document and a JWKS
// that tests can change, take down, and count requests to.
type idp struct {
	srv           *httptest.Server
	issuer        string // the "issuer" of the discovery document
	jwksHits      atomic.Int64
	discoveryHits atomic.Int64
	down          atomic.Bool // JWKS answers 503

	mu   sync.Mutex
	jwks []byte
}

func newIDP(t testing.TB, keys ...jwk.Key) *idp {
	t.Helper()
	p := &idp{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		p.discoveryHits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"issuer": p.issuer, "jwks_uri": p.srv.URL + "/jwks"})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		p.jwksHits.Add(1)
		if p.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		p.mu.Lock()
		body := p.jwks
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	p.issuer = p.srv.URL + "/"
	p.setKeys(t, keys...)
	return p
}

func (p *idp) setKeys(t testing.TB, keys ...jwk.Key) {
	t.Helper()
	body := jwksJSON(t, keys...)
	p.mu.Lock()
	p.jwks = body
	p.mu.Unlock()
}

func jwksJSON(t testing.TB, keys ...jwk.Key) []byte {
	t.Helper()
	set := jwk.NewSet()
	for _, k := range keys {
		must(t, set.AddKey(k))
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeJWKS(t testing.TB, path string, keys ...jwk.Key) {
	t.Helper()
	// Write then rename, as an operator's deploy tool would, so a reader
	// never sees half a file.
	tmp := path + ".tmp"
	must(t, os.WriteFile(tmp, jwksJSON(t, keys...), 0o600))
	must(t, os.Rename(tmp, path))
}

func jwksFile(t testing.TB, keys ...jwk.Key) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "jwks.json")
	writeJWKS(t, path, keys...)
	return path
}

// config returns a Config for p with the fake clock, a background refresh
// too slow to interfere, and logs sent to t.Log.
func config(t testing.TB, p *idp, c *clock) oidc.Config {
	return oidc.Config{
		Issuer:          testIssuer,
		JWKSURL:         p.srv.URL + "/jwks",
		Now:             c.Now,
		RefreshInterval: time.Hour,
		Logger:          testLogger(t),
	}
}

func newVerifier(t testing.TB, cfg oidc.Config) *oidc.Verifier {
	t.Helper()
	v, err := oidc.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return v
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(string(bytes.TrimSpace(b)))
	return len(b), nil
}

// wantRejected fails unless err is the generic EUNAUTHENTICATED error and
// carries reason.
func wantRejected(t testing.TB, p *neostore.Principal, err error, reason error) {
	t.Helper()
	if err == nil {
		t.Fatalf("Verify: got principal %+v, want rejection %q", p, reason)
	}
	if p != nil {
		t.Errorf("Verify: got principal %+v with error %v, want nil", p, err)
	}
	if !errors.Is(err, reason) {
		t.Errorf("Verify: got %v, want reason %q", err, reason)
	}
	if got := neostore.ErrorCode(err); got != neostore.EUNAUTHENTICATED {
		t.Errorf("ErrorCode: got %q, want %q", got, neostore.EUNAUTHENTICATED)
	}
	if got := neostore.ErrorMessage(err); got != genericMessage {
		t.Errorf("ErrorMessage: got %q, want %q", got, genericMessage)
	}
}

func wantOK(t testing.TB, p *neostore.Principal, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("Verify: got %v, want success", err)
	}
	if p == nil {
		t.Fatal("Verify: got nil principal and nil error")
	}
}

func verify(t testing.TB, v *oidc.Verifier, token string) (*neostore.Principal, error) {
	t.Helper()
	return v.Verify(context.Background(), token)
}
