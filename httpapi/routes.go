package httpapi

import (
	"net/http"

	"github.com/neostore/neostore-secrets"
)

// newHandler is the middleware chain around the routing table, outermost
// first. Every request passes through it in this order; the route table
// (addRoutes) adds each route's own: its operation and its scope.
func newHandler(s *server, mux *http.ServeMux) http.Handler {
	var h http.Handler = mux
	h = cleanPaths(s.out, h)    // an unclean path is 404, not a redirect
	h = recoverPanics(s.out, h) // a panic is a logged 500, audited like any response
	if s.audit != nil {
		h = auditRequests(s.audit, h) // /api/: recorded before the response is sent
	}
	h = s.observeRequests(h) // metrics and the access log, with the final status
	h = withRequestState(h)  // the trace, the principal, the audit record's state
	return securityHeaders(h)
}

// addRoutes is the routing table of the API: every route, the scope it
// needs, and what the other methods on its path get.
func addRoutes(mux *http.ServeMux, out *responder, auth *authenticator, secrets *neostore.SecretService, limits bodyLimits, readiness map[string]ReadinessCheck) {
	mux.Handle("GET /api/{tenantId}/secrets", operation(neostore.OpSecretList, auth.require(neostore.ScopeRead, handleListSecrets(out, secrets))))
	mux.Handle("GET /api/{tenantId}/secrets/{key}", operation(neostore.OpSecretGet, auth.require(neostore.ScopeRead, handleGetSecret(out, secrets))))
	mux.Handle("PUT /api/{tenantId}/secrets/{key}", operation(neostore.OpSecretPut, auth.require(neostore.ScopeWrite, handlePutSecret(out, secrets, limits))))
	mux.Handle("DELETE /api/{tenantId}/secrets/{key}", operation(neostore.OpSecretDelete, auth.require(neostore.ScopeWrite, handleDeleteSecret(out, secrets))))
	// Extensions for the web console, read-only and never a value.
	mux.Handle("GET /api/{tenantId}/secret-attributes", operation(neostore.OpSecretAttrs, auth.require(neostore.ScopeRead, handleListAttributes(out, secrets))))
	mux.Handle("GET /api/me", operation(neostore.OpMe, auth.authenticated(handleMe(out))))
	mux.Handle("GET /openapi.json", handleOpenAPI(out))     // unauthenticated
	mux.Handle("GET /healthz", handleHealthz(out))          // unauthenticated
	mux.Handle("GET /readyz", handleReadyz(out, readiness)) // unauthenticated

	// Any other method on these paths is 405. HEAD is listed because
	// ServeMux would otherwise answer it with the GET handler; ASP.NET Core
	// does not.
	mux.Handle("/api/{tenantId}/secrets", handleMethodNotAllowed(out, "GET"))
	mux.Handle("HEAD /api/{tenantId}/secrets", handleMethodNotAllowed(out, "GET"))
	mux.Handle("/api/{tenantId}/secrets/{key}", handleMethodNotAllowed(out, "GET, PUT, DELETE"))
	mux.Handle("HEAD /api/{tenantId}/secrets/{key}", handleMethodNotAllowed(out, "GET, PUT, DELETE"))
	for _, path := range []string{"/api/{tenantId}/secret-attributes", "/api/me"} {
		mux.Handle(path, handleMethodNotAllowed(out, "GET"))
		mux.Handle("HEAD "+path, handleMethodNotAllowed(out, "GET"))
	}
	mux.Handle("/openapi.json", handleMethodNotAllowed(out, "GET"))
	mux.Handle("HEAD /openapi.json", handleMethodNotAllowed(out, "GET"))
	for _, path := range []string{"/healthz", "/readyz"} {
		mux.Handle(path, handleMethodNotAllowed(out, "GET"))
		mux.Handle("HEAD "+path, handleMethodNotAllowed(out, "GET"))
	}

	// Everything else is 404, as a problem rather than ServeMux's text.
	mux.Handle("/", handleNotFound(out))
}

// handleMethodNotAllowed answers 405 with the methods the path allows.
func handleMethodNotAllowed(out *responder, allow string) http.Handler {
	allowed := []string{allow}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Allow"] = allowed
		out.problem(w, r, http.StatusMethodNotAllowed, "", nil)
	})
}

// handleNotFound answers 404 for every path the API does not have.
func handleNotFound(out *responder) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out.problem(w, r, http.StatusNotFound, "", nil)
	})
}
