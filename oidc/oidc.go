// Package oidc verifies OAuth2/OIDC bearer access tokens (signed JWTs)
// offline, against signing keys fetched from the issuer and cached, and turns
// them into a neostore.Principal.
//
// It is built on github.com/lestrrat-go/jwx/v3 rather than
// github.com/coreos/go-oidc/v3 because go-oidc targets ID tokens: it has no
// configurable leeway (nbf gets a fixed five-minute allowance, iat is not
// checked at all) and its remote key set refetches on every unknown kid with
// no rate limit we can set. Access tokens need exp, nbf and iat checked
// against one bounded leeway and a key lookup that a flood of forged kids
// cannot turn into a flood of requests to the issuer.
//
// Signing keys come only from the configured JWKS (file, URL or OIDC
// discovery). The jku, x5u, x5c and jwk header parameters of a token are
// never followed or used, whatever they say.
package oidc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/neostore/neostore-secrets"
)

// Defaults applied by New to zero Config fields.
const (
	// DefaultAudience is the API's audience, trailing slash included.
	DefaultAudience = "https://app.neostore.cloud/api/"
	// DefaultTenantClaim is the custom claim that lists granted tenants.
	DefaultTenantClaim = "https://app.neostore.cloud/tenants"
	// DefaultLeeway is the clock skew allowed on exp, nbf and iat.
	DefaultLeeway = 30 * time.Second
	// DefaultRefreshInterval is the period of the background key refresh.
	DefaultRefreshInterval = 15 * time.Minute
	// DefaultMinRefreshInterval is the least time between two refreshes
	// triggered by unknown kids.
	DefaultMinRefreshInterval = time.Minute
	// DefaultHTTPTimeout bounds each discovery or JWKS request.
	DefaultHTTPTimeout = 10 * time.Second
)

// MaxLeeway is the largest clock-skew allowance New accepts; a larger one
// would let expired tokens live on noticeably past their exp.
const MaxLeeway = 60 * time.Second

// MaxTokenSize is the longest token Verify parses; anything longer is
// rejected before any decoding, so an oversized header costs nothing.
const MaxTokenSize = 16 << 10

// defaultAlgorithms are the signature algorithms accepted when
// Config.Algorithms is empty.
var defaultAlgorithms = []string{"RS256", "PS256", "ES256", "EdDSA"}

// supportedAlgorithms are the names Config.Algorithms may list: asymmetric
// signatures only, so a public key can never double as an HMAC secret.
var supportedAlgorithms = []string{
	"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512", "EdDSA", "Ed25519",
}

// defaultScopeClaims are the claims read for scopes when Config.ScopeClaims
// is empty: OAuth2/Auth0 "scope", Entra/Okta "scp", Auth0 RBAC "permissions".
var defaultScopeClaims = []string{"scope", "scp", "permissions"}

// Reasons a token is rejected. Verify's error matches exactly one of them
// with errors.Is, and is also a *neostore.Error with code EUNAUTHENTICATED and
// a generic message, so the reason reaches logs and tests but never clients.
var (
	// ErrMalformed is returned when the token is over MaxTokenSize, is not a
	// compact JWS, has a crit or b64 header, or its claims are not JSON of
	// the registered types.
	ErrMalformed = errors.New("malformed token")

	// ErrAlgorithm is returned when alg is missing, not allowlisted, or does
	// not fit the key named by kid (type, curve, or the key's own alg/use).
	ErrAlgorithm = errors.New("signature algorithm not allowed")

	// ErrUnknownKey is returned when no key in the JWKS has the token's kid,
	// even after the refresh that an unknown kid may trigger.
	ErrUnknownKey = errors.New("signing key not found")

	// ErrSignature is returned when a fitting key exists but the signature
	// does not verify with it.
	ErrSignature = errors.New("signature does not verify")

	// ErrExpired is returned when exp is in the past by more than the leeway.
	ErrExpired = errors.New("token expired")

	// ErrNotYetValid is returned when nbf or iat is in the future by more
	// than the leeway.
	ErrNotYetValid = errors.New("token not yet valid")

	// ErrIssuer is returned when iss is missing or not exactly Config.Issuer.
	ErrIssuer = errors.New("issuer does not match")

	// ErrAudience is returned when aud is missing or has no member exactly
	// equal to Config.Audience.
	ErrAudience = errors.New("audience does not match")

	// ErrMissingClaim is returned when exp or sub is missing (or sub empty).
	ErrMissingClaim = errors.New("required claim missing")
)

// unauthenticated is the client-facing side of every rejection.
func unauthenticated() *neostore.Error {
	return neostore.Errorf(neostore.EUNAUTHENTICATED, "The bearer token is invalid or expired.")
}

// rejection is the error Verify returns: one reason, a detail for the log
// that never contains the token, and the client-safe *neostore.Error.
type rejection struct {
	reason error
	detail string
}

func reject(reason error, format string, args ...any) *rejection {
	return &rejection{reason: reason, detail: fmt.Sprintf(format, args...)}
}

func (r *rejection) Error() string {
	if r.detail == "" {
		return "oidc: " + r.reason.Error()
	}
	return "oidc: " + r.reason.Error() + ": " + r.detail
}

func (r *rejection) Unwrap() []error { return []error{r.reason, unauthenticated()} }

// Config configures a Verifier. The zero value of each field except Issuer
// means the documented default.
type Config struct {
	// Issuer is the expected iss claim, compared exactly (a trailing slash
	// matters). Required. Without JWKSFile or JWKSURL it is also where OIDC
	// discovery looks: Issuer without its trailing slash +
	// "/.well-known/openid-configuration", whose "issuer" must equal Issuer.
	Issuer string

	// Audience is the value aud must contain, compared exactly. Default
	// DefaultAudience; "https://app.neostore.cloud/api" (no slash) differs.
	Audience string

	// JWKSFile is a local JWKS, for air-gapped installs and tests. It takes
	// precedence over JWKSURL and discovery, and is re-read on refresh so a
	// replaced file rotates keys without a restart.
	JWKSFile string

	// JWKSURL is fetched for the keys when JWKSFile is empty. Like a
	// discovered jwks_uri it must be https, or http to a loopback host.
	JWKSURL string

	// Algorithms allowlists the token alg values. Default RS256, PS256,
	// ES256, EdDSA. Only asymmetric algorithms may be listed: New refuses
	// HS256/384/512, "none" and anything unknown.
	Algorithms []string

	// Leeway is the clock skew allowed on exp, nbf and iat. Default 30s;
	// New refuses more than MaxLeeway (60s) or a negative value.
	Leeway time.Duration

	// ScopeClaims are the claims whose union gives the scopes. A string
	// value is split on spaces, an array is taken element by element; each
	// name must be exactly "Secret.Read" or "Secret.Write". Default scope,
	// scp, permissions.
	ScopeClaims []string

	// TenantClaim names the claim listing granted tenant ids (an array or a
	// single string; "*" grants every tenant). Default DefaultTenantClaim.
	// A token without it authenticates but is granted no tenant.
	TenantClaim string

	// RefreshInterval is how often keys are refetched in the background, so
	// keys the issuer removed stop verifying. Default 15m.
	RefreshInterval time.Duration

	// MinRefreshInterval rate-limits fetches triggered by tokens with an
	// unknown kid (key rotation): at most one per interval, successful or
	// not, whatever the number of such tokens. It is also the retry delay of
	// the background refresh after a failure. Default 1m.
	MinRefreshInterval time.Duration

	// HTTPClient fetches discovery documents and JWKS. Default: a client
	// with a 10s timeout.
	HTTPClient *http.Client

	// Now is the clock for token validity and the refresh rate limit.
	// Default time.Now.
	Now func() time.Time

	// Logger receives rejection reasons at Debug and key-fetch failures at
	// Warn/Error. Tokens are never logged. Default: discard.
	Logger *slog.Logger
}

// Verifier checks bearer tokens against one issuer's keys. It is safe for
// concurrent use and implements neostore.CredentialVerifier.
type Verifier struct {
	issuer      string
	audience    string
	algorithms  []string
	leeway      time.Duration
	scopeClaims []string
	tenantClaim string
	now         func() time.Time
	log         *slog.Logger
	keys        *keyCache
}

var _ neostore.CredentialVerifier = (*Verifier)(nil)

// New validates cfg, loads the signing keys once and starts refreshing them
// in the background until ctx is done.
//
// With JWKSFile, New fails if the file cannot be read or holds no usable
// key: that is a configuration error a restart will not fix. With JWKSURL
// or discovery, a failed first fetch is logged at Error and New still
// returns the Verifier, which retries every MinRefreshInterval; until keys
// arrive every token is rejected as ErrUnknownKey (401). An identity
// provider outage therefore never keeps the service, and its API keys, from
// starting.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	v, err := newVerifier(cfg)
	if err != nil {
		return nil, err
	}
	if err := v.keys.load(ctx); err != nil {
		if v.keys.src.file != "" {
			return nil, fmt.Errorf("oidc: load JWKS file: %w", err)
		}
		v.log.ErrorContext(ctx, "oidc: initial signing-key fetch failed; retrying in the background", "error", err)
	}
	go v.keys.run(ctx)
	return v, nil
}

// newVerifier applies defaults and validates cfg without touching the network.
func newVerifier(cfg Config) (*Verifier, error) {
	if cfg.Issuer == "" {
		return nil, errors.New("oidc: issuer is required")
	}
	if cfg.Audience == "" {
		cfg.Audience = DefaultAudience
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = DefaultLeeway
	}
	if cfg.Leeway < 0 || cfg.Leeway > MaxLeeway {
		return nil, fmt.Errorf("oidc: leeway %s is outside 0..%s", cfg.Leeway, MaxLeeway)
	}
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = defaultAlgorithms
	}
	for _, alg := range cfg.Algorithms {
		if !slices.Contains(supportedAlgorithms, alg) {
			return nil, fmt.Errorf("oidc: signature algorithm %q is not allowed; use one of %s", alg, strings.Join(supportedAlgorithms, ", "))
		}
	}
	if len(cfg.ScopeClaims) == 0 {
		cfg.ScopeClaims = defaultScopeClaims
	}
	if cfg.TenantClaim == "" {
		cfg.TenantClaim = DefaultTenantClaim
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = DefaultRefreshInterval
	}
	if cfg.MinRefreshInterval <= 0 {
		cfg.MinRefreshInterval = DefaultMinRefreshInterval
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: DefaultHTTPTimeout}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	src, err := newKeySource(cfg)
	if err != nil {
		return nil, err
	}
	return &Verifier{
		issuer:      cfg.Issuer,
		audience:    cfg.Audience,
		algorithms:  slices.Clone(cfg.Algorithms),
		leeway:      cfg.Leeway,
		scopeClaims: slices.Clone(cfg.ScopeClaims),
		tenantClaim: cfg.TenantClaim,
		now:         cfg.Now,
		log:         cfg.Logger,
		keys:        newKeyCache(src, cfg.Now, cfg.RefreshInterval, cfg.MinRefreshInterval, cfg.Logger),
	}, nil
}

// Verify returns the principal a bearer token stands for. Every failure is a
// *neostore.Error with code EUNAUTHENTICATED, also matching one of the Err*
// reasons; a JWKS outage never turns into EINTERNAL or EUNAVAILABLE.
func (v *Verifier) Verify(ctx context.Context, token string) (*neostore.Principal, error) {
	p, rej := v.verify(ctx, token)
	if rej != nil {
		v.log.DebugContext(ctx, "oidc: bearer token rejected", "reason", rej.reason.Error(), "detail", rej.detail)
		return nil, rej
	}
	return p, nil
}

func (v *Verifier) verify(ctx context.Context, token string) (*neostore.Principal, *rejection) {
	if len(token) > MaxTokenSize {
		return nil, reject(ErrMalformed, "token is %d bytes, over the %d-byte limit", len(token), MaxTokenSize)
	}
	if !isCompactJWS(token) {
		return nil, reject(ErrMalformed, "not a compact JWS")
	}
	tok, err := jwt.Parse([]byte(token),
		jwt.WithKeyProvider(jws.KeyProviderFunc(v.fetchKeys)),
		jwt.WithContext(ctx),
		jwt.WithValidate(false),
	)
	if err != nil {
		return nil, classify(err)
	}
	// Validation is separate from parsing so that, once the signature holds,
	// the log can say which iss or aud the token carried.
	err = jwt.Validate(tok,
		jwt.WithClock(jwt.ClockFunc(v.now)),
		jwt.WithAcceptableSkew(v.leeway),
		jwt.WithRequiredClaim(jwt.ExpirationKey),
		jwt.WithIssuer(v.issuer),
		jwt.WithAudience(v.audience),
	)
	if err != nil {
		rej := classify(err)
		iss, _ := tok.Issuer()
		aud, _ := tok.Audience()
		switch rej.reason {
		case ErrIssuer:
			rej.detail = fmt.Sprintf("token iss %q, want %q", clip(iss), v.issuer)
		case ErrAudience:
			rej.detail = fmt.Sprintf("token aud %q, want %q", clipAll(aud), v.audience)
		}
		return nil, rej
	}
	sub, _ := tok.Subject()
	if sub == "" {
		return nil, reject(ErrMissingClaim, "sub is missing or empty")
	}
	iss, _ := tok.Issuer()
	return &neostore.Principal{
		Kind:     neostore.PrincipalToken,
		ID:       sub,
		Subject:  sub,
		Issuer:   iss,
		ClientID: clientID(tok),
		Scopes:   scopes(tok, v.scopeClaims),
		Tenants:  tenants(tok, v.tenantClaim),
	}, nil
}

// classify maps an error from jwt.Parse or jwt.Validate to a rejection. Our
// own rejections (from the key provider) pass through; the library's error
// text is dropped because it may quote parts of the token.
func classify(err error) *rejection {
	var rej *rejection
	switch {
	case errors.As(err, &rej):
		return rej
	case errors.Is(err, jwt.TokenExpiredError()):
		return reject(ErrExpired, "exp is in the past")
	case errors.Is(err, jwt.TokenNotYetValidError()):
		return reject(ErrNotYetValid, "nbf is in the future")
	case errors.Is(err, jwt.InvalidIssuedAtError()):
		return reject(ErrNotYetValid, "iat is in the future")
	case errors.Is(err, jwt.InvalidIssuerError()):
		return reject(ErrIssuer, "")
	case errors.Is(err, jwt.InvalidAudienceError()):
		return reject(ErrAudience, "")
	case errors.Is(err, jwt.MissingRequiredClaimError()):
		return reject(ErrMissingClaim, "exp is missing")
	case errors.Is(err, jws.VerificationError()):
		return reject(ErrSignature, "signature does not match the key with that kid")
	}
	return reject(ErrMalformed, "not a JWS with a JSON claim set of the registered types")
}

// isCompactJWS reports whether s has the shape of a compact JWS: three
// base64url segments, the first two non-empty. It rejects JSON
// serializations, five-part JWEs and stray whitespace before any decoding.
func isCompactJWS(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return false
	}
	for i := range len(s) {
		c := s[i]
		ok := c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok {
			return false
		}
	}
	return true
}

// clip bounds an attacker-chosen string before it goes into a log line.
func clip(s string) string {
	const max = 128
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

func clipAll(ss []string) []string {
	const max = 8
	out := make([]string, 0, min(len(ss), max))
	for i, s := range ss {
		if i == max {
			out = append(out, "...")
			break
		}
		out = append(out, clip(s))
	}
	return out
}
