package main

import (
	"context"
	"flag"
	"log/slog"
	"time"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/oidc"
)

// tokenConfig configures bearer-token (OAuth2/OIDC) authentication. Tokens
// are refused unless Issuer is set.
type tokenConfig struct {
	Issuer             string        // expected iss; empty disables bearer tokens
	Audience           string        // expected aud member
	JWKSFile           string        // local JWKS; wins over JWKSURL and discovery
	JWKSURL            string        // JWKS URL; else discovered from the issuer
	Algorithms         stringList    // allowed signature algorithms
	Leeway             time.Duration // clock skew allowed on exp, nbf, iat (at most 60s)
	ScopeClaims        stringList    // claims that carry scopes
	TenantClaim        string        // claim that carries tenant grants
	RefreshInterval    time.Duration // periodic JWKS refresh
	MinRefreshInterval time.Duration // at most one refresh per this on an unknown kid
}

func (c *tokenConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.Issuer, "jwt-issuer", "", "OAuth2/OIDC issuer whose access tokens are accepted, e.g. https://auth.neostore.cloud/ (empty: bearer tokens are refused)")
	fs.StringVar(&c.Audience, "jwt-audience", "https://app.neostore.cloud/api/", "audience a token must contain, compared exactly")
	fs.StringVar(&c.JWKSFile, "jwks-file", "", "local JWKS file with the issuer's signing keys (air-gapped installs)")
	fs.StringVar(&c.JWKSURL, "jwks-url", "", "JWKS URL (default: discovered from the issuer's /.well-known/openid-configuration)")
	fs.Var(&c.Algorithms, "jwt-algorithms", "allowed signature algorithms, repeatable or comma-separated (default RS256,PS256,ES256,EdDSA)")
	fs.DurationVar(&c.Leeway, "jwt-leeway", 30*time.Second, "clock skew allowed on exp, nbf and iat (at most 60s)")
	fs.Var(&c.ScopeClaims, "jwt-scope-claims", "claims that carry scopes, repeatable or comma-separated (default scope,scp,permissions)")
	fs.StringVar(&c.TenantClaim, "jwt-tenant-claim", "https://app.neostore.cloud/tenants", "claim listing the tenants a token may touch (\"*\" grants all)")
	fs.DurationVar(&c.RefreshInterval, "jwks-refresh-interval", 15*time.Minute, "how often signing keys are refreshed")
	fs.DurationVar(&c.MinRefreshInterval, "jwks-min-refresh-interval", time.Minute, "at most one refresh per this interval when a token names an unknown key")
}

// verifier returns the bearer-token verifier, or nil when tokens are off.
func (c *tokenConfig) verifier(ctx context.Context, logger *slog.Logger) (neostore.CredentialVerifier, error) {
	if c.Issuer == "" {
		return nil, nil
	}
	v, err := oidc.New(ctx, oidc.Config{
		Issuer:             c.Issuer,
		Audience:           c.Audience,
		JWKSFile:           c.JWKSFile,
		JWKSURL:            c.JWKSURL,
		Algorithms:         c.Algorithms,
		Leeway:             c.Leeway,
		ScopeClaims:        c.ScopeClaims,
		TenantClaim:        c.TenantClaim,
		RefreshInterval:    c.RefreshInterval,
		MinRefreshInterval: c.MinRefreshInterval,
		Logger:             logger,
	})
	if err != nil {
		return nil, configError(err)
	}
	return v, nil
}
