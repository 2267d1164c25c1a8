// Package httpapi serves the Secret API over HTTP: routing, authentication
// and authorization, content negotiation, request decoding and problem
// details, byte-compatible with the ASP.NET Core service the contract in
// shared/spec/secret-api.md was generated from.
package httpapi

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"path"
	"runtime/debug"
	"time"

	"github.com/neostore/neostore-secrets"
)

const (
	// defaultMaxValueBytes is the value limit when Config.MaxValueBytes is zero.
	defaultMaxValueBytes = 64 << 10

	// minBodyBytes is the request-body limit of a PUT. It is raised only when
	// MaxValueBytes is so large that a value of that size, JSON-escaped at
	// worst six bytes per byte, would no longer fit.
	minBodyBytes = 1 << 20
)

// Config holds the settings of the HTTP API. The zero value is ready to use.
type Config struct {
	// MaxValueBytes is the largest secret value a PUT accepts, counted in
	// UTF-8 bytes after JSON unescaping; a larger one gets 413. Zero means
	// 64 KiB. The request body limit is 1 MiB, or 6*MaxValueBytes + 64 KiB
	// when that is larger, so that a value within its limit fits even when
	// every byte of it is escaped.
	MaxValueBytes int

	// Logger receives the reasons for 401 and 403 (Info), internal errors
	// and panics (Error) and, at Debug, one line per request. Every line
	// carries the request's traceId. Nil discards everything.
	Logger *slog.Logger

	// Now is the clock for request durations in the debug log. Nil means
	// time.Now.
	Now func() time.Time

	// Readiness names the checks GET /readyz runs (store reachable, master
	// key loaded, audit trail writable). Nil means /readyz is always ready.
	Readiness map[string]ReadinessCheck

	// Auditor receives one record per request to /api/, before the
	// response is sent; when it refuses, the request gets 503 and a write
	// changes nothing. Nil disables auditing.
	Auditor neostore.Auditor

	// AccessLog, when set, receives one line per request: method, route,
	// status, duration, principal id and traceId. Never a value or
	// credential. Without it, the same line goes to Logger at Debug.
	AccessLog *AccessLog

	// Observer receives request, authentication-failure and rate-limit
	// events for metrics. Nil discards them.
	Observer Observer

	// Limiter, when set, rate-limits authenticated requests by credential
	// and by tenant (429 with Retry-After).
	Limiter Limiter

	// TrustedProxies are the peers whose X-Forwarded-For is believed: for
	// them the audit record names the hop they added as the client.
	TrustedProxies []netip.Prefix

	// Console, when set, serves the web console under /ui/ (GET and HEAD;
	// it answers other methods itself). Nil: /ui/ is 404 like any path
	// the API does not have.
	Console http.Handler
}

// server holds what the middleware around the routing table needs; the
// chain itself is listed in routes.go (newHandler).
type server struct {
	out   *responder
	now   func() time.Time
	audit *auditor // nil: no audit trail

	observer  Observer
	metrics   bool // observer is a real one
	accessLog *AccessLog
}

// NewServer returns the handler of the Secret API. apiKeys verifies X-API-KEY
// credentials; tokens verifies bearer tokens and may be nil, in which case
// every bearer credential is refused with 401.
func NewServer(cfg Config, secrets *neostore.SecretService, apiKeys, tokens neostore.CredentialVerifier) http.Handler {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	maxValue := cfg.MaxValueBytes
	if maxValue <= 0 {
		maxValue = defaultMaxValueBytes
	}
	maxBody := int64(minBodyBytes)
	if need := 6*int64(maxValue) + 64<<10; need > maxBody {
		maxBody = need
	}

	out := newResponder(logger)
	observer := cfg.Observer
	if observer == nil {
		observer = nopObserver{}
	}
	auth := &authenticator{apiKeys: apiKeys, tokens: tokens, out: out, observer: observer, limiter: cfg.Limiter}
	limits := bodyLimits{maxBody: maxBody, maxValue: maxValue}
	mux := http.NewServeMux()
	addRoutes(mux, out, auth, secrets, limits, cfg.Readiness)
	if cfg.Console != nil {
		mux.Handle("/ui/", cfg.Console)
		mux.Handle("GET /ui", http.RedirectHandler("/ui/", http.StatusFound))
	}
	s := &server{out: out, now: now, observer: observer, accessLog: cfg.AccessLog, metrics: cfg.Observer != nil}
	if cfg.Auditor != nil {
		s.audit = &auditor{sink: cfg.Auditor, trustedProxies: cfg.TrustedProxies, now: now, out: out}
		s.audit.changes, _ = cfg.Auditor.(neostore.ChangeAuditor)
	}
	return newHandler(s, mux)
}

// securityHeaders sets the headers every response carries, and closes the
// connection after a chunked HTTP/1.1 request.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Cache-Control"] = hdrNoStore
		h["X-Content-Type-Options"] = hdrNoSniff
		// RFC 9112 §6.1: after a request with both Transfer-Encoding and
		// Content-Length (a smuggling attempt, or a proxy that mangled one),
		// the server MUST close the connection. net/http frames such a request
		// by its chunked body but deletes both headers before any handler runs,
		// so the two cannot be told apart from a chunked request alone: every
		// HTTP/1.1 request with a chunked body closes its connection after the
		// response. Clients of this API send bodies of at most 1 MiB, nearly
		// always with Content-Length; a chunked upload costs one reconnect.
		if len(r.TransferEncoding) > 0 && r.ProtoMajor == 1 {
			h["Connection"] = hdrClose
		}
		next.ServeHTTP(w, r)
	})
}

// observeRequests reports every request to the observer (metrics) and
// writes its access-log line, or its Debug line when there is no access
// log. Without any of them it adds nothing to the request.
func (s *server) observeRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		debug := s.accessLog == nil && s.out.logger.Enabled(r.Context(), slog.LevelDebug)
		if s.accessLog == nil && !debug && !s.metrics {
			next.ServeHTTP(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w}
		start := s.now()
		defer func() {
			end := s.now()
			d := end.Sub(start)
			route := routeLabel(r) // r.Pattern, set by the mux on this same request
			s.observer.Request(route, r.Method, sw.status, d)
			if s.accessLog == nil && !debug {
				return
			}
			st := requestStateFrom(r.Context())
			principal := ""
			if p := st.principal; p != nil {
				principal = p.Kind + ":" + p.ID
			}
			if s.accessLog != nil {
				s.accessLog.write(end.UTC(), r.Method, route, sw.status, d, principal, st.traceID())
				return
			}
			s.out.log(r.Context(), slog.LevelDebug, "request",
				slog.String("method", r.Method),
				slog.String("route", route),
				slog.Int("status", sw.status),
				slog.Duration("duration", d),
				slog.String("principal", principal))
		}()
		next.ServeHTTP(sw, r)
	})
}

// recoverPanics turns a panic in a handler into a logged 500 problem. The
// panic value and stack go to the log; the client sees the generic body.
func recoverPanics(out *responder, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			out.log(r.Context(), slog.LevelError, "panic serving request",
				slog.String("panic", fmt.Sprint(v)),
				slog.String("stack", string(debug.Stack())))
			out.problem(w, r, http.StatusInternalServerError, "", nil)
		}()
		next.ServeHTTP(w, r)
	})
}

// cleanPaths answers an unclean path (//, /./, /../) with 404: ServeMux
// would redirect it to the cleaned one; ASP.NET Core does not route it.
func cleanPaths(out *responder, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.EscapedPath(); p == "" || p[0] != '/' || cleanPath(p) != p {
			out.problem(w, r, http.StatusNotFound, "", nil)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// cleanPath returns the canonical form of an escaped URL path as ServeMux
// computes it: path.Clean, keeping a trailing slash.
func cleanPath(p string) string {
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}

// statusWriter remembers the status of a response for the debug log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
