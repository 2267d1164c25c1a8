package oidc

import (
	"slices"
	"strings"

	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/neostore/neostore-secrets"
)

// claimStrings reads a claim that may be a single string or an array of
// strings. A string is split on single spaces when split is true (the
// OAuth2 scope syntax); array elements are taken whole. Values of any other
// type, and non-string elements, contribute nothing: a malformed grant
// grants less, never more.
func claimStrings(tok jwt.Token, name string, split bool) []string {
	var v any
	if err := tok.Get(name, &v); err != nil {
		return nil
	}
	switch v := v.(type) {
	case string:
		if split {
			return strings.Split(v, " ")
		}
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	case []string:
		return v
	}
	return nil
}

// scopes returns the union of the scopes named in claims, each name matched
// exactly by neostore.ParseScope: "secret.read", "Secret.ReadX" and
// "Secret.Read,Secret.Write" grant nothing.
func scopes(tok jwt.Token, claims []string) neostore.Scope {
	var s neostore.Scope
	for _, claim := range claims {
		for _, name := range claimStrings(tok, claim, true) {
			if sc, ok := neostore.ParseScope(name); ok {
				s |= sc
			}
		}
	}
	return s
}

// tenants returns the tenant ids granted by claim, without empty strings or
// duplicates, or nil when the claim is absent.
func tenants(tok jwt.Token, claim string) []string {
	var out []string
	for _, t := range claimStrings(tok, claim, false) {
		if t != "" && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// clientID returns the OAuth2 client the token was issued to: azp (OIDC,
// Auth0, Entra v2) or else client_id (RFC 9068, Okta).
func clientID(tok jwt.Token) string {
	for _, name := range []string{"azp", "client_id"} {
		var s string
		if err := tok.Get(name, &s); err == nil && s != "" {
			return s
		}
	}
	return ""
}
