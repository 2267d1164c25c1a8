package httpapi

import (
	"context"
	"encoding/hex"
	"math/rand/v2"
	"net/http"

	"github.com/neostore/neostore-secrets"
)

// requestState is what the API keeps about a request in its context, put
// there once by withRequestState: the W3C trace context that names it in
// problem bodies and log lines, who made it, and, when it is audited, what
// its record is built from. It is request-scoped identity; nothing optional
// to the handlers rides in it.
type requestState struct {
	traceIDBytes [16]byte
	spanID       [8]byte
	flags        byte
	id           string              // the formatted traceId, built on first use
	principal    *neostore.Principal // set by authentication; nil before or without it
	audit        *auditState         // nil when the request is not audited
}

type requestStateKey struct{}

// newRequestState continues the trace of a valid incoming traceparent
// (same trace-id and flags, a new span-id) as ASP.NET Core's Activity does,
// or starts a new trace with flags 00.
func newRequestState(traceparent []string) *requestState {
	st := &requestState{}
	if len(traceparent) == 1 {
		if trace, flags, ok := parseTraceparent(traceparent[0]); ok {
			st.traceIDBytes, st.flags = trace, flags
		}
	}
	for st.traceIDBytes == [16]byte{} {
		putUint64(st.traceIDBytes[:8], rand.Uint64())
		putUint64(st.traceIDBytes[8:], rand.Uint64())
	}
	for st.spanID == [8]byte{} {
		putUint64(st.spanID[:], rand.Uint64())
	}
	return st
}

func putUint64(b []byte, v uint64) {
	for i := range 8 {
		b[i] = byte(v >> (56 - 8*i))
	}
}

// traceID returns the W3C trace context of the request as ASP.NET Core
// writes it in problem details: 00-<trace-id>-<span-id>-<flags>.
func (st *requestState) traceID() string {
	if st == nil {
		return newRequestState(nil).traceID()
	}
	if st.id == "" {
		var b [55]byte
		b[0], b[1], b[2] = '0', '0', '-'
		hex.Encode(b[3:35], st.traceIDBytes[:])
		b[35] = '-'
		hex.Encode(b[36:52], st.spanID[:])
		b[52] = '-'
		hex.Encode(b[53:55], []byte{st.flags})
		st.id = string(b[:])
	}
	return st.id
}

// requestStateFrom returns the state withRequestState put in ctx, or nil
// for a context without one (a handler used on its own). Every method of
// *requestState accepts nil: there is then no record to write to, and
// traceID names a fresh trace.
func requestStateFrom(ctx context.Context) *requestState {
	st, _ := ctx.Value(requestStateKey{}).(*requestState)
	return st
}

// setPrincipal records who made the request, for its audit record and its
// access-log line.
func (st *requestState) setPrincipal(p *neostore.Principal) {
	if st != nil {
		st.principal = p
	}
}

// parseTraceparent returns the trace-id and flags of a W3C traceparent
// header (Trace Context, level 1): version-traceid-parentid-flags in
// lower-case hex, neither id all zeros, version ff invalid. A later
// version may append fields after a dash; version 00 may not.
func parseTraceparent(v string) (trace [16]byte, flags byte, ok bool) {
	if len(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return trace, 0, false
	}
	var version, fl [1]byte
	var span [8]byte
	if !lowerHex(v[0:2], version[:]) || version[0] == 0xFF ||
		!lowerHex(v[3:35], trace[:]) || !lowerHex(v[36:52], span[:]) || !lowerHex(v[53:55], fl[:]) {
		return [16]byte{}, 0, false
	}
	if (version[0] == 0 && len(v) != 55) || (len(v) > 55 && v[55] != '-') {
		return [16]byte{}, 0, false
	}
	if trace == [16]byte{} || span == [8]byte{} {
		return [16]byte{}, 0, false
	}
	return trace, fl[0], true
}

// lowerHex decodes s, which must be lower-case hex of exactly len(dst) bytes.
func lowerHex(s string, dst []byte) bool {
	if len(s) != 2*len(dst) {
		return false
	}
	for i := range dst {
		hi, ok1 := hexNibble(s[2*i])
		lo, ok2 := hexNibble(s[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func hexNibble(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// withRequestState gives every request its state: the trace it continues
// or starts, and room for its principal and its audit record.
func withRequestState(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := newRequestState(r.Header["Traceparent"])
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestStateKey{}, st)))
	})
}
