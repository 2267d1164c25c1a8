package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

const (
	testIssuer   = "https://auth.neostore.cloud/"
	testAudience = "https://app.neostore.cloud/api/"
	tenantClaim  = "https://app.neostore.cloud/tenants"
)

// issuer is a test identity provider: signing keys and a JWKS endpoint on
// loopback that can be changed or taken down while the server runs.
type issuer struct {
	mu     sync.Mutex
	keys   map[string]any // kid -> private key
	public []jwk.Key
	down   atomic.Bool
	hits   atomic.Int64
	srv    *httptest.Server
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	is := &issuer{keys: map[string]any{}}
	is.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		is.hits.Add(1)
		if is.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		is.mu.Lock()
		set := jwk.NewSet()
		for _, k := range is.public {
			set.AddKey(k)
		}
		is.mu.Unlock()
		json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(is.srv.Close)
	return is
}

// addKey creates a key of the given algorithm under kid and publishes it.
func (is *issuer) addKey(t *testing.T, kid string, alg jwa.SignatureAlgorithm) {
	t.Helper()
	var priv any
	var err error
	switch alg {
	case jwa.RS256():
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case jwa.ES256():
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	pub, err := jwk.PublicKeyOf(priv)
	if err != nil {
		t.Fatal(err)
	}
	pub.Set(jwk.KeyIDKey, kid)
	pub.Set(jwk.AlgorithmKey, alg)
	is.mu.Lock()
	is.keys[kid] = priv
	is.public = append(is.public, pub)
	is.mu.Unlock()
}

// sign makes a JWS over claims with the key kid and the algorithm alg.
func (is *issuer) sign(t *testing.T, kid string, alg jwa.SignatureAlgorithm, claims map[string]any) string {
	t.Helper()
	is.mu.Lock()
	priv := is.keys[kid]
	is.mu.Unlock()
	payload, _ := json.Marshal(claims)
	hdr := jws.NewHeaders()
	hdr.Set(jws.KeyIDKey, kid)
	tok, err := jws.Sign(payload, jws.WithKey(alg, priv, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(tok)
}

// claims returns valid claims for tenants and scopes, with overrides applied
// (a nil override value deletes the claim).
func claims(tenants any, scope string, overrides map[string]any) map[string]any {
	now := time.Now()
	c := map[string]any{
		"iss":       testIssuer,
		"aud":       []string{testAudience, "https://auth.neostore.cloud/userinfo"},
		"sub":       "auth0|backoffice-user",
		"azp":       "backoffice-client",
		"iat":       now.Add(-time.Minute).Unix(),
		"exp":       now.Add(time.Hour).Unix(),
		"scope":     scope,
		tenantClaim: tenants,
	}
	for k, v := range overrides {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func b64(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

// unsignedToken is an alg none token.
func unsignedToken(c map[string]any) string {
	return b64(map[string]any{"alg": "none", "kid": "rsa-1", "typ": "JWT"}) + "." + b64(c) + "."
}

// hmacConfusionToken is signed HS256 with the RSA public key's DER bytes as
// the secret: the classic algorithm-confusion forgery.
func hmacConfusionToken(t *testing.T, is *issuer, kid string, c map[string]any) string {
	t.Helper()
	is.mu.Lock()
	priv := is.keys[kid].(*rsa.PrivateKey)
	is.mu.Unlock()
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	signing := b64(map[string]any{"alg": "HS256", "kid": kid, "typ": "JWT"}) + "." + b64(c)
	mac := hmac.New(sha256.New, der)
	mac.Write([]byte(signing))
	return signing + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func TestServe_BearerTokens(t *testing.T) {
	is := newIssuer(t)
	is.addKey(t, "rsa-1", jwa.RS256())
	is.addKey(t, "ec-1", jwa.ES256())
	dataDir := filepath.Join(t.TempDir(), "data")
	srv := startServer(t, dataDir, newMasterKey(t),
		"--jwt-issuer", testIssuer, "--jwks-url", is.srv.URL, "--jwks-min-refresh-interval", "300ms", "--log-level", "debug")
	apiKey := createKey(t, dataDir, "acme", "Secret.Read", "Secret.Write")
	if status, _, _ := do(t, "PUT", srv.base+"/api/acme/secrets/db-password", apiKey, `{"value":"hunter2"}`); status != 204 {
		t.Fatalf("seeding PUT = %d", status)
	}

	rs := func(c map[string]any) string { return is.sign(t, "rsa-1", jwa.RS256(), c) }
	es := func(c map[string]any) string { return is.sign(t, "ec-1", jwa.ES256(), c) }
	rw := "Secret.Read Secret.Write"
	acme := []string{"acme"}
	now := time.Now()

	const (
		invalidToken = `Bearer error="invalid_token"`
		needRead     = `Bearer error="insufficient_scope", scope="Secret.Read"`
		needWrite    = `Bearer error="insufficient_scope", scope="Secret.Write"`
	)
	type tc struct {
		name       string
		method     string
		tenant     string
		token      func() string
		headers    map[string][]string // extra headers, replacing Authorization when set
		wantStatus int
		wantAuth   string // WWW-Authenticate, "" = must be absent
	}
	cases := []tc{
		{"RS256Valid", "GET", "acme", func() string { return rs(claims(acme, rw, nil)) }, nil, 200, ""},
		{"ES256Valid", "GET", "acme", func() string { return es(claims(acme, rw, nil)) }, nil, 200, ""},
		{"AlgNone", "GET", "acme", func() string { return unsignedToken(claims(acme, rw, nil)) }, nil, 401, invalidToken},
		{"RS256ToHS256Confusion", "GET", "acme", func() string { return hmacConfusionToken(t, is, "rsa-1", claims(acme, rw, nil)) }, nil, 401, invalidToken},
		{"Expired", "GET", "acme", func() string {
			return rs(claims(acme, rw, map[string]any{"exp": now.Add(-5 * time.Minute).Unix(), "iat": now.Add(-time.Hour).Unix()}))
		}, nil, 401, invalidToken},
		{"NotBeforeInFuture", "GET", "acme", func() string { return rs(claims(acme, rw, map[string]any{"nbf": now.Add(10 * time.Minute).Unix()})) }, nil, 401, invalidToken},
		{"MissingExp", "GET", "acme", func() string { return rs(claims(acme, rw, map[string]any{"exp": nil})) }, nil, 401, invalidToken},
		{"WrongIssuer", "GET", "acme", func() string { return rs(claims(acme, rw, map[string]any{"iss": "https://evil.example/"})) }, nil, 401, invalidToken},
		{"AudienceWithoutTrailingSlash", "GET", "acme", func() string { return rs(claims(acme, rw, map[string]any{"aud": "https://app.neostore.cloud/api"})) }, nil, 401, invalidToken},
		{"AudienceArrayWithOurs", "GET", "acme", func() string { return rs(claims(acme, rw, map[string]any{"aud": []string{"other", testAudience}})) }, nil, 200, ""},
		{"AudienceArrayWithoutOurs", "GET", "acme", func() string { return rs(claims(acme, rw, map[string]any{"aud": []string{"other"}})) }, nil, 401, invalidToken},
		{"ScopeString", "GET", "acme", func() string { return rs(claims(acme, "openid Secret.Read", nil)) }, nil, 200, ""},
		{"ScpString", "GET", "acme", func() string { return rs(claims(acme, "", map[string]any{"scope": nil, "scp": "Secret.Read"})) }, nil, 200, ""},
		{"ScpArray", "GET", "acme", func() string {
			return rs(claims(acme, "", map[string]any{"scope": nil, "scp": []string{"Secret.Read"}}))
		}, nil, 200, ""},
		{"PermissionsArray", "GET", "acme", func() string {
			return rs(claims(acme, "", map[string]any{"scope": nil, "permissions": []string{"Secret.Read"}}))
		}, nil, 200, ""},
		{"LowercaseScope", "GET", "acme", func() string { return rs(claims(acme, "secret.read", nil)) }, nil, 403, needRead},
		{"ScopeWithSuffix", "GET", "acme", func() string { return rs(claims(acme, "Secret.ReadX", nil)) }, nil, 403, needRead},
		{"CommaSeparatedScopes", "GET", "acme", func() string { return rs(claims(acme, "Secret.Read,Secret.Write", nil)) }, nil, 403, needRead},
		{"ReadScopeCannotWrite", "DELETE", "acme", func() string { return rs(claims(acme, "Secret.Read", nil)) }, nil, 403, needWrite},
		{"TenantAOnTenantB", "GET", "globex", func() string { return rs(claims(acme, rw, nil)) }, nil, 403, needRead},
		{"NoTenantClaim", "GET", "acme", func() string { return rs(claims(nil, rw, map[string]any{tenantClaim: nil})) }, nil, 403, needRead},
		{"TenantString", "GET", "acme", func() string { return rs(claims("acme", rw, nil)) }, nil, 200, ""},
		{"WildcardTenant", "GET", "acme", func() string { return rs(claims([]string{"*"}, rw, nil)) }, nil, 200, ""},
		{"UnknownKid", "GET", "acme", func() string {
			c := claims(acme, rw, nil)
			is.addKey(t, "unpublished", jwa.RS256())
			is.mu.Lock()
			is.public = is.public[:len(is.public)-1] // signed with a key the JWKS does not list
			is.mu.Unlock()
			return is.sign(t, "unpublished", jwa.RS256(), c)
		}, nil, 401, invalidToken},
		{"BothCredentials", "GET", "acme", func() string { return rs(claims(acme, rw, nil)) }, map[string][]string{"X-API-KEY": {apiKey}}, 401, ""},
		{"TwoAuthorizationHeaders", "GET", "acme", nil, map[string][]string{"Authorization": {"Bearer " + rs(claims(acme, rw, nil)), "Bearer " + rs(claims(acme, rw, nil))}}, 401, ""},
		{"BasicScheme", "GET", "acme", nil, map[string][]string{"Authorization": {"Basic dXNlcjpwYXNz"}}, 401, ""},
		{"NoCredential", "GET", "acme", nil, map[string][]string{}, 401, "Bearer"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, srv.base+"/api/"+c.tenant+"/secrets/db-password", nil)
			if c.token != nil {
				req.Header.Set("Authorization", "Bearer "+c.token())
			}
			for k, vs := range c.headers {
				for _, v := range vs {
					req.Header.Add(k, v)
				}
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, c.wantStatus)
			}
			got := resp.Header.Values("WWW-Authenticate")
			switch {
			case c.wantAuth == "" && c.wantStatus != 401 && len(got) != 0:
				t.Errorf("WWW-Authenticate = %q, want none", got)
			case c.wantAuth != "" && (len(got) == 0 || got[0] != c.wantAuth):
				t.Errorf("WWW-Authenticate = %q, want %q first", got, c.wantAuth)
			case c.wantStatus == 401 && len(got) == 0:
				t.Errorf("401 without WWW-Authenticate")
			}
			if c.wantStatus == 401 && c.token != nil && len(c.headers) == 0 && strings.Contains(strings.Join(got, " "), "error=") && !strings.Contains(got[0], "invalid_token") {
				t.Errorf("WWW-Authenticate = %q names the wrong error", got)
			}
		})
	}

	t.Run("KeyRotationWithoutRestart", func(t *testing.T) {
		time.Sleep(350 * time.Millisecond) // past the refresh rate limit the UnknownKid case used
		is.addKey(t, "rsa-2", jwa.RS256())
		tok := is.sign(t, "rsa-2", jwa.RS256(), claims(acme, rw, nil))
		req, _ := http.NewRequest("GET", srv.base+"/api/acme/secrets/db-password", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("token signed with a newly published key = %d, want 200", resp.StatusCode)
		}
	})

	t.Run("JWKSEndpointDown", func(t *testing.T) {
		is.down.Store(true)
		defer is.down.Store(false)
		time.Sleep(350 * time.Millisecond)
		for _, c := range []struct {
			name string
			tok  string
			want int
		}{
			{"CachedKeyStillWorks", rs(claims(acme, rw, nil)), 200},
			{"UnknownKidIs401Not500", func() string {
				is.addKey(t, "rsa-3", jwa.RS256())
				return is.sign(t, "rsa-3", jwa.RS256(), claims(acme, rw, nil))
			}(), 401},
		} {
			req, _ := http.NewRequest("GET", srv.base+"/api/acme/secrets/db-password", nil)
			req.Header.Set("Authorization", "Bearer "+c.tok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.want {
				t.Errorf("%s: status = %d, want %d", c.name, resp.StatusCode, c.want)
			}
		}
	})

	t.Run("ReasonLoggedNotReturned", func(t *testing.T) {
		tok := rs(claims(acme, rw, map[string]any{"iss": "https://evil.example/"}))
		req, _ := http.NewRequest("GET", srv.base+"/api/acme/secrets/db-password", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if strings.Contains(strings.ToLower(strings.Join(mapStrings(body), " ")), "issuer") {
			t.Errorf("401 body names the reason: %v", body)
		}
		if logs := srv.stderr.String(); !strings.Contains(logs, "bearer token rejected") || !strings.Contains(logs, "issuer") {
			t.Errorf("the rejection reason is not in the log")
		}
		if logs := srv.stderr.String(); strings.Contains(logs, tok) || strings.Contains(logs, strings.Split(tok, ".")[2]) {
			t.Errorf("the token reached the log")
		}
	})
}

func mapStrings(m map[string]any) []string {
	var out []string
	for k, v := range m {
		out = append(out, k)
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
