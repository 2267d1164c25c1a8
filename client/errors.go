package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// The sentinels an error of the client matches with errors.Is. An *Error
// matches the one of its status; a connection failure matches
// ErrUnavailable.
var (
	// ErrNotFound is returned when the secret is absent, outside its
	// validity window, or its key is not a valid name (404).
	ErrNotFound = errors.New("neostore: not found")
	// ErrUnauthenticated is returned when the credential is missing,
	// unknown, expired or revoked (401).
	ErrUnauthenticated = errors.New("neostore: unauthenticated")
	// ErrForbidden is returned when the credential lacks the scope or
	// belongs to another tenant (403).
	ErrForbidden = errors.New("neostore: forbidden")
	// ErrInvalid is returned when the server refused the request as
	// malformed: a bad key or tenant name, a bad validity window (400),
	// a value too large (413), a wrong content type (415).
	ErrInvalid = errors.New("neostore: invalid request")
	// ErrRateLimited is returned when the server asked the client to slow
	// down (429) and the retries ran out.
	ErrRateLimited = errors.New("neostore: rate limited")
	// ErrUnavailable is returned when the server answered 503 or could not
	// be reached at all, and the retries ran out.
	ErrUnavailable = errors.New("neostore: unavailable")
)

// Error is a problem-details answer of the server (status >= 400). Its
// fields are the server's own words, which never contain a secret value.
type Error struct {
	Op      string // the operation: "get", "put", "delete" or "list"
	Status  int
	Title   string
	Detail  string
	TraceID string
	Errors  map[string][]string // field errors of a validation problem

	retryAfter time.Duration // the answer's Retry-After, 0 if none
}

// Error names the operation, status, title and traceId; never a value or
// credential.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("neostore: ")
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteString(": ")
	}
	fmt.Fprintf(&b, "%d %s", e.Status, e.Title)
	if e.TraceID != "" {
		fmt.Fprintf(&b, " (traceId %s)", e.TraceID)
	}
	return b.String()
}

// Is matches the sentinel of e's status.
func (e *Error) Is(target error) bool {
	return target != nil && target == sentinel(e.Status)
}

func sentinel(status int) error {
	switch status {
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusUnauthorized:
		return ErrUnauthenticated
	case http.StatusForbidden:
		return ErrForbidden
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
		return ErrInvalid
	case http.StatusTooManyRequests:
		return ErrRateLimited
	case http.StatusServiceUnavailable:
		return ErrUnavailable
	}
	return nil
}

// problemError reads a problem-details body into an *Error. A body that is
// not a problem (a proxy's HTML page) leaves the title to the status text.
func problemError(op string, status int, body []byte) *Error {
	var p struct {
		Title   string              `json:"title"`
		Detail  string              `json:"detail"`
		TraceID string              `json:"traceId"`
		Errors  map[string][]string `json:"errors"`
	}
	e := &Error{Op: op, Status: status}
	if json.Unmarshal(body, &p) == nil {
		e.Title, e.Detail, e.TraceID, e.Errors = p.Title, p.Detail, p.TraceID, p.Errors
	}
	if e.Title == "" {
		e.Title = http.StatusText(status)
	}
	return e
}

// connError is a request that got no answer: the server is unreachable, the
// connection broke, or the attempt timed out.
type connError struct {
	op  string
	err error
}

func (e *connError) Error() string {
	return "neostore: " + e.op + ": server unreachable: " + e.err.Error()
}
func (e *connError) Unwrap() error        { return e.err }
func (e *connError) Is(target error) bool { return target == ErrUnavailable }

// Temporary reports whether err is a failure a caller may ride out with a
// stale value: a connection failure or any 5xx answer. 401/403/404/4xx are
// never temporary.
func Temporary(err error) bool {
	var ce *connError
	if errors.As(err, &ce) {
		return true
	}
	var e *Error
	return errors.As(err, &e) && e.Status >= 500
}
