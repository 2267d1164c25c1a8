package httpapi

import (
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/neostore/neostore-secrets"
)

// WWW-Authenticate challenges.
const (
	challengeBearer         = "Bearer"
	challengeAPIKey         = `ApiKey header="X-API-KEY"`
	challengeInvalidToken   = `Bearer error="invalid_token"`
	challengeInvalidRequest = `Bearer error="invalid_request"`
)

// authenticator checks the credential of a request and the tenant and
// scope its principal was granted.
type authenticator struct {
	apiKeys  neostore.CredentialVerifier
	tokens   neostore.CredentialVerifier // nil: bearer tokens are refused
	out      *responder
	observer Observer
	limiter  Limiter // nil: no rate limits
}

// require admits a request to next only when it carries exactly one valid
// credential (else 401) whose principal was granted the path's tenant and
// scope (else 403). It runs before any input validation, so a caller
// without access learns nothing about which inputs are valid. next finds
// the principal in the request context.
func (a *authenticator) require(scope neostore.Scope, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := a.authenticate(w, r)
		if !ok {
			return
		}
		requestStateFrom(r.Context()).setPrincipal(p)
		tenant := r.PathValue("tenantId")
		var reason, label string
		switch {
		case !p.CanAccessTenant(tenant):
			reason, label = "tenant not granted", "tenant_not_granted"
		case !p.Scopes.Has(scope):
			reason, label = "scope not granted", "scope_not_granted"
		}
		if reason != "" {
			a.observer.AuthFailure(label)
			a.out.log(r.Context(), slog.LevelInfo, "forbidden",
				slog.String("reason", reason),
				slog.String("principalKind", p.Kind),
				slog.String("principalId", p.ID),
				slog.String("scope", scope.String()))
			if p.Kind == neostore.PrincipalToken {
				w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope", scope="`+scope.String()+`"`)
			}
			a.out.problem(w, r, http.StatusForbidden, "", nil)
			return
		}
		if a.limiter != nil {
			if ok, bucket, wait := a.limiter.Allow(p.Kind+":"+p.ID, tenant); !ok {
				a.observer.RateLimited(bucket)
				a.out.log(r.Context(), slog.LevelInfo, "rate limited", slog.String("bucket", bucket), slog.String("principalId", p.ID))
				w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
				a.out.problem(w, r, http.StatusTooManyRequests, "", nil)
				return
			}
		}
		next.ServeHTTP(w, r.WithContext(neostore.NewContextWithPrincipal(r.Context(), p)))
	})
}

// authenticate returns the principal of the request's one credential, an
// X-API-KEY header or an Authorization: Bearer header. Otherwise it writes
// the 401 (or the 503 or 500 of a verifier that failed) and returns false.
func (a *authenticator) authenticate(w http.ResponseWriter, r *http.Request) (*neostore.Principal, bool) {
	keys := r.Header["X-Api-Key"]
	auths := r.Header["Authorization"]
	var (
		verifier   neostore.CredentialVerifier
		credential string
		challenge  []string
		label      string // metrics reason when the verifier refuses
	)
	switch {
	case len(keys) == 0 && len(auths) == 0:
		return a.unauthenticated(w, r, "no_credential", "no credential", hdrBearerAPIKey)
	case len(keys) > 0 && len(auths) > 0:
		return a.unauthenticated(w, r, "ambiguous_credentials", "both an API key and an Authorization header",
			hdrInvalidRequestAPIKey)
	case len(keys) > 1:
		return a.unauthenticated(w, r, "ambiguous_credentials", "more than one X-API-KEY header", hdrAPIKeyChallenge)
	case len(auths) > 1:
		return a.unauthenticated(w, r, "ambiguous_credentials", "more than one Authorization header", hdrInvalidRequest)
	case len(keys) == 1:
		if keys[0] == "" {
			return a.unauthenticated(w, r, "malformed_credential", "empty API key", hdrAPIKeyChallenge)
		}
		verifier, credential, challenge, label = a.apiKeys, keys[0], hdrAPIKeyChallenge, "invalid_api_key"
	default:
		scheme, token, ok := parseAuthorization(auths[0])
		switch {
		case !strings.EqualFold(scheme, "Bearer"):
			return a.unauthenticated(w, r, "unsupported_scheme", "unsupported Authorization scheme", hdrBearerAPIKey)
		case !ok:
			return a.unauthenticated(w, r, "malformed_credential", "malformed bearer credential", hdrInvalidToken)
		case a.tokens == nil:
			return a.unauthenticated(w, r, "tokens_disabled", "bearer tokens are not accepted", hdrInvalidToken)
		}
		verifier, credential, challenge, label = a.tokens, token, hdrInvalidToken, "invalid_token"
	}

	p, err := verifier.Verify(r.Context(), credential)
	switch {
	case err == nil && p != nil:
		return p, true
	case err == nil:
		a.out.error(w, r, neostore.Errorf(neostore.EINTERNAL, "verifier returned no principal and no error"))
	case neostore.ErrorCode(err) == neostore.EUNAUTHENTICATED:
		return a.unauthenticated(w, r, label, neostore.ErrorMessage(err), challenge)
	default:
		a.out.error(w, r, err)
	}
	return nil, false
}

// unauthenticated logs why a request is refused and writes the 401.
func (a *authenticator) unauthenticated(w http.ResponseWriter, r *http.Request, label, reason string, challenge []string) (*neostore.Principal, bool) {
	a.out.log(r.Context(), slog.LevelInfo, "unauthenticated", slog.String("reason", reason))
	a.observer.AuthFailure(label)
	w.Header()["Www-Authenticate"] = challenge
	a.out.problem(w, r, http.StatusUnauthorized, "", nil)
	return nil, false
}

// parseAuthorization splits an Authorization header value into its scheme
// and token68 credentials (RFC 9110 section 11.4: auth-scheme 1*SP
// token68). The scheme is returned whenever the value starts with one, so
// that a caller can tell a malformed Bearer credential from another
// scheme; token is non-empty only when ok.
func parseAuthorization(v string) (scheme, token string, ok bool) {
	i := 0
	for i < len(v) && isTchar(v[i]) {
		i++
	}
	scheme = v[:i]
	if i == 0 {
		return "", "", false
	}
	j := i
	for j < len(v) && v[j] == ' ' {
		j++
	}
	if j == i || !isToken68(v[j:]) {
		return scheme, "", false
	}
	return scheme, v[j:], true
}

// isTchar reports whether c may appear in an RFC 9110 token.
func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// isToken68 reports whether s is an RFC 9110 token68:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isToken68(s string) bool {
	n := 0
	for n < len(s) {
		c := s[n]
		if ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' {
			n++
			continue
		}
		break
	}
	if n == 0 {
		return false
	}
	for ; n < len(s); n++ {
		if s[n] != '=' {
			return false
		}
	}
	return true
}

// authenticated admits a request to next when it carries exactly one valid
// credential, whatever tenants and scopes it was granted: for GET /api/me,
// which tells a caller only about itself. The rate limit applies as on the
// tenant routes, with the tenant-less requests sharing one tenant bucket.
func (a *authenticator) authenticated(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := a.authenticate(w, r)
		if !ok {
			return
		}
		requestStateFrom(r.Context()).setPrincipal(p)
		if a.limiter != nil {
			if ok, bucket, wait := a.limiter.Allow(p.Kind+":"+p.ID, ""); !ok {
				a.observer.RateLimited(bucket)
				a.out.log(r.Context(), slog.LevelInfo, "rate limited", slog.String("bucket", bucket), slog.String("principalId", p.ID))
				w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
				a.out.problem(w, r, http.StatusTooManyRequests, "", nil)
				return
			}
		}
		next.ServeHTTP(w, r.WithContext(neostore.NewContextWithPrincipal(r.Context(), p)))
	})
}
