package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// maxDocumentSize caps a discovery document or JWKS read from the network.
const maxDocumentSize = 1 << 20

// fetchKeys is the jws.KeyProvider of Verify. It offers the signature
// verifier only keys from our own JWKS, selected by the token's kid, and only
// when the token's alg is allowlisted and fits the key's type, curve, use and
// alg. Nothing else in the header (jku, x5u, x5c, jwk) is consulted.
func (v *Verifier) fetchKeys(ctx context.Context, sink jws.KeySink, sig *jws.Signature, _ *jws.Message) error {
	h := sig.ProtectedHeaders()
	a, ok := h.Algorithm()
	if !ok {
		return reject(ErrAlgorithm, "no alg header")
	}
	alg := a.String()
	if !slices.Contains(v.algorithms, alg) {
		return reject(ErrAlgorithm, "alg %q is not allowed", clip(alg))
	}
	// We implement no JWS extension, so a token that marks one critical must
	// be rejected (RFC 7515 section 4.1.11); jwx does not check by default.
	if h.Has(jws.CriticalKey) || h.Has(jws.B64Key) {
		return reject(ErrMalformed, "crit or b64 header present")
	}
	kid, hasKid := h.KeyID()
	fit, known := v.keys.lookup(kid, hasKid, alg)
	if !known {
		v.keys.refreshIfDue(ctx)
		// Look again even when this call did not fetch: a concurrent
		// request may just have fetched the key we need.
		fit, known = v.keys.lookup(kid, hasKid, alg)
	}
	switch {
	case len(fit) > 0:
		for _, k := range fit {
			sink.Key(a, k)
		}
		return nil
	case known && hasKid:
		return reject(ErrAlgorithm, "alg %q does not fit key %q", alg, clip(kid))
	case hasKid:
		return reject(ErrUnknownKey, "kid %q is not in the JWKS", clip(kid))
	}
	return reject(ErrUnknownKey, "no kid, and no key in the JWKS fits alg %q", alg)
}

// keyFits reports whether k may verify a signature made with alg: the key
// type and curve must be the ones alg uses (so an RSA key can never serve as
// an HMAC secret or an EC key), and the key's own use and alg, when present,
// must allow it.
func keyFits(k jwk.Key, alg string) bool {
	if use, ok := k.KeyUsage(); ok && use != "" && use != "sig" {
		return false
	}
	if ka, ok := k.Algorithm(); ok && ka.String() != "" && ka.String() != alg {
		return false
	}
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		_, ok := k.(jwk.RSAPublicKey)
		return ok
	case "ES256":
		return ecCurve(k) == "P-256"
	case "ES384":
		return ecCurve(k) == "P-384"
	case "ES512":
		return ecCurve(k) == "P-521"
	case "EdDSA", "Ed25519":
		if okp, ok := k.(jwk.OKPPublicKey); ok {
			crv, _ := okp.Crv()
			return crv.String() == "Ed25519"
		}
	}
	return false
}

func ecCurve(k jwk.Key) string {
	if ek, ok := k.(jwk.ECDSAPublicKey); ok {
		crv, _ := ek.Crv()
		return crv.String()
	}
	return ""
}

// keyCache holds the current signing keys and serializes their refreshes.
type keyCache struct {
	src      *keySource
	now      func() time.Time
	interval time.Duration // periodic refresh
	minGap   time.Duration // least time between on-demand refreshes; retry delay
	log      *slog.Logger

	mu   sync.RWMutex
	keys []jwk.Key // public keys only

	// sem admits one fetch at a time. lastOnDemand, the start of the latest
	// fetch triggered by an unknown kid (successful or not), is read and
	// written only while holding it.
	sem          chan struct{}
	lastOnDemand time.Time
}

func newKeyCache(src *keySource, now func() time.Time, interval, minGap time.Duration, log *slog.Logger) *keyCache {
	return &keyCache{src: src, now: now, interval: interval, minGap: minGap, log: log, sem: make(chan struct{}, 1)}
}

// lookup returns the keys with the given kid (every key when the token has
// none) that fit alg, and whether any key had that kid at all.
func (c *keyCache) lookup(kid string, hasKid bool, alg string) (fit []jwk.Key, known bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, k := range c.keys {
		if hasKid {
			if id, _ := k.KeyID(); id != kid {
				continue
			}
		}
		known = true
		if keyFits(k, alg) {
			fit = append(fit, k)
		}
	}
	return fit, known
}

func (c *keyCache) hasKeys() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.keys) > 0
}

// load fetches the keys now, waiting for any fetch in progress.
func (c *keyCache) load(ctx context.Context) error {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-c.sem }()
	return c.fetchLocked(ctx)
}

// refreshIfDue fetches the keys for a token with an unknown kid, unless such
// a fetch was attempted less than minGap ago. Requests that arrive during a
// fetch wait for it (or for their own ctx) and then find the gap not yet
// elapsed, so a flood of forged kids costs the issuer at most one request
// per minGap on top of the periodic refresh. A failed fetch keeps the cached
// keys and still counts.
func (c *keyCache) refreshIfDue(ctx context.Context) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-c.sem }()
	now := c.now()
	if !c.lastOnDemand.IsZero() && now.Sub(c.lastOnDemand) < c.minGap {
		return
	}
	c.lastOnDemand = now
	// The fetch counts against the rate limit whether or not the request
	// that triggered it is still waiting, so it must not be cut short by
	// that request's cancellation.
	if err := c.fetchLocked(context.WithoutCancel(ctx)); err != nil {
		c.log.WarnContext(ctx, "oidc: signing-key refresh for an unknown kid failed; keeping cached keys", "error", err)
	}
}

// run refetches the keys every interval (every minGap while none could be
// loaded yet, or after a failure) until ctx is done, so keys removed by the
// issuer stop verifying.
func (c *keyCache) run(ctx context.Context) {
	interval := c.interval
	delay := interval
	if !c.hasKeys() {
		delay = min(c.minGap, interval)
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		delay = interval
		if err := c.load(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			delay = min(c.minGap, interval)
			if c.hasKeys() {
				c.log.WarnContext(ctx, "oidc: periodic signing-key refresh failed; keeping cached keys", "error", err)
			} else {
				c.log.ErrorContext(ctx, "oidc: no signing keys loaded; every bearer token is rejected until a fetch succeeds", "error", err)
			}
		}
		t.Reset(delay)
	}
}

// fetchLocked replaces the keys with freshly fetched ones. The caller holds sem.
func (c *keyCache) fetchLocked(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, DefaultHTTPTimeout)
	defer cancel()
	keys, err := c.src.fetch(ctx)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.keys = keys
	c.mu.Unlock()
	c.log.DebugContext(ctx, "oidc: signing keys loaded", "keys", len(keys))
	return nil
}

// keySource is where the keys come from: a file, a JWKS URL, or the jwks_uri
// of the issuer's discovery document.
type keySource struct {
	file      string
	jwksURL   string // configured, or discovered; written only under the cache's sem
	discovery string // discovery document URL, when no JWKS URL was configured
	issuer    string
	client    *http.Client
}

func newKeySource(cfg Config) (*keySource, error) {
	s := &keySource{file: cfg.JWKSFile, issuer: cfg.Issuer, client: cfg.HTTPClient}
	switch {
	case cfg.JWKSFile != "":
	case cfg.JWKSURL != "":
		if err := checkFetchURL(cfg.JWKSURL); err != nil {
			return nil, fmt.Errorf("oidc: JWKS URL: %w", err)
		}
		s.jwksURL = cfg.JWKSURL
	default:
		s.discovery = strings.TrimSuffix(cfg.Issuer, "/") + "/.well-known/openid-configuration"
		if err := checkFetchURL(s.discovery); err != nil {
			return nil, fmt.Errorf("oidc: issuer, used for discovery: %w", err)
		}
	}
	return s, nil
}

// fetch returns the usable public keys of the JWKS. It fails rather than
// return no key, so a broken or emptied JWKS never wipes the cache.
func (s *keySource) fetch(ctx context.Context) ([]jwk.Key, error) {
	var body []byte
	var err error
	if s.file != "" {
		body, err = os.ReadFile(s.file)
	} else {
		if s.jwksURL == "" {
			if err := s.discover(ctx); err != nil {
				return nil, err
			}
		}
		body, err = s.get(ctx, s.jwksURL)
	}
	if err != nil {
		return nil, err
	}
	set, err := jwk.Parse(body)
	if err != nil {
		return nil, errors.New("JWKS is not a valid JSON Web Key Set")
	}
	keys := usableKeys(set)
	if len(keys) == 0 {
		return nil, errors.New("JWKS has no RSA, EC or OKP signature key")
	}
	return keys, nil
}

// usableKeys returns the public part of each asymmetric key in set.
// Symmetric (oct) keys are dropped: a JWKS is public, so a secret in it would
// be no secret, and HMAC algorithms are never allowed anyway.
func usableKeys(set jwk.Set) []jwk.Key {
	var out []jwk.Key
	for i := range set.Len() {
		k, ok := set.Key(i)
		if !ok || jwk.IsUnsupportedKey(k) {
			continue
		}
		switch k.KeyType().String() {
		case "RSA", "EC", "OKP":
		default:
			continue
		}
		pub, err := k.PublicKey()
		if err != nil {
			continue
		}
		out = append(out, pub)
	}
	return out
}

// discover reads the issuer's OIDC discovery document and remembers its
// jwks_uri. The document must name our issuer exactly (OpenID Connect
// Discovery 1.0, section 4.3).
func (s *keySource) discover(ctx context.Context) error {
	body, err := s.get(ctx, s.discovery)
	if err != nil {
		return err
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return errors.New("discovery document is not valid JSON")
	}
	if doc.Issuer != s.issuer {
		return fmt.Errorf("discovery document names issuer %q, want %q", clip(doc.Issuer), s.issuer)
	}
	if err := checkFetchURL(doc.JWKSURI); err != nil {
		return fmt.Errorf("discovery document jwks_uri: %w", err)
	}
	s.jwksURL = doc.JWKSURI
	return nil
}

func (s *keySource) get(ctx context.Context, rawURL string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d", redact(rawURL), resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentSize+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", redact(rawURL), err)
	}
	if len(body) > maxDocumentSize {
		return nil, fmt.Errorf("GET %s: response over %d bytes", redact(rawURL), maxDocumentSize)
	}
	return body, nil
}

// checkFetchURL accepts https URLs, and http only to a loopback host (local
// development, tests): keys fetched in clear text could be swapped in transit.
func checkFetchURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return errors.New("not an absolute URL")
	}
	switch {
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && isLoopback(u.Hostname()):
		return nil
	}
	return fmt.Errorf("%s: must be https (http only to a loopback host)", redact(raw))
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func redact(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return "(invalid URL)"
}
