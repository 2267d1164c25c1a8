package client

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxRetryAfter is the longest Retry-After the client waits out. A longer
// one (a proxy asking for an hour) ends the call at once with the answer's
// error, rather than holding a caller without a deadline that long.
const maxRetryAfter = time.Minute

// retryPolicy decides whether and how long to wait before the next attempt:
// exponential backoff with full jitter, or the server's Retry-After.
type retryPolicy struct {
	max       int           // retries after the first attempt
	base, cap time.Duration // backoff of the first retry, and its bound
	now       func() time.Time
}

// wait returns how long to wait before retry number n (0 for the first
// retry) after err, and false when err is not retried or the retries ran out.
func (p retryPolicy) wait(n int, err error) (time.Duration, bool) {
	if n >= p.max {
		return 0, false
	}
	var e *Error
	switch {
	case errors.As(err, &e):
		if e.Status != http.StatusTooManyRequests && e.Status != http.StatusServiceUnavailable {
			return 0, false
		}
		if e.retryAfter > 0 {
			return e.retryAfter, e.retryAfter <= maxRetryAfter
		}
	case errors.As(err, new(*connError)):
	default:
		return 0, false
	}
	d := p.cap
	if n < 30 && p.base<<n < p.cap {
		d = p.base << n
	}
	return rand.N(d) + time.Millisecond, true
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
// It returns 0 when the header is absent, malformed or in the past.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// canceledError is a call the caller's context ended. It matches the
// context's error, and names the failure of the last attempt.
type canceledError struct {
	op    string
	cause error // ctx.Err()
	last  error // the last attempt's error, or nil
}

func (e *canceledError) Error() string {
	s := "neostore: " + e.op + ": " + e.cause.Error()
	if e.last != nil {
		s += " (last attempt: " + e.last.Error() + ")"
	}
	return s
}
func (e *canceledError) Unwrap() error { return e.cause }

// sleep waits d or until ctx ends, and reports whether it waited d.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
