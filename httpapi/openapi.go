package httpapi

import (
	_ "embed"
	"net/http"
)

// openAPIDocument describes the four operations of the Secret API as the
// contract does, with its two flaws fixed: errors are
// application/problem+json, and their schema is anyOf (every validation
// problem is also a ProblemDetails, so oneOf never validates). It also
// lists the 400, 403, 404, 413, 415 and 503 responses the API gives and
// the headers every response carries.
//
//go:embed openapi.json
var openAPIDocument []byte

// handleOpenAPI serves GET /openapi.json, unauthenticated.
func handleOpenAPI(out *responder) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out.encode(w, http.StatusOK, hdrAppJSON, openAPIDocument)
	})
}
