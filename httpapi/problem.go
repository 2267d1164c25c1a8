package httpapi

import (
	"context"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"sync"

	"github.com/neostore/neostore-secrets"
)

// maxPooledBuffer is the largest response buffer returned to the pool; one
// grown by a large value is dropped rather than kept.
const maxPooledBuffer = 256 << 10

// responder writes every response of the API: successful bodies (encode),
// problem details (problem, error) and log lines that carry the traceId.
type responder struct {
	logger *slog.Logger
	bufs   sync.Pool // *[]byte
}

func newResponder(logger *slog.Logger) *responder {
	return &responder{
		logger: logger,
		bufs:   sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }},
	}
}

// buffer returns an empty buffer from the pool; give it back with release.
func (o *responder) buffer() *[]byte {
	b := o.bufs.Get().(*[]byte)
	*b = (*b)[:0]
	return b
}

// release clears b, which may have held a secret value, and pools it.
func (o *responder) release(b *[]byte) {
	clear((*b)[:cap(*b)])
	if cap(*b) <= maxPooledBuffer {
		o.bufs.Put(b)
	}
}

// encode writes a successful response with the given Content-Type.
func (o *responder) encode(w http.ResponseWriter, status int, contentType []string, body []byte) {
	w.Header()["Content-Type"] = contentType
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// retryAfterSeconds is what a 503 tells the client to wait.
const retryAfterSeconds = "5"

// error writes the problem for err. Internal errors and unavailable
// dependencies are logged with their detail; the client gets the generic
// body. Only an error's client-safe message ever reaches the body, and only
// for 400 without fields, for 409 and for 413.
func (o *responder) error(w http.ResponseWriter, r *http.Request, err error) {
	p := neostore.ProblemOf(err)
	status := p.Status
	requestStateFrom(r.Context()).setErrorCode(p.Code)
	var detail string
	var fields map[string][]string
	switch status {
	case http.StatusBadRequest:
		if fields = p.Fields; fields == nil {
			detail = p.Message
		}
	case http.StatusRequestEntityTooLarge, http.StatusConflict:
		detail = p.Message
	case http.StatusServiceUnavailable:
		o.log(r.Context(), slog.LevelWarn, "dependency unavailable", slog.String("error", err.Error()))
		w.Header().Set("Retry-After", retryAfterSeconds)
	case http.StatusInternalServerError:
		o.log(r.Context(), slog.LevelError, "internal error", slog.String("error", err.Error()))
	}
	o.problem(w, r, status, detail, fields)
}

// problem writes an RFC 9457 problem as ASP.NET Core does: members in the
// order type, title, status, detail, errors, traceId, and the title
// "One or more validation errors occurred." when fields are given.
func (o *responder) problem(w http.ResponseWriter, r *http.Request, status int, detail string, fields map[string][]string) {
	typ, title := problemTypeTitle(status)
	if fields != nil {
		title = "One or more validation errors occurred."
	}
	bp := o.buffer()
	b := append(*bp, `{"type":`...)
	b = appendJSONString(b, typ)
	b = append(b, `,"title":`...)
	b = appendJSONString(b, title)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	if detail != "" {
		b = append(b, `,"detail":`...)
		b = appendJSONString(b, detail)
	}
	if fields != nil {
		b = append(b, `,"errors":{`...)
		for i, name := range slices.Sorted(maps.Keys(fields)) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, name)
			b = append(b, ':')
			b = appendJSONStringArray(b, fields[name])
		}
		b = append(b, '}')
	}
	b = append(b, `,"traceId":`...)
	b = appendJSONString(b, requestStateFrom(r.Context()).traceID())
	b = append(b, '}')
	*bp = b
	o.encode(w, status, hdrProblemJSON, b)
	o.release(bp)
}

// problemTypeTitle returns the type and title ASP.NET Core gives a status.
func problemTypeTitle(status int) (typ, title string) {
	switch status {
	case http.StatusBadRequest:
		return "https://tools.ietf.org/html/rfc9110#section-15.5.1", "Bad Request"
	case http.StatusUnauthorized:
		return "https://tools.ietf.org/html/rfc9110#section-15.5.2", "Unauthorized"
	case http.StatusForbidden:
		return "https://tools.ietf.org/html/rfc9110#section-15.5.4", "Forbidden"
	case http.StatusNotFound:
		return "https://tools.ietf.org/html/rfc9110#section-15.5.5", "Not Found"
	case http.StatusMethodNotAllowed:
		return "https://tools.ietf.org/html/rfc9110#section-15.5.6", "Method Not Allowed"
	case http.StatusConflict:
		return "https://tools.ietf.org/html/rfc9110#section-15.5.10", "Conflict"
	case http.StatusRequestEntityTooLarge:
		return "https://tools.ietf.org/html/rfc9110#section-15.5.14", "Content Too Large"
	case http.StatusUnsupportedMediaType:
		return "https://tools.ietf.org/html/rfc9110#section-15.5.16", "Unsupported Media Type"
	case http.StatusTooManyRequests:
		return "https://tools.ietf.org/html/rfc6585#section-4", "Too Many Requests"
	case http.StatusServiceUnavailable:
		return "https://tools.ietf.org/html/rfc9110#section-15.6.4", "Service Unavailable"
	}
	return "https://tools.ietf.org/html/rfc9110#section-15.6.1", "An error occurred while processing your request."
}

// log writes one log line with the request's traceId.
func (o *responder) log(ctx context.Context, level slog.Level, msg string, attrs ...slog.Attr) {
	if !o.logger.Enabled(ctx, level) {
		return
	}
	attrs = append(attrs, slog.String("traceId", requestStateFrom(ctx).traceID()))
	o.logger.LogAttrs(ctx, level, msg, attrs...)
}
