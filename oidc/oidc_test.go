package oidc_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/oidc"
)

// fixture is an issuer with one key of each supported family, and a
// verifier for it.
type fixture struct {
	clock           *clock
	idp             *idp
	rsa, ps, ec, ed *signer
	v               *oidc.Verifier
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{clock: newClock()}
	f.rsa = rsaSigner(t, "rsa-1", 0)
	f.ps = newSigner(t, "ps-1", jwa.PS256(), rsaKeys()[1])
	f.ec = ecSigner(t, "ec-1")
	f.ed = edSigner(t, "ed-1")
	f.idp = newIDP(t, f.rsa.public(t, nil), f.ps.public(t, nil), f.ec.public(t, nil), f.ed.public(t, nil))
	f.v = newVerifier(t, config(t, f.idp, f.clock))
	return f
}

func (f *fixture) claims(overrides map[string]any) map[string]any {
	return claims(f.clock.Now(), overrides)
}

func TestVerifier_Verify_Algorithms(t *testing.T) {
	f := newFixture(t)
	for _, s := range []*signer{f.rsa, f.ps, f.ec, f.ed} {
		t.Run(s.alg.String(), func(t *testing.T) {
			p, err := verify(t, f.v, s.sign(t, f.claims(nil), nil))
			wantOK(t, p, err)
			want := neostore.Principal{
				Kind:     neostore.PrincipalToken,
				ID:       "auth0|alice",
				Subject:  "auth0|alice",
				Issuer:   testIssuer,
				ClientID: "client-backoffice",
				Scopes:   neostore.ScopeRead,
				Tenants:  []string{"tenant-a"},
			}
			if fmt.Sprint(*p) != fmt.Sprint(want) {
				t.Errorf("principal:\n got %+v\nwant %+v", *p, want)
			}
		})
	}
}

func TestVerifier_Verify_Claims(t *testing.T) {
	f := newFixture(t)
	now := f.clock.Now()
	leeway := oidc.DefaultLeeway
	tests := []struct {
		name   string
		claims map[string]any
		want   error // nil: accepted
	}{
		{"Valid", nil, nil},
		{"Expired", map[string]any{"exp": now.Add(-leeway - 2*time.Second).Unix()}, oidc.ErrExpired},
		{"ExpiredWithinLeeway", map[string]any{"exp": now.Add(-leeway + 2*time.Second).Unix()}, nil},
		{"MissingExp", map[string]any{"exp": absent}, oidc.ErrMissingClaim},
		{"ExpNotNumber", map[string]any{"exp": "tomorrow"}, oidc.ErrMalformed},
		{"NbfInFuture", map[string]any{"nbf": now.Add(leeway + 2*time.Second).Unix()}, oidc.ErrNotYetValid},
		{"NbfWithinLeeway", map[string]any{"nbf": now.Add(leeway - 2*time.Second).Unix()}, nil},
		{"NbfInPast", map[string]any{"nbf": now.Add(-time.Minute).Unix()}, nil},
		{"IatInFuture", map[string]any{"iat": now.Add(leeway + 2*time.Second).Unix()}, oidc.ErrNotYetValid},
		{"IatWithinLeeway", map[string]any{"iat": now.Add(leeway - 2*time.Second).Unix()}, nil},
		{"MissingIat", map[string]any{"iat": absent}, nil},
		{"WrongIssuer", map[string]any{"iss": "https://evil.example/"}, oidc.ErrIssuer},
		{"IssuerWithoutTrailingSlash", map[string]any{"iss": "https://auth.neostore.cloud"}, oidc.ErrIssuer},
		{"MissingIssuer", map[string]any{"iss": absent}, oidc.ErrIssuer},
		{"AudienceString", map[string]any{"aud": oidc.DefaultAudience}, nil},
		{"AudienceWithoutTrailingSlash", map[string]any{"aud": "https://app.neostore.cloud/api"}, oidc.ErrAudience},
		{"AudienceArrayWithOurs", map[string]any{"aud": []string{"https://other/", oidc.DefaultAudience}}, nil},
		{"AudienceArrayWithoutOurs", map[string]any{"aud": []string{"https://other/", "https://app.neostore.cloud/api"}}, oidc.ErrAudience},
		{"AudienceCaseDiffers", map[string]any{"aud": "https://APP.neostore.cloud/api/"}, oidc.ErrAudience},
		{"MissingAudience", map[string]any{"aud": absent}, oidc.ErrAudience},
		{"MissingSubject", map[string]any{"sub": absent}, oidc.ErrMissingClaim},
		{"EmptySubject", map[string]any{"sub": ""}, oidc.ErrMissingClaim},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := verify(t, f.v, f.rsa.sign(t, f.claims(tt.claims), nil))
			if tt.want == nil {
				wantOK(t, p, err)
				return
			}
			wantRejected(t, p, err, tt.want)
		})
	}
}

func TestVerifier_Verify_Leeway(t *testing.T) {
	f := newFixture(t)
	cfg := config(t, f.idp, f.clock)
	cfg.Leeway = 5 * time.Second
	v := newVerifier(t, cfg)
	now := f.clock.Now()

	tok := f.rsa.sign(t, f.claims(map[string]any{"exp": now.Add(-10 * time.Second).Unix()}), nil)
	p, err := verify(t, v, tok)
	wantRejected(t, p, err, oidc.ErrExpired)
	// The same token passes the default 30s leeway.
	p, err = verify(t, f.v, tok)
	wantOK(t, p, err)

	tok = f.rsa.sign(t, f.claims(map[string]any{"nbf": now.Add(10 * time.Second).Unix()}), nil)
	p, err = verify(t, v, tok)
	wantRejected(t, p, err, oidc.ErrNotYetValid)
	p, err = verify(t, f.v, tok)
	wantOK(t, p, err)
}

func TestVerifier_Verify_Signature(t *testing.T) {
	f := newFixture(t)
	payload := b64JSON(t, f.claims(nil))
	valid := f.rsa.sign(t, f.claims(nil), nil)
	parts := strings.Split(valid, ".")

	pubDER, err := x509.MarshalPKIXPublicKey(&rsaKeys()[0].PublicKey)
	must(t, err)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	pkcs1PEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rsaKeys()[0].PublicKey)})
	hs256 := func(secret []byte) string {
		head := b64JSON(t, map[string]any{"alg": "HS256", "typ": "JWT", "kid": "rsa-1"})
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(head + "." + payload))
		return head + "." + payload + "." + b64(mac.Sum(nil))
	}
	unsigned := func(alg string) string {
		return b64JSON(t, map[string]any{"alg": alg, "typ": "JWT", "kid": "rsa-1"}) + "." + payload + "."
	}
	otherRSA := rsaSigner(t, "rsa-1", 2) // same kid, key the issuer never published

	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"AlgNone", unsigned("none"), oidc.ErrAlgorithm},
		{"AlgNoneCapitalized", unsigned("None"), oidc.ErrMalformed}, // jwx refuses unknown alg names while parsing
		{"AlgNoneWithSignature", unsigned("none") + parts[2], oidc.ErrAlgorithm},
		{"NoAlgHeader", b64JSON(t, map[string]any{"kid": "rsa-1"}) + "." + payload + "." + parts[2], oidc.ErrAlgorithm},
		{"HS256WithRSAPublicKeyPEM", hs256(pubPEM), oidc.ErrAlgorithm},
		{"HS256WithRSAPublicKeyPKCS1PEM", hs256(pkcs1PEM), oidc.ErrAlgorithm},
		{"HS256WithRSAPublicKeyDER", hs256(pubDER), oidc.ErrAlgorithm},
		{"HS256WithRSAModulus", hs256(rsaKeys()[0].PublicKey.N.Bytes()), oidc.ErrAlgorithm},
		{"ES256HeaderOnRSAKid", f.ec.sign(t, f.claims(nil), map[string]any{"kid": "rsa-1"}), oidc.ErrAlgorithm},
		{"RS256HeaderOnECKid", f.rsa.sign(t, f.claims(nil), map[string]any{"kid": "ec-1"}), oidc.ErrAlgorithm},
		{"EdDSAHeaderOnRSAKid", f.ed.sign(t, f.claims(nil), map[string]any{"kid": "rsa-1"}), oidc.ErrAlgorithm},
		{"RS384NotAllowlisted", f.rsa.with(jwa.RS384()).sign(t, f.claims(nil), nil), oidc.ErrAlgorithm},
		{"WrongKeySameKid", otherRSA.sign(t, f.claims(nil), nil), oidc.ErrSignature},
		{"TamperedPayload", parts[0] + "." + b64JSON(t, f.claims(map[string]any{"sub": "auth0|mallory"})) + "." + parts[2], oidc.ErrSignature},
		{"SignatureFromOtherToken", parts[0] + "." + parts[1] + "." + strings.Split(f.rsa.sign(t, f.claims(map[string]any{"sub": "x"}), nil), ".")[2], oidc.ErrSignature},
		{"EmptySignature", parts[0] + "." + parts[1] + ".", oidc.ErrMalformed},
		{"UnknownKid", f.rsa.sign(t, f.claims(nil), map[string]any{"kid": "rsa-unknown"}), oidc.ErrUnknownKey},
		{"CritHeader", f.rsa.sign(t, f.claims(nil), map[string]any{"crit": []string{"exp"}, "exp": 1}), oidc.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := verify(t, f.v, tt.token)
			wantRejected(t, p, err, tt.want)
		})
	}

	t.Run("NoKidUsesKeysOfTheRightType", func(t *testing.T) {
		p, err := verify(t, f.v, f.ec.sign(t, f.claims(nil), map[string]any{"kid": nil}))
		wantOK(t, p, err)
		p, err = verify(t, f.v, otherRSA.sign(t, f.claims(nil), map[string]any{"kid": nil}))
		wantRejected(t, p, err, oidc.ErrSignature)
	})
}

// A JWK's own use and alg members restrict what it may verify.
func TestVerifier_Verify_KeyMetadata(t *testing.T) {
	c := newClock()
	pinned := rsaSigner(t, "pinned-rs256", 0)
	enc := rsaSigner(t, "enc-only", 1)
	p := newIDP(t,
		pinned.public(t, map[string]any{jwk.AlgorithmKey: jwa.RS256(), jwk.KeyUsageKey: "sig"}),
		enc.public(t, map[string]any{jwk.KeyUsageKey: "enc"}),
	)
	v := newVerifier(t, config(t, p, c))

	pr, err := verify(t, v, pinned.sign(t, claims(c.Now(), nil), nil))
	wantOK(t, pr, err)
	pr, err = verify(t, v, pinned.with(jwa.PS256()).sign(t, claims(c.Now(), nil), nil))
	wantRejected(t, pr, err, oidc.ErrAlgorithm)
	pr, err = verify(t, v, enc.sign(t, claims(c.Now(), nil), nil))
	wantRejected(t, pr, err, oidc.ErrAlgorithm)
}

// Config.Algorithms narrows the allowlist.
func TestVerifier_Verify_ConfiguredAlgorithms(t *testing.T) {
	f := newFixture(t)
	cfg := config(t, f.idp, f.clock)
	cfg.Algorithms = []string{"ES256"}
	v := newVerifier(t, cfg)
	p, err := verify(t, v, f.ec.sign(t, f.claims(nil), nil))
	wantOK(t, p, err)
	p, err = verify(t, v, f.rsa.sign(t, f.claims(nil), nil))
	wantRejected(t, p, err, oidc.ErrAlgorithm)
}

// The jku, x5u and jwk headers name keys the attacker controls; none is
// fetched or used.
func TestVerifier_Verify_HeaderKeysNotFollowed(t *testing.T) {
	f := newFixture(t)
	attacker := rsaSigner(t, "attacker-1", 3)
	evil := newIDP(t, attacker.public(t, nil))
	evilKey := attacker.public(t, nil)

	tests := []struct {
		name string
		hdr  map[string]any
		want error
	}{
		{"JKUWithAttackerKid", map[string]any{"jku": evil.srv.URL + "/jwks"}, oidc.ErrUnknownKey},
		{"JKUWithIssuerKid", map[string]any{"jku": evil.srv.URL + "/jwks", "kid": "rsa-1"}, oidc.ErrSignature},
		{"X5UWithAttackerKid", map[string]any{"x5u": evil.srv.URL + "/jwks"}, oidc.ErrUnknownKey},
		{"JWKWithAttackerKid", map[string]any{"jwk": evilKey}, oidc.ErrUnknownKey},
		{"JWKWithIssuerKid", map[string]any{"jwk": evilKey, "kid": "rsa-1"}, oidc.ErrSignature},
		{"JWKWithoutKid", map[string]any{"jwk": evilKey, "kid": nil}, oidc.ErrSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := verify(t, f.v, attacker.sign(t, f.claims(nil), tt.hdr))
			wantRejected(t, p, err, tt.want)
			if got := evil.jwksHits.Load(); got != 0 {
				t.Errorf("attacker JWKS hits: got %d, want 0", got)
			}
		})
	}
}

func TestVerifier_Verify_Malformed(t *testing.T) {
	f := newFixture(t)
	valid := f.rsa.sign(t, f.claims(nil), nil)
	parts := strings.Split(valid, ".")
	hits := f.idp.jwksHits.Load()

	// A correctly signed token over 16 KiB, with an unknown kid: it must be
	// rejected before the kid could trigger a JWKS fetch.
	big := f.rsa.sign(t, f.claims(map[string]any{"pad": strings.Repeat("x", oidc.MaxTokenSize)}), map[string]any{"kid": "rsa-big"})

	tests := []struct {
		name  string
		token string
	}{
		{"Empty", ""},
		{"Word", "token"},
		{"TwoParts", parts[0] + "." + parts[1]},
		{"FourParts", valid + ".x"},
		{"JWEShape", parts[0] + ".a.b.c." + parts[2]},
		{"Dots", ".."},
		{"EmptyHeader", "." + parts[1] + "." + parts[2]},
		{"EmptyPayload", parts[0] + ".." + parts[2]},
		{"LeadingSpace", " " + valid},
		{"TrailingNewline", valid + "\n"},
		{"BearerPrefix", "Bearer " + valid},
		{"StandardBase64", parts[0] + "+/." + parts[1] + "." + parts[2]},
		{"Padding", valid + "=="},
		{"JSONSerialization", `{"payload":"` + parts[1] + `","signatures":[{"protected":"` + parts[0] + `","signature":"` + parts[2] + `"}]}`},
		{"HeaderNotBase64", "!!!." + parts[1] + "." + parts[2]},
		{"HeaderNotJSON", b64([]byte("not json")) + "." + parts[1] + "." + parts[2]},
		{"PayloadNotJSON", f.rsa.signBytes(t, []byte("hello"), nil)},
		{"PayloadJSONArray", f.rsa.signBytes(t, []byte(`["iss"]`), nil)},
		{"IssuerNotString", f.rsa.sign(t, f.claims(map[string]any{"iss": 42}), nil)},
		{"Oversized", big},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := verify(t, f.v, tt.token)
			wantRejected(t, p, err, oidc.ErrMalformed)
		})
	}
	if got := f.idp.jwksHits.Load(); got != hits {
		t.Errorf("JWKS hits during malformed tokens: got %d more, want 0", got-hits)
	}
}

func TestVerifier_Verify_Scopes(t *testing.T) {
	f := newFixture(t)
	r, w := neostore.ScopeRead, neostore.ScopeWrite
	tests := []struct {
		name   string
		claims map[string]any
		want   neostore.Scope
	}{
		{"ScopeString", map[string]any{"scope": "Secret.Read"}, r},
		{"ScopeStringBoth", map[string]any{"scope": "openid Secret.Read Secret.Write"}, r | w},
		{"ScpString", map[string]any{"scope": absent, "scp": "Secret.Write"}, w},
		{"ScpStringBoth", map[string]any{"scope": absent, "scp": "Secret.Write Secret.Read"}, r | w},
		{"ScpArray", map[string]any{"scope": absent, "scp": []string{"Secret.Read", "Secret.Write"}}, r | w},
		{"PermissionsArray", map[string]any{"scope": absent, "permissions": []string{"Secret.Write"}}, w},
		{"UnionOfClaims", map[string]any{"scope": "Secret.Read", "permissions": []string{"Secret.Write"}}, r | w},
		{"NoScopeClaim", map[string]any{"scope": absent}, 0},
		{"Lowercase", map[string]any{"scope": "secret.read secret.write"}, 0},
		{"Uppercase", map[string]any{"scope": "SECRET.READ"}, 0},
		{"Suffix", map[string]any{"scope": "Secret.ReadX Secret.WriteAll"}, 0},
		{"Prefix", map[string]any{"scope": "XSecret.Read"}, 0},
		{"CommaSeparated", map[string]any{"scope": "Secret.Read,Secret.Write"}, 0},
		{"TabSeparated", map[string]any{"scope": "Secret.Read\tSecret.Write"}, 0},
		{"Wildcard", map[string]any{"scope": "Secret.* *"}, 0},
		{"ArrayElementWithSpace", map[string]any{"scope": absent, "permissions": []string{"Secret.Read Secret.Write"}}, 0},
		{"ArrayElementLookAlike", map[string]any{"scope": absent, "scp": []string{"secret.read", "Secret.Write "}}, 0},
		{"NonStringArrayElements", map[string]any{"scope": absent, "scp": []any{1, true, nil, "Secret.Read"}}, r},
		{"ScopeNumber", map[string]any{"scope": 7}, 0},
		{"ScopeObject", map[string]any{"scope": map[string]any{"Secret.Read": true}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := verify(t, f.v, f.rsa.sign(t, f.claims(tt.claims), nil))
			wantOK(t, p, err)
			if p.Scopes != tt.want {
				t.Errorf("scopes: got %q, want %q", p.Scopes, tt.want)
			}
		})
	}

	t.Run("ConfiguredClaims", func(t *testing.T) {
		cfg := config(t, f.idp, f.clock)
		cfg.ScopeClaims = []string{"roles"}
		v := newVerifier(t, cfg)
		p, err := verify(t, v, f.rsa.sign(t, f.claims(map[string]any{"scope": "Secret.Write", "roles": []string{"Secret.Read"}}), nil))
		wantOK(t, p, err)
		if p.Scopes != r {
			t.Errorf("scopes: got %q, want %q (only the configured claim counts)", p.Scopes, r)
		}
	})
}

func TestVerifier_Verify_Tenants(t *testing.T) {
	f := newFixture(t)
	claim := oidc.DefaultTenantClaim
	tests := []struct {
		name    string
		value   any
		want    []string
		allowed []string
		denied  []string
	}{
		{"Array", []string{"tenant-a", "tenant-b"}, []string{"tenant-a", "tenant-b"}, []string{"tenant-a", "tenant-b"}, []string{"tenant-c"}},
		{"String", "tenant-a", []string{"tenant-a"}, []string{"tenant-a"}, []string{"tenant-b"}},
		{"StringIsNotSplit", "tenant-a tenant-b", []string{"tenant-a tenant-b"}, nil, []string{"tenant-a", "tenant-b"}},
		{"Star", "*", []string{"*"}, []string{"tenant-a", "anything"}, nil},
		{"StarInArray", []string{"tenant-a", "*"}, []string{"tenant-a", "*"}, []string{"tenant-z"}, nil},
		{"Missing", absent, nil, nil, []string{"tenant-a", "*"}},
		{"EmptyArray", []string{}, nil, nil, []string{"tenant-a"}},
		{"EmptyString", "", nil, nil, []string{""}},
		{"DuplicatesAndNonStrings", []any{"tenant-a", 3, "tenant-a", nil, ""}, []string{"tenant-a"}, []string{"tenant-a"}, []string{"3"}},
		{"Number", 42, nil, nil, []string{"42"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := verify(t, f.v, f.rsa.sign(t, f.claims(map[string]any{claim: tt.value}), nil))
			wantOK(t, p, err)
			if !slices.Equal(p.Tenants, tt.want) {
				t.Errorf("tenants: got %q, want %q", p.Tenants, tt.want)
			}
			for _, tenant := range tt.allowed {
				if !p.CanAccessTenant(tenant) {
					t.Errorf("CanAccessTenant(%q): got false, want true", tenant)
				}
			}
			for _, tenant := range tt.denied {
				if p.CanAccessTenant(tenant) {
					t.Errorf("CanAccessTenant(%q): got true, want false", tenant)
				}
			}
		})
	}

	t.Run("ConfiguredClaim", func(t *testing.T) {
		cfg := config(t, f.idp, f.clock)
		cfg.TenantClaim = "tenants"
		v := newVerifier(t, cfg)
		p, err := verify(t, v, f.rsa.sign(t, f.claims(map[string]any{"tenants": "tenant-x"}), nil))
		wantOK(t, p, err)
		if !slices.Equal(p.Tenants, []string{"tenant-x"}) {
			t.Errorf("tenants: got %q, want [tenant-x] (only the configured claim counts)", p.Tenants)
		}
	})
}

func TestVerifier_Verify_Principal(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name   string
		claims map[string]any
		want   string
	}{
		{"Azp", nil, "client-backoffice"},
		{"ClientID", map[string]any{"azp": absent, "client_id": "okta-client"}, "okta-client"},
		{"AzpBeforeClientID", map[string]any{"client_id": "okta-client"}, "client-backoffice"},
		{"Neither", map[string]any{"azp": absent}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := verify(t, f.v, f.rsa.sign(t, f.claims(tt.claims), nil))
			wantOK(t, p, err)
			if p.ClientID != tt.want {
				t.Errorf("ClientID: got %q, want %q", p.ClientID, tt.want)
			}
			if p.Kind != neostore.PrincipalToken || p.ID != "auth0|alice" || p.Subject != "auth0|alice" || p.Issuer != testIssuer || p.Name != "" {
				t.Errorf("principal: got %+v", *p)
			}
		})
	}
}

// A key the issuer adds is picked up on the first token that uses it, with
// one JWKS fetch, without a restart.
func TestVerifier_Verify_KeyRotation(t *testing.T) {
	c := newClock()
	old := rsaSigner(t, "2026-01", 0)
	next := rsaSigner(t, "2026-03", 1)
	after := ecSigner(t, "2026-04")
	p := newIDP(t, old.public(t, nil))
	v := newVerifier(t, config(t, p, c))
	if got := p.jwksHits.Load(); got != 1 {
		t.Fatalf("JWKS hits after New: got %d, want 1", got)
	}

	p.setKeys(t, old.public(t, nil), next.public(t, nil))
	pr, err := verify(t, v, next.sign(t, claims(c.Now(), nil), nil))
	wantOK(t, pr, err)
	pr, err = verify(t, v, old.sign(t, claims(c.Now(), nil), nil))
	wantOK(t, pr, err)
	if got := p.jwksHits.Load(); got != 2 {
		t.Errorf("JWKS hits after rotation: got %d, want 2", got)
	}

	// Another key within MinRefreshInterval of that fetch waits for the next
	// allowed refresh.
	p.setKeys(t, next.public(t, nil), after.public(t, nil))
	c.Advance(oidc.DefaultMinRefreshInterval - time.Second)
	pr, err = verify(t, v, after.sign(t, claims(c.Now(), nil), nil))
	wantRejected(t, pr, err, oidc.ErrUnknownKey)
	c.Advance(time.Second)
	pr, err = verify(t, v, after.sign(t, claims(c.Now(), nil), nil))
	wantOK(t, pr, err)
	if got := p.jwksHits.Load(); got != 3 {
		t.Errorf("JWKS hits after second rotation: got %d, want 3", got)
	}
	// That refresh also dropped the retired key.
	pr, err = verify(t, v, old.sign(t, claims(c.Now(), nil), nil))
	wantRejected(t, pr, err, oidc.ErrUnknownKey)
}

// A flood of tokens with forged kids costs the issuer at most one JWKS
// request per MinRefreshInterval.
func TestVerifier_Verify_RefreshRateLimit(t *testing.T) {
	f := newFixture(t)
	forged := func(i int) string {
		return f.rsa.sign(t, f.claims(nil), map[string]any{"kid": fmt.Sprintf("forged-%d", i)})
	}
	tokens := make([]string, 100)
	for i := range tokens {
		tokens[i] = forged(i)
	}
	before := f.idp.jwksHits.Load()

	var wg sync.WaitGroup
	errs := make([]error, len(tokens))
	for i, tok := range tokens {
		wg.Go(func() { _, errs[i] = f.v.Verify(context.Background(), tok) })
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, oidc.ErrUnknownKey) || neostore.ErrorCode(err) != neostore.EUNAUTHENTICATED {
			t.Fatalf("token %d: got %v, want ErrUnknownKey/EUNAUTHENTICATED", i, err)
		}
	}
	if got := f.idp.jwksHits.Load() - before; got > 1 {
		t.Errorf("JWKS hits during a concurrent flood of 100 unknown kids: got %d, want at most 1", got)
	}

	// A second wave at the same time costs nothing.
	mid := f.idp.jwksHits.Load()
	for _, tok := range tokens {
		pr, err := verify(t, f.v, tok)
		wantRejected(t, pr, err, oidc.ErrUnknownKey)
	}
	if got := f.idp.jwksHits.Load() - mid; got != 0 {
		t.Errorf("JWKS hits during a second flood in the same interval: got %d, want 0", got)
	}

	// Once the interval has passed, exactly one more.
	f.clock.Advance(oidc.DefaultMinRefreshInterval)
	mid = f.idp.jwksHits.Load()
	for _, tok := range tokens {
		_, _ = verify(t, f.v, tok)
	}
	if got := f.idp.jwksHits.Load() - mid; got != 1 {
		t.Errorf("JWKS hits in the next interval: got %d, want 1", got)
	}
}

// While the JWKS endpoint is down, cached keys keep verifying and unknown
// kids are 401, never 500.
func TestVerifier_Verify_JWKSDown(t *testing.T) {
	for _, mode := range []string{"503", "Closed"} {
		t.Run(mode, func(t *testing.T) {
			f := newFixture(t)
			if mode == "503" {
				f.idp.down.Store(true)
			} else {
				f.idp.srv.Close()
			}
			f.clock.Advance(time.Hour)

			p, err := verify(t, f.v, f.rsa.sign(t, f.claims(nil), nil))
			wantOK(t, p, err)
			p, err = verify(t, f.v, f.ec.sign(t, f.claims(nil), nil))
			wantOK(t, p, err)

			fresh := rsaSigner(t, "rsa-new", 2)
			p, err = verify(t, f.v, fresh.sign(t, f.claims(nil), nil))
			wantRejected(t, p, err, oidc.ErrUnknownKey)

			// The failed refresh did not wipe the cache.
			p, err = verify(t, f.v, f.rsa.sign(t, f.claims(nil), nil))
			wantOK(t, p, err)
		})
	}
}

// With the JWKS unreachable at start, New still succeeds; tokens are 401
// until a fetch succeeds, then verify.
func TestNew_JWKSDownAtStart(t *testing.T) {
	c := newClock()
	s := rsaSigner(t, "rsa-1", 0)
	p := newIDP(t, s.public(t, nil))
	p.down.Store(true)
	v := newVerifier(t, config(t, p, c))

	pr, err := verify(t, v, s.sign(t, claims(c.Now(), nil), nil))
	wantRejected(t, pr, err, oidc.ErrUnknownKey)

	p.down.Store(false)
	c.Advance(oidc.DefaultMinRefreshInterval)
	pr, err = verify(t, v, s.sign(t, claims(c.Now(), nil), nil))
	wantOK(t, pr, err)
}

// Keys the issuer removes stop verifying after the periodic refresh, even
// though their kid is still cached.
func TestVerifier_PeriodicRefresh(t *testing.T) {
	c := newClock()
	old := rsaSigner(t, "old", 0)
	next := rsaSigner(t, "next", 1)
	p := newIDP(t, old.public(t, nil))
	cfg := config(t, p, c)
	cfg.RefreshInterval = 20 * time.Millisecond
	v := newVerifier(t, cfg)
	tok := old.sign(t, claims(c.Now(), nil), nil)
	pr, err := verify(t, v, tok)
	wantOK(t, pr, err)

	p.setKeys(t, next.public(t, nil))
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err = verify(t, v, tok)
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("removed key still verifies 10s after the JWKS changed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	wantRejected(t, nil, err, oidc.ErrUnknownKey)
}

func TestNew_JWKSFile(t *testing.T) {
	c := newClock()
	s := rsaSigner(t, "file-1", 0)
	e := ecSigner(t, "file-2")

	t.Run("Verifies", func(t *testing.T) {
		v := newVerifier(t, oidc.Config{Issuer: testIssuer, JWKSFile: jwksFile(t, s.public(t, nil), e.public(t, nil)), Now: c.Now})
		p, err := verify(t, v, s.sign(t, claims(c.Now(), nil), nil))
		wantOK(t, p, err)
		p, err = verify(t, v, e.sign(t, claims(c.Now(), nil), nil))
		wantOK(t, p, err)
	})
	t.Run("TakesPrecedenceOverURL", func(t *testing.T) {
		p := newIDP(t, s.public(t, nil))
		v := newVerifier(t, oidc.Config{Issuer: testIssuer, JWKSFile: jwksFile(t, s.public(t, nil)), JWKSURL: p.srv.URL + "/jwks", Now: c.Now})
		pr, err := verify(t, v, s.sign(t, claims(c.Now(), nil), nil))
		wantOK(t, pr, err)
		pr, err = verify(t, v, e.sign(t, claims(c.Now(), nil), nil))
		wantRejected(t, pr, err, oidc.ErrUnknownKey)
		if got := p.jwksHits.Load() + p.discoveryHits.Load(); got != 0 {
			t.Errorf("network hits: got %d, want 0", got)
		}
	})
	t.Run("RotatedByReplacingTheFile", func(t *testing.T) {
		c := newClock()
		path := jwksFile(t, s.public(t, nil))
		v := newVerifier(t, oidc.Config{Issuer: testIssuer, JWKSFile: path, Now: c.Now})
		writeJWKS(t, path, e.public(t, nil))
		p, err := verify(t, v, e.sign(t, claims(c.Now(), nil), nil))
		wantOK(t, p, err)
	})
	t.Run("SkipsSymmetricKeys", func(t *testing.T) {
		oct, err := jwk.Import([]byte("a shared secret that must never verify"))
		must(t, err)
		must(t, oct.Set(jwk.KeyIDKey, "oct-1"))
		v := newVerifier(t, oidc.Config{Issuer: testIssuer, JWKSFile: jwksFile(t, s.public(t, nil), oct), Now: c.Now})
		head := b64JSON(t, map[string]any{"alg": "HS256", "kid": "oct-1"})
		payload := b64JSON(t, claims(c.Now(), nil))
		mac := hmac.New(sha256.New, []byte("a shared secret that must never verify"))
		mac.Write([]byte(head + "." + payload))
		p, verr := verify(t, v, head+"."+payload+"."+b64(mac.Sum(nil)))
		wantRejected(t, p, verr, oidc.ErrAlgorithm)
	})

	for name, setup := range map[string]func(t *testing.T) string{
		"Missing":     func(t *testing.T) string { return t.TempDir() + "/nope.json" },
		"NotJSON":     func(t *testing.T) string { return writeFile(t, "not json") },
		"EmptySet":    func(t *testing.T) string { return writeFile(t, `{"keys":[]}`) },
		"OnlyOctKeys": func(t *testing.T) string { return writeFile(t, `{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"x"}]}`) },
	} {
		t.Run("Fails"+name, func(t *testing.T) {
			_, err := oidc.New(t.Context(), oidc.Config{Issuer: testIssuer, JWKSFile: setup(t)})
			if err == nil {
				t.Fatal("New: got nil error, want one")
			}
		})
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := t.TempDir() + "/jwks.json"
	must(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

func TestNew_Discovery(t *testing.T) {
	c := newClock()
	s := ecSigner(t, "ec-1")

	t.Run("Verifies", func(t *testing.T) {
		p := newIDP(t, s.public(t, nil))
		v := newVerifier(t, oidc.Config{Issuer: p.issuer, Now: c.Now, Logger: testLogger(t)})
		pr, err := verify(t, v, s.sign(t, claims(c.Now(), map[string]any{"iss": p.issuer}), nil))
		wantOK(t, pr, err)
		if pr.Issuer != p.issuer {
			t.Errorf("Issuer: got %q, want %q", pr.Issuer, p.issuer)
		}
		if d, j := p.discoveryHits.Load(), p.jwksHits.Load(); d != 1 || j != 1 {
			t.Errorf("hits: got discovery %d, JWKS %d, want 1 and 1", d, j)
		}
		// The token must still name the issuer exactly.
		pr, err = verify(t, v, s.sign(t, claims(c.Now(), map[string]any{"iss": strings.TrimSuffix(p.issuer, "/")}), nil))
		wantRejected(t, pr, err, oidc.ErrIssuer)
	})
	t.Run("IssuerMismatchLoadsNoKeys", func(t *testing.T) {
		p := newIDP(t, s.public(t, nil))
		p.issuer = "https://impostor.example/"
		v := newVerifier(t, oidc.Config{Issuer: p.srv.URL + "/", Now: c.Now, Logger: testLogger(t)})
		pr, err := verify(t, v, s.sign(t, claims(c.Now(), map[string]any{"iss": p.srv.URL + "/"}), nil))
		wantRejected(t, pr, err, oidc.ErrUnknownKey)
		if got := p.jwksHits.Load(); got != 0 {
			t.Errorf("JWKS hits: got %d, want 0", got)
		}
	})
}

func TestNew_Config(t *testing.T) {
	file := jwksFile(t, rsaSigner(t, "k", 0).public(t, nil))
	tests := []struct {
		name    string
		cfg     oidc.Config
		wantErr bool
	}{
		{"Minimal", oidc.Config{Issuer: testIssuer, JWKSFile: file}, false},
		{"MissingIssuer", oidc.Config{JWKSFile: file}, true},
		{"Leeway60s", oidc.Config{Issuer: testIssuer, JWKSFile: file, Leeway: 60 * time.Second}, false},
		{"Leeway61s", oidc.Config{Issuer: testIssuer, JWKSFile: file, Leeway: 61 * time.Second}, true},
		{"NegativeLeeway", oidc.Config{Issuer: testIssuer, JWKSFile: file, Leeway: -time.Second}, true},
		{"AllAsymmetricAlgorithms", oidc.Config{Issuer: testIssuer, JWKSFile: file, Algorithms: []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519"}}, false},
		{"HS256", oidc.Config{Issuer: testIssuer, JWKSFile: file, Algorithms: []string{"RS256", "HS256"}}, true},
		{"HS512", oidc.Config{Issuer: testIssuer, JWKSFile: file, Algorithms: []string{"HS512"}}, true},
		{"None", oidc.Config{Issuer: testIssuer, JWKSFile: file, Algorithms: []string{"none"}}, true},
		{"LowercaseAlg", oidc.Config{Issuer: testIssuer, JWKSFile: file, Algorithms: []string{"rs256"}}, true},
		{"UnknownAlg", oidc.Config{Issuer: testIssuer, JWKSFile: file, Algorithms: []string{"ES256K"}}, true},
		{"HTTPJWKSURL", oidc.Config{Issuer: testIssuer, JWKSURL: "http://auth.example.com/jwks"}, true},
		{"RelativeJWKSURL", oidc.Config{Issuer: testIssuer, JWKSURL: "/jwks"}, true},
		{"HTTPIssuerForDiscovery", oidc.Config{Issuer: "http://auth.example.com/"}, true},
		{"IssuerNotURLForDiscovery", oidc.Config{Issuer: "neostore"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := oidc.New(t.Context(), tt.cfg)
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Errorf("New: got error %v, want error: %v", err, tt.wantErr)
			}
		})
	}
}

// Rejections are logged at Debug with their reason, and never with the token.
func TestVerifier_Verify_Logging(t *testing.T) {
	f := newFixture(t)
	var buf bytes.Buffer
	cfg := config(t, f.idp, f.clock)
	cfg.Logger = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	v := newVerifier(t, cfg)

	tokens := []string{
		f.rsa.sign(t, f.claims(map[string]any{"exp": f.clock.Now().Add(-time.Hour).Unix()}), nil),
		f.rsa.sign(t, f.claims(map[string]any{"aud": "https://app.neostore.cloud/api"}), nil),
		f.rsa.sign(t, f.claims(nil), map[string]any{"kid": "nope"}),
		rsaSigner(t, "rsa-1", 2).sign(t, f.claims(nil), nil),
	}
	for _, tok := range tokens {
		_, err := v.Verify(context.Background(), tok)
		if err == nil {
			t.Fatal("Verify: got nil error")
		}
		for i, part := range strings.Split(tok, ".") {
			if strings.Contains(buf.String(), part) || strings.Contains(err.Error(), part) {
				t.Errorf("token segment %d appears in the log or error", i)
			}
		}
	}
	for _, want := range []string{oidc.ErrExpired.Error(), oidc.ErrAudience.Error(), oidc.ErrUnknownKey.Error(), oidc.ErrSignature.Error(), `https://app.neostore.cloud/api`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, buf.String())
		}
	}
}
