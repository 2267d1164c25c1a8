package neostore

import (
	"errors"
	"fmt"
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
