package audit

import (
	"errors"

	"github.com/neostore/neostore-secrets"
)

// Why a record was refused, for logs; callers see errUnavailable.
var (
	errClosed    = errors.New("audit: trail closed")
	errQueueFull = errors.New("audit: queue full")
	errStalled   = errors.New("audit: the sink has not returned for too long")
	errLost      = errors.New("audit: the record was lost to a failed fsync")
)

// errUnavailable is what a client is told; the cause stays in the chain for logs.
var errUnavailable = &neostore.Error{Code: neostore.EUNAVAILABLE, Message: "The audit trail cannot record this request; try again later."}

// unavailableError is an EUNAVAILABLE *neostore.Error (for errors.As) that
// also wraps its cause (for errors.Is and logs).
type unavailableError struct{ cause error }

func (e *unavailableError) Error() string   { return "audit: unavailable: " + e.cause.Error() }
func (e *unavailableError) Unwrap() []error { return []error{errUnavailable, e.cause} }

// refuse is what a caller whose record was not recorded gets: nil under
// FailOpen (counted in Dropped), else EUNAVAILABLE wrapping err.
func (t *Trail) refuse(err error) error {
	if t.failOpen {
		t.dropped.Add(1)
		return nil
	}
	return &unavailableError{err}
}
