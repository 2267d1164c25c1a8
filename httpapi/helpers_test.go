package httpapi_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/bolt"
	"github.com/neostore/neostore-secrets/envelope"
	"github.com/neostore/neostore-secrets/httpapi"
)

// Credentials the test verifiers know. Besides these, "unavailable" makes a
// verifier report EUNAVAILABLE, "broken" an internal error and "panic" a
// panic.
const (
	keyDemoRW    = "nsk_demo_read_write"
	keyDemoRead  = "nsk_demo_read_only"
	keyDemoWrite = "nsk_demo_write_only"
	keyOtherRW   = "nsk_other_read_write"

	tokenAllTenants = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGwifQ.c2ln"
	tokenDemoRead   = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJyZWFkIn0.c2ln"
)

// mapVerifier is a CredentialVerifier backed by a map.
type mapVerifier map[string]*neostore.Principal

func (m mapVerifier) Verify(_ context.Context, credential string) (*neostore.Principal, error) {
	switch credential {
	case "unavailable":
		return nil, neostore.Errorf(neostore.EUNAVAILABLE, "Credential store unavailable.")
	case "broken":
		return nil, errors.New("verifier: database file corrupt at page 42")
	case "panic":
		panic("verifier exploded")
	}
	if p, ok := m[credential]; ok {
		return p, nil
	}
	return nil, neostore.Errorf(neostore.EUNAUTHENTICATED, "Unknown credential.")
}

func testAPIKeys() mapVerifier {
	key := func(id, tenant string, scopes neostore.Scope) *neostore.Principal {
		return &neostore.Principal{Kind: neostore.PrincipalAPIKey, ID: id, Scopes: scopes, Tenants: []string{tenant}}
	}
	return mapVerifier{
		keyDemoRW:    key("k1", "demo", neostore.ScopeRead|neostore.ScopeWrite),
		keyDemoRead:  key("k2", "demo", neostore.ScopeRead),
		keyDemoWrite: key("k3", "demo", neostore.ScopeWrite),
		keyOtherRW:   key("k4", "other", neostore.ScopeRead|neostore.ScopeWrite),
	}
}

func testTokens() mapVerifier {
	return mapVerifier{
		tokenAllTenants: {Kind: neostore.PrincipalToken, ID: "all", Subject: "all",
			Scopes: neostore.ScopeRead | neostore.ScopeWrite, Tenants: []string{neostore.AllTenants}},
		tokenDemoRead: {Kind: neostore.PrincipalToken, ID: "read", Subject: "read",
			Scopes: neostore.ScopeRead, Tenants: []string{"demo"}},
	}
}

// clock is a settable clock for validity windows.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// lockedBuffer collects log output from concurrent handlers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// fixture is the API over a real bbolt store and Tink sealer in
// t.TempDir(). Every exchange it makes is validated against openapi.json
// when the test ends.
type fixture struct {
	secrets  *neostore.SecretService
	handler  http.Handler
	clock    *clock
	logs     *lockedBuffer
	contract *contractRecorder
}

type fixtureOption func(*httpapi.Config, *mapVerifier)

func withMaxValueBytes(n int) fixtureOption {
	return func(c *httpapi.Config, _ *mapVerifier) { c.MaxValueBytes = n }
}

// withInfoLogs logs at Info, as in production, instead of Debug.
func withInfoLogs() fixtureOption {
	return func(c *httpapi.Config, _ *mapVerifier) {
		c.Logger = slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
}

func withZeroConfig() fixtureOption {
	return func(c *httpapi.Config, _ *mapVerifier) { *c = httpapi.Config{} }
}

func withoutTokens() fixtureOption {
	return func(_ *httpapi.Config, tokens *mapVerifier) { *tokens = nil }
}

func newFixture(t testing.TB, opts ...fixtureOption) *fixture {
	t.Helper()
	return newFixtureOn(t, openStore(t), opts...)
}

// openStore opens a store in a fresh file, closed at cleanup.
func openStore(t testing.TB) *bolt.Store {
	t.Helper()
	store, err := bolt.Open(filepath.Join(t.TempDir(), "neostore.db"), bolt.Options{})
	if err != nil {
		t.Fatalf("bolt.Open: %v", err)
	}
	t.Cleanup(func() { _ = store.Close() })
	return store
}

// newFixtureOn is newFixture over store.
func newFixtureOn(t testing.TB, store *bolt.Store, opts ...fixtureOption) *fixture {
	t.Helper()
	keysetJSON, err := envelope.NewMasterKeyset()
	if err != nil {
		t.Fatalf("envelope.NewMasterKeyset: %v", err)
	}
	master, err := envelope.ParseMaster(keysetJSON)
	if err != nil {
		t.Fatalf("envelope.ParseMaster: %v", err)
	}
	clk := &clock{now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	secrets := neostore.NewSecretService(store, envelope.NewSealer(master, store), clk.Now)

	logs := &lockedBuffer{}
	cfg := httpapi.Config{
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:    clk.Now,
	}
	tokens := testTokens()
	for _, o := range opts {
		o(&cfg, &tokens)
	}
	var tokenVerifier neostore.CredentialVerifier
	if tokens != nil {
		tokenVerifier = tokens
	}
	return &fixture{
		secrets:  secrets,
		handler:  httpapi.NewServer(cfg, secrets, testAPIKeys(), tokenVerifier),
		clock:    clk,
		logs:     logs,
		contract: newContractRecorder(t),
	}
}

// request describes one HTTP request of a test.
type request struct {
	method  string
	target  string
	body    string
	header  http.Header
	offSpec bool // the request is valid for the API but not by the contract's letter
}

// hdr builds a header from name, value pairs; a repeated name adds a value.
func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func (rq request) build() *http.Request {
	var body io.Reader = http.NoBody
	if rq.body != "" {
		body = strings.NewReader(rq.body)
	}
	r := httptest.NewRequest(rq.method, rq.target, body)
	for name, values := range rq.header {
		r.Header[name] = append([]string(nil), values...)
	}
	return r
}

// do serves rq and records the exchange for contract validation.
func (f *fixture) do(t testing.TB, rq request) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, rq.build())
	resp := rec.Result()
	body, _ := io.ReadAll(resp.Body)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	f.contract.record(rq, resp.StatusCode, resp.Header.Clone(), body)
	return resp
}

// put stores value under key of tenant demo and fails the test unless 204.
func (f *fixture) put(t testing.TB, key, body string) {
	t.Helper()
	resp := f.do(t, request{method: "PUT", target: "/api/demo/secrets/" + key, body: body,
		header: hdr("X-API-KEY", keyDemoRW, "Content-Type", "application/json")})
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PUT %s: status = %d, want 204; body %s", key, resp.StatusCode, readBody(t, resp))
	}
}

func readBody(t testing.TB, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return string(b)
}

// authRW is the header of a request with the read-write API key of tenant
// demo, plus the given pairs.
func authRW(kv ...string) http.Header {
	return hdr(append([]string{"X-API-KEY", keyDemoRW}, kv...)...)
}

// readCloser gives a reader the Close of a request body.
type readCloser struct{ io.Reader }

func (readCloser) Close() error { return nil }

// serve serves a request built by hand, outside the contract recorder.
func serve(f *fixture, r *http.Request) *http.Response {
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, r)
	return rec.Result()
}

// newFixtureOver returns a fixture serving the same secrets as f with the
// default configuration, to look at f's store from outside its settings.
func newFixtureOver(t testing.TB, f *fixture) *fixture {
	t.Helper()
	return &fixture{
		secrets:  f.secrets,
		handler:  httpapi.NewServer(httpapi.Config{Now: f.clock.Now}, f.secrets, testAPIKeys(), testTokens()),
		clock:    f.clock,
		logs:     &lockedBuffer{},
		contract: newContractRecorder(t),
	}
}
