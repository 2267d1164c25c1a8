package httpapi

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/neostore/neostore-secrets"
)

// Auditing. Every request to /api/ produces a record, handed to the
// Auditor before the response is sent: the auditWriter intercepts the
// status line. Reads are audited with their final outcome. Writes are
// audited before the store changes (auditWrite), with the outcome they are
// about to have, so that a trail that cannot take the record stops the
// change (fail closed); if the store then fails, the failure is recorded
// too, under the same traceId.

// auditState is what the audit record of a request is built from; the
// handlers fill it in as they learn it.
type auditState struct {
	op        string
	tenant    string
	key       string
	principal *neostore.Principal
	errorCode string
	start     time.Time
	recorded  int // status of the record already written, 0 if none
}

// auditor builds and writes the records of requests.
type auditor struct {
	sink           neostore.Auditor
	trustedProxies []netip.Prefix
	now            func() time.Time
	out            *responder
}

// operation marks the request as op on tenant and key, for its record.
func operation(op string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := requestStateFrom(r.Context())
		st.audit.op = op
		st.audit.tenant = r.PathValue("tenantId")
		st.audit.key = r.PathValue("key")
		next.ServeHTTP(w, r)
	})
}

// record writes the record of r with status. It returns EUNAVAILABLE when
// the trail refused it.
func (a *auditor) record(r *http.Request, status int) error {
	st := requestStateFrom(r.Context())
	rec := neostore.AuditRecord{
		Time:       a.now().UTC(),
		TraceID:    st.traceID(),
		Op:         st.audit.op,
		Tenant:     clip(st.audit.tenant),
		Key:        clip(st.audit.key),
		Principal:  auditPrincipal(st.audit.principal),
		Status:     status,
		ErrorCode:  st.audit.errorCode,
		ClientAddr: a.clientAddr(r),
		UserAgent:  r.UserAgent(),
		Duration:   a.now().Sub(st.audit.start),
	}
	if rec.Op == "" {
		rec.Op = neostore.OpUnknownRoute
	}
	if rec.ErrorCode == "" && status >= 400 {
		rec.ErrorCode = statusCode(status)
	}
	// Detached from the client's context: a client that hangs up must not
	// keep its request out of the trail.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
	defer cancel()
	return a.sink.Audit(ctx, &rec)
}

// clip bounds path values in records: they are client input, already
// decoded, and may be anything when validation failed.
func clip(s string) string {
	if len(s) > 256 {
		return s[:256]
	}
	return s
}

func auditPrincipal(p *neostore.Principal) neostore.AuditPrincipal {
	if p == nil {
		return neostore.AuditPrincipal{Kind: "anonymous"}
	}
	return neostore.AuditPrincipal{Kind: p.Kind, ID: p.ID, Name: p.Name, Issuer: p.Issuer, Subject: p.Subject, ClientID: p.ClientID}
}

// statusCode names the error class of a status the handlers wrote without
// a neostore error (routing, authentication, authorization).
func statusCode(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return neostore.EUNAUTHENTICATED
	case http.StatusForbidden:
		return neostore.EFORBIDDEN
	case http.StatusNotFound:
		return neostore.ENOTFOUND
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusTooManyRequests:
		return "rate_limited"
	case http.StatusServiceUnavailable:
		return neostore.EUNAVAILABLE
	}
	if status >= 500 {
		return neostore.EINTERNAL
	}
	return neostore.EINVALID
}

// clientAddr is the socket peer, or the last X-Forwarded-For hop when the
// peer is a trusted proxy (the hop the proxy itself added).
func (a *auditor) clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || len(a.trustedProxies) == 0 {
		return host
	}
	trusted := false
	for _, p := range a.trustedProxies {
		if p.Contains(peer.Unmap()) {
			trusted = true
			break
		}
	}
	xff := r.Header.Values("X-Forwarded-For")
	if !trusted || len(xff) == 0 {
		return host
	}
	last := xff[len(xff)-1]
	if i := strings.LastIndexByte(last, ','); i >= 0 {
		last = last[i+1:]
	}
	if hop, err := netip.ParseAddr(strings.TrimSpace(last)); err == nil {
		return hop.String()
	}
	return host
}

// auditWriter hands the request's record to the trail when the handler
// writes its status, before anything reaches the client. When the trail
// refuses the record, the client gets 503 instead of the response.
type auditWriter struct {
	http.ResponseWriter
	r       *http.Request
	a       *auditor
	st      *requestState
	wrote   bool
	refused bool
}

func (w *auditWriter) WriteHeader(status int) {
	if w.wrote {
		return
	}
	w.wrote = true
	if w.st.audit.recorded == status {
		w.ResponseWriter.WriteHeader(status)
		return
	}
	if err := w.a.record(w.r, status); err != nil {
		w.refuse(err)
		return
	}
	w.st.audit.recorded = status
	w.ResponseWriter.WriteHeader(status)
}

// refuse replaces the response with a 503 problem: the trail could not
// take its record.
func (w *auditWriter) refuse(err error) {
	w.refused = true
	h := w.ResponseWriter.Header()
	for _, name := range []string{"Content-Type", "Www-Authenticate", "Allow", "Content-Length"} {
		delete(h, name)
	}
	w.a.out.log(w.r.Context(), slog.LevelError, "audit trail refused a record; refusing the request", slog.String("error", err.Error()))
	h.Set("Retry-After", retryAfterSeconds)
	w.a.out.problem(w.ResponseWriter, w.r, http.StatusServiceUnavailable, "", nil)
}

func (w *auditWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.refused {
		return len(b), nil // the body of the refused response is dropped
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *auditWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// auditWrite records a write request before the store changes, with the
// status it is about to succeed with. It returns EUNAVAILABLE when the
// trail refused the record: the handler must then change nothing. Without
// an auditor it does nothing.
func auditWrite(w http.ResponseWriter, r *http.Request, status int) error {
	aw, ok := w.(*auditWriter)
	if !ok {
		return nil
	}
	if err := aw.a.record(r, status); err != nil {
		return err
	}
	aw.st.audit.recorded = status
	return nil
}
