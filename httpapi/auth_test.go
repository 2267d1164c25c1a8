package httpapi_test

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
)

func TestAuth_Unauthenticated(t *testing.T) {
	const bearerAndAPIKey = `Bearer | ApiKey header="X-API-KEY"`
	tests := []struct {
		name      string
		header    http.Header
		challenge string // WWW-Authenticate values joined by " | "
	}{
		{"NoCredential", hdr(), bearerAndAPIKey},
		{"EmptyAPIKey", hdr("X-API-KEY", ""), `ApiKey header="X-API-KEY"`},
		{"UnknownAPIKey", hdr("X-API-KEY", "nsk_nope"), `ApiKey header="X-API-KEY"`},
		{"APIKeyWithTrailingGarbage", hdr("X-API-KEY", keyDemoRW+"x"), `ApiKey header="X-API-KEY"`},
		{"TwoAPIKeys", hdr("X-API-KEY", keyDemoRW, "X-API-KEY", keyDemoRW), `ApiKey header="X-API-KEY"`},
		{"APIKeyAndBearer", hdr("X-API-KEY", keyDemoRW, "Authorization", "Bearer "+tokenAllTenants), `Bearer error="invalid_request" | ApiKey header="X-API-KEY"`},
		{"TwoAuthorizationHeaders", hdr("Authorization", "Bearer "+tokenAllTenants, "Authorization", "Bearer "+tokenAllTenants), `Bearer error="invalid_request"`},
		{"BasicScheme", hdr("Authorization", "Basic dXNlcjpwYXNz"), bearerAndAPIKey},
		{"APIKeyInAuthorization", hdr("Authorization", "ApiKey "+keyDemoRW), bearerAndAPIKey},
		{"EmptyAuthorization", hdr("Authorization", ""), bearerAndAPIKey},
		{"BearerWithoutToken", hdr("Authorization", "Bearer"), `Bearer error="invalid_token"`},
		{"BearerWithSpacesOnly", hdr("Authorization", "Bearer   "), `Bearer error="invalid_token"`},
		{"BearerTokenWithSpace", hdr("Authorization", "Bearer abc def"), `Bearer error="invalid_token"`},
		{"BearerUnknownToken", hdr("Authorization", "Bearer abc.def.ghi"), `Bearer error="invalid_token"`},
		{"BearerSchemeLowerCaseUnknownToken", hdr("Authorization", "bearer abc.def.ghi"), `Bearer error="invalid_token"`},
		{"BearerCommaSeparated", hdr("Authorization", "Bearer "+tokenAllTenants+", Basic dXNlcjpwYXNz"), `Bearer error="invalid_token"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			resp := f.do(t, request{method: "GET", target: "/api/demo/secrets", header: tt.header})
			p := decodeProblem(t, resp, http.StatusUnauthorized)
			if p.Title != "Unauthorized" || p.Type != "https://tools.ietf.org/html/rfc9110#section-15.5.2" || p.Detail != "" {
				t.Errorf("problem = %+v, want Unauthorized 15.5.2 without detail", p)
			}
			if got := strings.Join(resp.Header.Values("WWW-Authenticate"), " | "); got != tt.challenge {
				t.Errorf("WWW-Authenticate = %s, want %s", got, tt.challenge)
			}
			if !strings.Contains(f.logs.String(), `"msg":"unauthenticated"`) {
				t.Errorf("the reason was not logged:\n%s", f.logs)
			}
		})
	}
}

func TestAuth_BearerRefusedWithoutTokenVerifier(t *testing.T) {
	f := newFixture(t, withoutTokens())
	resp := f.do(t, request{method: "GET", target: "/api/demo/secrets", header: hdr("Authorization", "Bearer "+tokenAllTenants)})
	decodeProblem(t, resp, http.StatusUnauthorized)
	if got, want := resp.Header.Get("WWW-Authenticate"), `Bearer error="invalid_token"`; got != want {
		t.Errorf("WWW-Authenticate = %s, want %s", got, want)
	}
	// API keys still work.
	if resp := f.do(t, request{method: "GET", target: "/api/demo/secrets", header: authRW()}); resp.StatusCode != 200 {
		t.Errorf("API key: status = %d, want 200", resp.StatusCode)
	}
}

func TestAuth_Accepted(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
	}{
		{"APIKey", hdr("X-API-KEY", keyDemoRW)},
		{"APIKeyLowerCaseHeaderName", http.Header{"X-Api-Key": {keyDemoRW}}},
		{"Bearer", hdr("Authorization", "Bearer "+tokenAllTenants)},
		{"BearerLowerCaseScheme", hdr("Authorization", "bearer "+tokenAllTenants)},
		{"BearerUpperCaseScheme", hdr("Authorization", "BEARER "+tokenAllTenants)},
		{"BearerTwoSpaces", hdr("Authorization", "Bearer  "+tokenAllTenants)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			rq := request{method: "GET", target: "/api/demo/secrets", header: tt.header}
			if resp := f.do(t, rq); resp.StatusCode != http.StatusOK {
				t.Errorf("status = %d, want 200; body %s", resp.StatusCode, readBody(t, resp))
			}
		})
	}
}

// TestAuth_HeaderNamesCaseInsensitive reads requests off the wire with
// header names and the scheme in other cases, as HTTP/2 clients (lower
// case) and hand-written clients send them.
func TestAuth_HeaderNamesCaseInsensitive(t *testing.T) {
	for _, raw := range []string{
		"GET /api/demo/secrets HTTP/1.1\r\nHost: x\r\nx-api-key: " + keyDemoRW + "\r\n\r\n",
		"GET /api/demo/secrets HTTP/1.1\r\nHost: x\r\nX-API-KEY: " + keyDemoRW + "\r\n\r\n",
		"GET /api/demo/secrets HTTP/1.1\r\nHost: x\r\nauthorization: BEARER " + tokenAllTenants + "\r\n\r\n",
	} {
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			t.Fatal(err)
		}
		f := newFixture(t)
		if resp := f.do(t, request{method: r.Method, target: r.URL.Path, header: r.Header}); resp.StatusCode != http.StatusOK {
			t.Errorf("%q: status = %d, want 200", raw, resp.StatusCode)
		}
	}
}

func TestAuth_Forbidden(t *testing.T) {
	tests := []struct {
		name      string
		method    string
		target    string
		header    http.Header
		challenge string
	}{
		{"OtherTenantsKey", "GET", "/api/demo/secrets", hdr("X-API-KEY", keyOtherRW), ""},
		{"ReadKeyCannotPut", "PUT", "/api/demo/secrets/k", hdr("X-API-KEY", keyDemoRead, "Content-Type", "application/json"), ""},
		{"ReadKeyCannotDelete", "DELETE", "/api/demo/secrets/k", hdr("X-API-KEY", keyDemoRead), ""},
		{"WriteKeyCannotList", "GET", "/api/demo/secrets", hdr("X-API-KEY", keyDemoWrite), ""},
		{"WriteKeyCannotGet", "GET", "/api/demo/secrets/k", hdr("X-API-KEY", keyDemoWrite), ""},
		{"TokenWithoutWrite", "PUT", "/api/demo/secrets/k", hdr("Authorization", "Bearer "+tokenDemoRead, "Content-Type", "application/json"),
			`Bearer error="insufficient_scope", scope="Secret.Write"`},
		{"TokenForOtherTenant", "GET", "/api/other/secrets", hdr("Authorization", "Bearer "+tokenDemoRead),
			`Bearer error="insufficient_scope", scope="Secret.Read"`},
		{"WildcardTenantIsNotAGrant", "GET", "/api/*/secrets", hdr("X-API-KEY", keyDemoRW), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			resp := f.do(t, request{method: tt.method, target: tt.target, body: `{"value":"v"}`, header: tt.header})
			p := decodeProblem(t, resp, http.StatusForbidden)
			if p.Title != "Forbidden" || p.Type != "https://tools.ietf.org/html/rfc9110#section-15.5.4" || p.Detail != "" {
				t.Errorf("problem = %+v, want Forbidden 15.5.4 without detail", p)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tt.challenge {
				t.Errorf("WWW-Authenticate = %q, want %q", got, tt.challenge)
			}
			if !strings.Contains(f.logs.String(), `"msg":"forbidden"`) {
				t.Errorf("the reason was not logged:\n%s", f.logs)
			}
		})
	}
}

// TestAuth_Order: 401 before 403 before 400, so that a caller without
// access learns nothing about which inputs are valid.
func TestAuth_Order(t *testing.T) {
	tests := []struct {
		name   string
		method string
		target string
		header http.Header
		status int
	}{
		{"NoCredentialBadTenantBadBody", "PUT", "/api/bad.tenant/secrets/bad.key", hdr("Content-Type", "text/html"), 401},
		{"UnknownKeyBadKeyName", "DELETE", "/api/demo/secrets/bad.key", hdr("X-API-KEY", "nope"), 401},
		{"OtherTenantBadKeyName", "DELETE", "/api/demo/secrets/bad.key", hdr("X-API-KEY", keyOtherRW), 403},
		{"ReadOnlyBadBody", "PUT", "/api/demo/secrets/k", hdr("X-API-KEY", keyDemoRead, "Content-Type", "text/html"), 403},
		{"InvalidTenantNotGranted", "GET", "/api/bad.tenant/secrets", hdr("X-API-KEY", keyDemoRW), 403},
		{"InvalidTenantForAllTenantsToken", "GET", "/api/bad.tenant/secrets", hdr("Authorization", "Bearer "+tokenAllTenants), 400},
		{"GrantedBadKeyName", "DELETE", "/api/demo/secrets/bad.key", hdr("X-API-KEY", keyDemoRW), 400},
		{"GrantedBadContentType", "PUT", "/api/demo/secrets/k", hdr("X-API-KEY", keyDemoRW, "Content-Type", "text/html"), 415},
		{"UnavailableVerifierBadKeyName", "DELETE", "/api/demo/secrets/bad.key", hdr("X-API-KEY", "unavailable"), 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			resp := f.do(t, request{method: tt.method, target: tt.target, body: `not json`, header: tt.header})
			decodeProblem(t, resp, tt.status)
		})
	}
}

// TestAuth_CredentialsNeverLogged: the reasons for 401 and 403 are logged,
// the credentials are not.
func TestAuth_CredentialsNeverLogged(t *testing.T) {
	f := newFixture(t)
	f.do(t, request{method: "GET", target: "/api/demo/secrets", header: hdr("X-API-KEY", "nsk_wrong_but_secret")})
	f.do(t, request{method: "GET", target: "/api/other/secrets", header: hdr("X-API-KEY", keyDemoRW)})
	f.do(t, request{method: "GET", target: "/api/demo/secrets", header: hdr("Authorization", "Bearer secret.token.value")})
	f.do(t, request{method: "GET", target: "/api/demo/secrets", header: hdr("Authorization", "Basic c2VjcmV0")})
	logs := f.logs.String()
	for _, credential := range []string{"nsk_wrong_but_secret", keyDemoRW, "secret.token.value", "c2VjcmV0"} {
		if strings.Contains(logs, credential) {
			t.Errorf("log contains credential %q:\n%s", credential, logs)
		}
	}
}
