package httpapi

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/neostore/neostore-secrets"
)

// Extension endpoints, outside the contract's four operations, for the web
// console: what a tenant holds and when each window closes, and who the
// caller is. Neither ever returns a value.

// attributesJSON is one entry of GET /api/{tenantId}/secret-attributes. An
// unset bound or an unknown time (a secret stored before times were kept)
// is null; times are RFC 3339 in UTC with the nanoseconds the store keeps.
type attributesJSON struct {
	Key       string     `json:"key"`
	NotBefore *time.Time `json:"notBefore"`
	ExpiresOn *time.Time `json:"expiresOn"`
	CreatedOn *time.Time `json:"createdOn"`
	UpdatedOn *time.Time `json:"updatedOn"`
}

// handleListAttributes serves GET /api/{tenantId}/secret-attributes
// (Secret.Read): every secret's key, window and times, in the order of GET
// /api/{tenantId}/secrets. No value is read out of the store.
func handleListAttributes(out *responder, secrets *neostore.SecretService) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tenant := r.PathValue("tenantId")
		if err := validateTenant(tenant); err != nil {
			out.error(w, r, err)
			return
		}
		attrs, err := secrets.Attributes(r.Context(), tenant)
		if err != nil {
			out.error(w, r, err)
			return
		}
		list := make([]attributesJSON, len(attrs))
		for i, a := range attrs {
			list[i] = attributesJSON{
				Key:       a.Key,
				NotBefore: a.Validity.NotBefore.Ptr(),
				ExpiresOn: a.Validity.ExpiresOn.Ptr(),
				CreatedOn: a.Times.CreatedOn.Ptr(),
				UpdatedOn: a.Times.UpdatedOn.Ptr(),
			}
		}
		writeJSON(w, r, out, list)
	})
}

// meJSON is the body of GET /api/me. Tenants holds "*" for a grant of
// every tenant.
type meJSON struct {
	Kind     string   `json:"kind"`
	ID       string   `json:"id"`
	Name     string   `json:"name,omitempty"`
	Issuer   string   `json:"issuer,omitempty"`
	Subject  string   `json:"sub,omitempty"`
	ClientID string   `json:"clientId,omitempty"`
	Tenants  []string `json:"tenants"`
	Scopes   []string `json:"scopes"`
}

// handleMe serves GET /api/me: the caller's principal, the tenants it was
// granted and its scopes, so that the console can offer those tenants. Any
// valid credential may ask: it learns only about itself.
func handleMe(out *responder) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := neostore.PrincipalFromContext(r.Context())
		me := meJSON{
			Kind: p.Kind, ID: p.ID, Name: p.Name, Issuer: p.Issuer, Subject: p.Subject, ClientID: p.ClientID,
			Tenants: append([]string{}, p.Tenants...),
			Scopes:  append([]string{}, p.Scopes.Names()...),
		}
		writeJSON(w, r, out, me)
	})
}

// writeJSON answers 200 with v as JSON. v holds only strings and times, so
// encoding cannot fail but on a broken connection.
func writeJSON(w http.ResponseWriter, r *http.Request, out *responder, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		out.error(w, r, err)
		return
	}
	out.encode(w, http.StatusOK, hdrAppJSON, body)
}
