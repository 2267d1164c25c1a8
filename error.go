package neostore

import (
	"errors"
	"fmt"
	"net/http"
)

// Error codes. Each maps to one HTTP status in the API layer.
const (
	EINVALID          = "invalid"           // malformed input; 400
	EUNAUTHENTICATED  = "unauthenticated"   // no, unknown or bad credential; 401
	EFORBIDDEN        = "forbidden"         // credential lacks tenant or scope; 403
	ENOTFOUND         = "not_found"         // no such secret or resource; 404
	ECONFLICT         = "conflict"          // a compare-and-swap lost to a concurrent change, or a quota is full; 409
	ETOOLARGE         = "too_large"         // value or body over its limit; 413
	EUNSUPPORTEDMEDIA = "unsupported_media" // request body of a type we do not read; 415
	EUNAVAILABLE      = "unavailable"       // a dependency is down; retry later; 503
	EINTERNAL         = "internal"          // a bug or an unexpected fault; 500
)

// codes lists every error code, for CodeOfStatus.
var codes = []string{EINVALID, EUNAUTHENTICATED, EFORBIDDEN, ENOTFOUND, ECONFLICT, ETOOLARGE, EUNSUPPORTEDMEDIA, EUNAVAILABLE, EINTERNAL}

// HTTPStatus returns the HTTP status of an error code: 500 for EINTERNAL
// and any unknown code. It is the one mapping between the two; the API and
// the admin socket both answer with it.
func HTTPStatus(code string) int {
	switch code {
	case EINVALID:
		return http.StatusBadRequest
	case EUNAUTHENTICATED:
		return http.StatusUnauthorized
	case EFORBIDDEN:
		return http.StatusForbidden
	case ENOTFOUND:
		return http.StatusNotFound
	case ECONFLICT:
		return http.StatusConflict
	case ETOOLARGE:
		return http.StatusRequestEntityTooLarge
	case EUNSUPPORTEDMEDIA:
		return http.StatusUnsupportedMediaType
	case EUNAVAILABLE:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// CodeOfStatus returns the error code whose HTTP status is status, or ""
// when no code has it: HTTPStatus read backwards, for a response written
// without a domain error (routing, authentication).
func CodeOfStatus(status int) string {
	for _, c := range codes {
		if HTTPStatus(c) == status {
			return c
		}
	}
	return ""
}

// Problem is what a client is told of an error: the status of its code,
// the code, and its client-safe message and fields (never a lower-level
// error string).
type Problem struct {
	Status  int
	Code    string
	Message string
	Fields  map[string][]string
}

// ProblemOf returns the problem of a non-nil err: the one function that
// turns a domain error into what an HTTP client sees. An error that is not
// an *Error is EINTERNAL, with a generic message.
func ProblemOf(err error) Problem {
	code := ErrorCode(err)
	return Problem{Status: HTTPStatus(code), Code: code, Message: ErrorMessage(err), Fields: ErrorFields(err)}
}

// Error is the one error type of the domain. Message is safe to show to the
// client; it never quotes client input or wraps a lower-level error string.
// Fields, when set, names the invalid input fields and why each is invalid.
type Error struct {
	Code    string
	Message string
	Fields  map[string][]string
}

// Error implements the error interface. It is for logs, not for clients.
func (e *Error) Error() string {
	return fmt.Sprintf("neostore error: code=%s message=%s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and a formatted message.
// The message must be safe to show to a client.
func Errorf(code string, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldError returns an EINVALID error naming one invalid field.
func FieldError(field, message string) *Error {
	return &Error{Code: EINVALID, Message: message, Fields: map[string][]string{field: {message}}}
}

// ErrorCode returns the code of the *Error in err's chain, EINTERNAL for any
// other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the client-safe message of the *Error in err's chain,
// or a generic message for any other error so that internal detail never leaks.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "Internal error."
}

// ErrorFields returns the per-field messages of the *Error in err's chain, or nil.
func ErrorFields(err error) map[string][]string {
	var e *Error
	if errors.As(err, &e) {
		return e.Fields
	}
	return nil
}

// Errors every store returns, defined once so that the stores say the same
// thing in the same words.
var (
	// ErrSecretNotFound is returned when no secret is stored under a tenant
	// and key.
	ErrSecretNotFound = Errorf(ENOTFOUND, "Secret not found.")
	// ErrTenantKeyNotFound is returned when a tenant has no data key.
	ErrTenantKeyNotFound = Errorf(ENOTFOUND, "Tenant key not found.")
	// ErrKeyCheckNotFound is returned when no key-check record is stored.
	ErrKeyCheckNotFound = Errorf(ENOTFOUND, "Key-check record not found.")
	// ErrAuditKeyNotFound is returned when no audit key is stored.
	ErrAuditKeyNotFound = Errorf(ENOTFOUND, "Audit key not found.")
	// ErrAPIKeyNotFound is returned for an unknown API-key id.
	ErrAPIKeyNotFound = Errorf(ENOTFOUND, "API key not found.")

	// ErrAPIKeyIDTaken is returned when an API key with the id exists.
	ErrAPIKeyIDTaken = Errorf(EINVALID, "An API key with this id already exists.")
	// ErrAPIKeyHashTaken is returned when an API key with the hash exists.
	ErrAPIKeyHashTaken = Errorf(EINVALID, "An API key with this hash already exists.")
	// ErrAPIKeyNoID is returned for an API-key record without an id.
	ErrAPIKeyNoID = Errorf(EINVALID, "The API key id is required.")
	// ErrAPIKeyNoHash is returned for an API-key record without a hash.
	ErrAPIKeyNoHash = Errorf(EINVALID, "The API key hash is required.")

	// ErrSecretConflict is returned by ReplaceSecret when the secret was
	// changed or deleted since it was read.
	ErrSecretConflict = Errorf(ECONFLICT, "The secret was changed or deleted concurrently.")
	// ErrTenantKeyConflict is returned by ReplaceTenantKey when the data key
	// was changed or removed since it was read.
	ErrTenantKeyConflict = Errorf(ECONFLICT, "The tenant key was changed or removed concurrently.")
	// ErrKeyCheckConflict is returned by ReplaceKeyCheck when the record was
	// changed or removed since it was read.
	ErrKeyCheckConflict = Errorf(ECONFLICT, "The key-check record was changed or removed concurrently.")
	// ErrAuditKeyConflict is returned by ReplaceAuditKey when the audit key
	// was changed or removed since it was read.
	ErrAuditKeyConflict = Errorf(ECONFLICT, "The audit key was changed or removed concurrently.")
)

// The messages of invalid identifiers, said alike by every layer.
const (
	msgInvalidTenantID = "The tenant id must be 1 to 128 ASCII letters, digits, hyphens or underscores."
	msgInvalidKeyName  = "The key must be 1 to 127 ASCII letters, digits or hyphens."
)

// InvalidTenantID returns the EINVALID error of an invalid tenant id in
// field (the API's path says "tenantId", the admin protocol "tenant").
func InvalidTenantID(field string) *Error { return FieldError(field, msgInvalidTenantID) }

// InvalidKeyName returns the EINVALID error of an invalid key name in the
// field "key".
func InvalidKeyName() *Error { return FieldError("key", msgInvalidKeyName) }
