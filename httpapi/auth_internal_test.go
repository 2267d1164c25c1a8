package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/neostore/neostore-secrets"
)

func TestParseAuthorization(t *testing.T) {
	tests := []struct {
		in            string
		scheme, token string
		ok            bool
	}{
		{"Bearer abc.def.ghi", "Bearer", "abc.def.ghi", true},
		{"bearer abc", "bearer", "abc", true},
		{"Bearer   abc", "Bearer", "abc", true},
		{"Bearer abc==", "Bearer", "abc==", true},
		{"Bearer a/b+c~d_e-f.g", "Bearer", "a/b+c~d_e-f.g", true},
		{"Basic dXNlcjpwYXNz", "Basic", "dXNlcjpwYXNz", true},
		{"Bearer", "Bearer", "", false},
		{"Bearer ", "Bearer", "", false},
		{"Bearer abc def", "Bearer", "", false},
		{"Bearer abc ", "Bearer", "", false},
		{"Bearer =abc", "Bearer", "", false},
		{"Bearer ab=c", "Bearer", "", false},
		{"Bearer\tabc", "Bearer", "", false},
		{"Bearer abc,", "Bearer", "", false},
		{"Bearer \"abc\"", "Bearer", "", false},
		{"Bearerabc", "Bearerabc", "", false},
		{" Bearer abc", "", "", false},
		{"", "", "", false},
		{"Bearer abc\x00", "Bearer", "", false},
		{"Bearer äbc", "Bearer", "", false},
	}
	for _, tt := range tests {
		scheme, token, ok := parseAuthorization(tt.in)
		if scheme != tt.scheme || token != tt.token || ok != tt.ok {
			t.Errorf("parseAuthorization(%q) = %q, %q, %v; want %q, %q, %v", tt.in, scheme, token, ok, tt.scheme, tt.token, tt.ok)
		}
	}
}

// FuzzParseAuthorization checks the properties callers rely on: it never
// panics; the scheme is a prefix of the input made of token characters;
// a token is returned only with ok, is token68 (so has no spaces, commas
// or quotes), and with the scheme and the spaces between them makes up
// the whole input.
func FuzzParseAuthorization(f *testing.F) {
	for _, s := range []string{"Bearer abc.def.ghi", "Basic dXNlcjpwYXNz", "Bearer", "Bearer  a==", "bearer a b", "", " x", "Bearer =", "ApiKey x,y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		scheme, token, ok := parseAuthorization(in)
		if !strings.HasPrefix(in, scheme) {
			t.Fatalf("scheme %q is not a prefix of %q", scheme, in)
		}
		for i := 0; i < len(scheme); i++ {
			if !isTchar(scheme[i]) {
				t.Fatalf("scheme %q has non-token byte %q", scheme, scheme[i])
			}
		}
		if !ok {
			if token != "" {
				t.Fatalf("token %q returned without ok", token)
			}
			return
		}
		if scheme == "" || token == "" {
			t.Fatalf("ok with scheme %q and token %q", scheme, token)
		}
		if strings.ContainsAny(token, " \t,\"\r\n\x00") {
			t.Fatalf("token %q contains a separator", token)
		}
		if !isToken68(token) {
			t.Fatalf("token %q is not token68", token)
		}
		middle, found := strings.CutPrefix(in, scheme)
		if !found || !strings.HasSuffix(middle, token) {
			t.Fatalf("%q is not scheme %q + spaces + token %q", in, scheme, token)
		}
		if spaces := strings.TrimSuffix(middle, token); spaces == "" || strings.Trim(spaces, " ") != "" {
			t.Fatalf("%q: between scheme and token is %q, want one or more spaces", in, spaces)
		}
	})
}

type oneKey struct{ p *neostore.Principal }

func (v oneKey) Verify(_ context.Context, credential string) (*neostore.Principal, error) {
	if credential == "good" {
		return v.p, nil
	}
	return nil, neostore.Errorf(neostore.EUNAUTHENTICATED, "Unknown credential.")
}

// TestRequire_PutsPrincipalInContext: the handler behind require finds the
// verified principal in its request context, and runs only when admitted.
func TestRequire_PutsPrincipalInContext(t *testing.T) {
	want := &neostore.Principal{Kind: neostore.PrincipalAPIKey, ID: "k1", Scopes: neostore.ScopeRead, Tenants: []string{"demo"}}
	a := &authenticator{apiKeys: oneKey{want}, out: newResponder(slog.New(slog.DiscardHandler)), observer: nopObserver{}}
	var got *neostore.Principal
	var calls int
	mux := http.NewServeMux()
	mux.Handle("/api/{tenantId}/secrets", a.require(neostore.ScopeRead, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		got = neostore.PrincipalFromContext(r.Context())
	})))

	r := httptest.NewRequest("GET", "/api/demo/secrets", nil)
	r.Header.Set("X-API-KEY", "good")
	mux.ServeHTTP(httptest.NewRecorder(), r)
	if got != want {
		t.Errorf("principal in context = %+v, want %+v", got, want)
	}

	for _, credential := range []string{"bad", ""} {
		r := httptest.NewRequest("GET", "/api/demo/secrets", nil)
		r.Header.Set("X-API-KEY", credential)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, r)
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("credential %q: status = %d, want 401", credential, rec.Code)
		}
	}
	if calls != 1 {
		t.Errorf("handler ran %d times, want once (only for the good credential)", calls)
	}
}
