package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/neostore/neostore-secrets/audit"
	"github.com/neostore/neostore-secrets/metrics"
	"github.com/neostore/neostore-secrets/ratelimit"
)

// observabilityConfig configures metrics, the access log and rate limits.
// The zero value of each field means its documented default.
type observabilityConfig struct {
	MetricsListen   string  // address of the Prometheus listener; default 127.0.0.1:9200; "off" disables it
	NoAccessLog     bool    // turn the per-request Info line off
	Pprof           bool    // serve /debug/pprof on the metrics listener
	CredentialRate  float64 // requests per second per credential; default 10000; negative disables
	CredentialBurst int     // default 2x CredentialRate
	TenantRate      float64 // requests per second per tenant; default 50000; negative disables
	TenantBurst     int     // default 2x TenantRate
}

func (c *observabilityConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.MetricsListen, "metrics-listen", "127.0.0.1:9200", `address of the Prometheus /metrics listener, separate from the API ("off" disables it)`)
	fs.BoolVar(&c.NoAccessLog, "no-access-log", false, "do not log one line per request")
	fs.BoolVar(&c.Pprof, "pprof", false, "serve Go's /debug/pprof profiles on the metrics listener (keep that listener on loopback)")
	fs.Float64Var(&c.CredentialRate, "rate-limit-credential", defaultCredentialRate, "requests per second one API key or token subject may make on this node (negative: unlimited)")
	fs.IntVar(&c.CredentialBurst, "rate-limit-credential-burst", 0, "burst of the per-credential bucket (default twice the rate)")
	fs.Float64Var(&c.TenantRate, "rate-limit-tenant", defaultTenantRate, "requests per second all credentials of one tenant may make on this node (negative: unlimited)")
	fs.IntVar(&c.TenantBurst, "rate-limit-tenant-burst", 0, "burst of the per-tenant bucket (default twice the rate)")
}

// Default rate limits, in requests per second on one node.
const (
	defaultCredentialRate = 10000
	defaultTenantRate     = 50000
)

// limiter returns the rate limiter, or nil when both limits are off.
func (c *observabilityConfig) limiter() *ratelimit.Limiter {
	cr, tr := c.CredentialRate, c.TenantRate
	if cr == 0 {
		cr = defaultCredentialRate
	}
	if tr == 0 {
		tr = defaultTenantRate
	}
	cr, tr = max(cr, 0), max(tr, 0)
	if cr == 0 && tr == 0 {
		return nil
	}
	burst := func(b int, r float64) int {
		if b > 0 {
			return b
		}
		return max(1, int(2*r))
	}
	return ratelimit.New(ratelimit.Config{
		CredentialRate: cr, CredentialBurst: burst(c.CredentialBurst, cr),
		TenantRate: tr, TenantBurst: burst(c.TenantBurst, tr),
	})
}

// serveMetrics starts the metrics listener and returns a function that
// stops it, or a no-op when metrics are off.
func serveMetrics(cfg observabilityConfig, m *metrics.Metrics, trail *audit.Trail, logger *slog.Logger) (stop func(context.Context), addr string, err error) {
	if cfg.MetricsListen == "off" {
		return func(context.Context) {}, "", nil
	}
	if trail != nil {
		m.GaugeFunc("neostore_audit_dropped_records", "Audit records not written under --audit-fail-open.", func() float64 { return float64(trail.Dropped()) })
	}
	listen := cfg.MetricsListen
	if listen == "" {
		listen = "127.0.0.1:9200"
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, "", fmt.Errorf("metrics listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	if cfg.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	limited := limitListener(ln, "metrics", maxMetricsConnections, 0, m)
	srv := &http.Server{
		Handler:           mux,
		ConnState:         limited.ConnState,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second, // a scrape is a bodiless GET
		WriteTimeout:      30 * time.Second, // also the longest /debug/pprof/profile
		IdleTimeout:       60 * time.Second, // longer than any sane scrape interval
	}
	go srv.Serve(limited)
	logger.Info("serving metrics", "addr", ln.Addr().String())
	return func(ctx context.Context) { srv.Shutdown(ctx) }, ln.Addr().String(), nil
}
