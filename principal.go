package neostore

import (
	"context"
	"slices"
)

// Scope is a set of permissions a credential carries.
type Scope uint8

// The scopes of the Secret API.
const (
	ScopeRead  Scope = 1 << iota // Secret.Read: list keys and read values
	ScopeWrite                   // Secret.Write: create, replace and delete secrets
)

// Scope names as they appear in tokens, API-key records and WWW-Authenticate.
const (
	ScopeReadName  = "Secret.Read"
	ScopeWriteName = "Secret.Write"
)

// ParseScope returns the scope named exactly (case-sensitive) by name, or
// false for any other string.
func ParseScope(name string) (Scope, bool) {
	switch name {
	case ScopeReadName:
		return ScopeRead, true
	case ScopeWriteName:
		return ScopeWrite, true
	}
	return 0, false
}

// Has reports whether s includes every scope in want.
func (s Scope) Has(want Scope) bool { return s&want == want }

// Names returns the scope names in s, Read before Write.
func (s Scope) Names() []string {
	var names []string
	if s.Has(ScopeRead) {
		names = append(names, ScopeReadName)
	}
	if s.Has(ScopeWrite) {
		names = append(names, ScopeWriteName)
	}
	return names
}

// String returns the scope names separated by spaces.
func (s Scope) String() string {
	switch s {
	case ScopeRead:
		return ScopeReadName
	case ScopeWrite:
		return ScopeWriteName
	case ScopeRead | ScopeWrite:
		return ScopeReadName + " " + ScopeWriteName
	}
	return ""
}

// Principal kinds.
const (
	PrincipalAPIKey = "apikey"
	PrincipalToken  = "token"
)

// AllTenants is the tenant grant that covers every tenant.
const AllTenants = "*"

// Principal is an authenticated caller: who it is, which tenants it may touch
// and with which scopes. API keys and bearer tokens both produce one.
type Principal struct {
	Kind     string // PrincipalAPIKey or PrincipalToken
	ID       string // API-key id, or the token's sub
	Name     string // API-key name, or empty
	Issuer   string // token issuer, or empty
	Subject  string // token sub, or empty
	ClientID string // token azp or client_id, or empty
	Scopes   Scope
	Tenants  []string // granted tenant ids; AllTenants grants every tenant
}

// CanAccessTenant reports whether p was granted tenant.
func (p *Principal) CanAccessTenant(tenant string) bool {
	return slices.Contains(p.Tenants, tenant) || slices.Contains(p.Tenants, AllTenants)
}

// CredentialVerifier turns a credential (an API key, a bearer token) into a
// Principal.
type CredentialVerifier interface {
	// Verify returns the principal the credential stands for, or
	// EUNAUTHENTICATED when it is unknown, malformed, expired or revoked. A
	// verifier that cannot check a credential right now returns EUNAVAILABLE,
	// unless refusing it is safe and more useful (a token signed by a key the
	// verifier cannot fetch is simply unknown).
	Verify(ctx context.Context, credential string) (*Principal, error)
}

type principalKey struct{}

// NewContextWithPrincipal returns a copy of ctx that carries p.
func NewContextWithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFromContext returns the principal carried by ctx, or nil.
func PrincipalFromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}
