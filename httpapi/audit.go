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
// too, under the same traceId. With a neostore.ChangeAuditor, the record
// of a write travels to the store as the change's neostore.Change, so that
// the store's commit makes it durable with the change; the response still
// waits until it is durable (auditWriter.WriteHeader).

// auditState is what the audit record of a request is built from. The
// audit middleware creates it; the operation middleware names the
// operation, authentication the principal (requestState.principal), the
// responder the error code; writer is the request's auditWriter, so that a
// handler reaches it through the request's state, never by asserting the
// type of its http.ResponseWriter.
type auditState struct {
	op        string
	tenant    string
	key       string
	errorCode string
	start     time.Time
	recorded  int                  // status of the record already written, 0 if none
	entry     *neostore.AuditEntry // a write's record, maybe not yet durable
	writer    *auditWriter
}

// setOperation names the operation of an audited request.
func (st *requestState) setOperation(op, tenant, key string) {
	if st != nil && st.audit != nil {
		st.audit.op, st.audit.tenant, st.audit.key = op, tenant, key
	}
}

// setErrorCode records the code of the error an audited request failed with.
func (st *requestState) setErrorCode(code string) {
	if st != nil && st.audit != nil {
		st.audit.errorCode = code
	}
}

// auditor builds and writes the records of requests.
type auditor struct {
	sink           neostore.Auditor
	changes        neostore.ChangeAuditor // sink, when it is one
	trustedProxies []netip.Prefix
	now            func() time.Time
	out            *responder
}

// operation marks the request as op on tenant and key, for its record.
func operation(op string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requestStateFrom(r.Context()).setOperation(op, r.PathValue("tenantId"), r.PathValue("key"))
		next.ServeHTTP(w, r)
	})
}

// record writes the record of r with status. It returns EUNAVAILABLE when
// the trail refused it.
func (a *auditor) record(r *http.Request, status int) error {
	rec := a.newRecord(r, status)
	// Detached from the client's context: a client that hangs up must not
	// keep its request out of the trail. No timer of its own: the trail
	// bounds the wait (audit.Config.StallTimeout), and a timer per request
	// was 3% of a GET's CPU.
	return a.sink.Audit(context.WithoutCancel(r.Context()), &rec)
}

// recordChange writes the record of the change r is about to make with
// status. The entry it may return must reach the store with the change and
// be made durable before the response (durable).
func (a *auditor) recordChange(r *http.Request, status int) (*neostore.AuditEntry, error) {
	if a.changes == nil {
		return nil, a.record(r, status)
	}
	rec := a.newRecord(r, status)
	return a.changes.AuditChange(context.WithoutCancel(r.Context()), &rec)
}

// durable returns once the record of a change is durable.
func (a *auditor) durable(r *http.Request, e *neostore.AuditEntry) error {
	return a.changes.Durable(context.WithoutCancel(r.Context()), e)
}

func (a *auditor) newRecord(r *http.Request, status int) neostore.AuditRecord {
	st := requestStateFrom(r.Context())
	now := a.now()
	rec := neostore.AuditRecord{
		Time:       now,
		TraceID:    st.traceID(),
		Op:         st.audit.op,
		Tenant:     clip(st.audit.tenant),
		Key:        clip(st.audit.key),
		Principal:  auditPrincipal(st.principal),
		Status:     status,
		ErrorCode:  st.audit.errorCode,
		ClientAddr: a.clientAddr(r),
		UserAgent:  r.UserAgent(),
		Duration:   now.Sub(st.audit.start),
	}
	if rec.Op == "" {
		rec.Op = neostore.OpUnknownRoute
	}
	if rec.ErrorCode == "" && status >= 400 {
		rec.ErrorCode = statusCode(status)
	}
	return rec
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
// a neostore error (routing, authentication, authorization): the code
// neostore.HTTPStatus maps to it, or a name of the HTTP layer's own.
func statusCode(status int) string {
	if code := neostore.CodeOfStatus(status); code != "" {
		return code
	}
	switch status {
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusTooManyRequests:
		return "rate_limited"
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
	state   auditState // st.audit
}

func (w *auditWriter) WriteHeader(status int) {
	if w.wrote {
		return
	}
	w.wrote = true
	if e := w.st.audit.entry; e != nil {
		w.st.audit.entry = nil
		if err := w.a.durable(w.r, e); err != nil {
			w.refuse(err)
			return
		}
	}
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
// status it is about to succeed with, and returns the Change to make it
// with: it carries the record to the store. It returns EUNAVAILABLE when
// the trail refused the record: the handler must then change nothing.
// A request that is not audited gets the empty Change.
func auditWrite(r *http.Request, status int) (neostore.Change, error) {
	st := requestStateFrom(r.Context())
	if st == nil || st.audit == nil {
		return neostore.Change{}, nil
	}
	e, err := st.audit.writer.a.recordChange(r, status)
	if err != nil {
		return neostore.Change{}, err
	}
	st.audit.recorded = status
	st.audit.entry = e
	return neostore.Change{Audit: e}, nil
}

// auditRequests hands the record of every request to /api/ to a before
// its response is sent (auditWriter).
func auditRequests(a *auditor, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := requestStateFrom(r.Context())
		if st == nil || !strings.HasPrefix(r.URL.Path, "/api/") {
			next.ServeHTTP(w, r)
			return
		}
		aw := &auditWriter{ResponseWriter: w, r: r, a: a, st: st}
		aw.state = auditState{start: a.now(), writer: aw}
		st.audit = &aw.state // one allocation for both
		next.ServeHTTP(aw, r)
	})
}
