package httpapi

import (
	"net/http"
	"time"
)

// Observer receives what the metrics need about requests. Its arguments
// are bounded, fixed vocabularies (route patterns, methods, statuses,
// reasons): never a tenant id, key name, credential or value.
type Observer interface {
	// Request is called once per request after its response is written.
	// route is the matched pattern, or "unmatched".
	Request(route, method string, status int, d time.Duration)
	// AuthFailure is called for every 401 and 403 with a reason such as
	// "invalid_api_key" or "scope_not_granted".
	AuthFailure(reason string)
	// RateLimited is called for every 429; scope is "credential" or "tenant".
	RateLimited(scope string)
}

// Limiter decides whether an authenticated request may proceed.
type Limiter interface {
	// Allow reports whether a request by credential (the principal's kind
	// and id) on tenant may proceed now; when it may not, it returns which
	// bucket refused ("credential" or "tenant") and how long to wait.
	Allow(credential, tenant string) (ok bool, scope string, retryAfter time.Duration)
}

// routeLabel names the route of a served request for logs and metrics.
func routeLabel(r *http.Request) string {
	if r.Pattern == "" || r.Pattern == "/" {
		return "unmatched"
	}
	return r.Pattern
}

// nopObserver is the Observer of a server without metrics.
type nopObserver struct{}

func (nopObserver) Request(string, string, int, time.Duration) {}
func (nopObserver) AuthFailure(string)                         {}
func (nopObserver) RateLimited(string)                         {}
