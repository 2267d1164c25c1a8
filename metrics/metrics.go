// Package metrics exposes the service's Prometheus metrics: requests by
// route pattern, method and status with their latency, authentication
// failures by reason, rate-limit rejections, store operation latency,
// dropped audit records, webhook deliveries, build info and the Go runtime. Labels come from
// fixed vocabularies only: never a tenant id, key name, credential or value,
// which would leak secrets into a monitoring system and explode cardinality.
package metrics

import (
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds the collectors of one process, in a registry of its own
// (no global state), and implements httpapi.Observer.
type Metrics struct {
	registry    *prometheus.Registry
	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	authFails   *prometheus.CounterVec
	rateLimited *prometheus.CounterVec
	storeOps    *prometheus.HistogramVec
	storeErrors *prometheus.CounterVec
	connRefused *prometheus.CounterVec
	connEvicted *prometheus.CounterVec

	webhookAttempts *prometheus.CounterVec
	webhookPending  prometheus.Gauge
	webhookOldest   prometheus.Gauge
	webhookDisabled prometheus.Gauge
}

// New returns a registry with the Go runtime and process collectors, build
// information, and the service's metrics.
func New() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "neostore_http_requests_total",
			Help: "HTTP requests by route pattern, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "neostore_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern and method.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "method"}),
		authFails: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "neostore_auth_failures_total",
			Help: "Requests refused with 401 or 403, by reason.",
		}, []string{"reason"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "neostore_rate_limited_total",
			Help: "Requests refused with 429, by the bucket that refused them (credential or tenant).",
		}, []string{"bucket"}),
		storeOps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "neostore_store_operation_duration_seconds",
			Help:    "Store operation latency by operation.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5},
		}, []string{"operation"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "neostore_store_errors_total",
			Help: "Store operations that failed other than with not-found, by operation.",
		}, []string{"operation"}),
		connRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "neostore_connections_refused_total",
			Help: "Connections reset on accept because a limit was reached, by listener (api, admin, metrics) and limit (total or client).",
		}, []string{"listener", "limit"}),
		connEvicted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "neostore_connections_evicted_total",
			Help: "Idle keep-alive connections closed to make room for a new one at a connection limit, by listener.",
		}, []string{"listener"}),
		webhookAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "neostore_webhook_deliveries_total",
			Help: "Webhook delivery attempts made by this node, by outcome: delivered (2xx), retry (tried again later), failed (final), disabled (410 Gone: the endpoint is disabled).",
		}, []string{"outcome"}),
		webhookPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "neostore_webhook_pending_deliveries",
			Help: "Webhook deliveries waiting for an attempt, in the whole store, as of this node's last pass.",
		}),
		webhookOldest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "neostore_webhook_oldest_pending_age_seconds",
			Help: "Age of the oldest pending webhook delivery (0 when none), as of this node's last pass.",
		}),
		webhookDisabled: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "neostore_webhook_disabled_endpoints",
			Help: "Webhook subscriptions disabled because their endpoint answered 410 Gone.",
		}),
	}
	m.registry.MustRegister(m.requests, m.latency, m.authFails, m.rateLimited, m.storeOps, m.storeErrors, m.connRefused, m.connEvicted,
		m.webhookAttempts, m.webhookPending, m.webhookOldest, m.webhookDisabled,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildInfo())
	return m
}

// buildInfo is a gauge of 1 labelled with the module version and the Go
// version, as Prometheus' own build_info metrics are.
func buildInfo() prometheus.Collector {
	version, goVersion := "(devel)", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		version, goVersion = bi.Main.Version, bi.GoVersion
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "neostore_build_info",
		Help:        "Build information; the value is always 1.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": goVersion},
	})
	g.Set(1)
	return g
}

// Request implements httpapi.Observer.
func (m *Metrics) Request(route, method string, status int, d time.Duration) {
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route, method).Observe(d.Seconds())
}

// AuthFailure implements httpapi.Observer.
func (m *Metrics) AuthFailure(reason string) { m.authFails.WithLabelValues(reason).Inc() }

// RateLimited implements httpapi.Observer.
func (m *Metrics) RateLimited(bucket string) { m.rateLimited.WithLabelValues(bucket).Inc() }

// ConnectionRefused counts a connection that listener (api, admin or
// metrics) reset because limit (connlimit.ReasonTotal or ReasonClient) was
// reached.
func (m *Metrics) ConnectionRefused(listener, limit string) {
	m.connRefused.WithLabelValues(listener, limit).Inc()
}

// ConnectionEvicted counts an idle connection that listener closed to make
// room for a new one.
func (m *Metrics) ConnectionEvicted(listener string) { m.connEvicted.WithLabelValues(listener).Inc() }

// GaugeFunc registers a gauge whose value f reports at scrape time, such as
// the audit trail's dropped records.
func (m *Metrics) GaugeFunc(name, help string, f func() float64) {
	m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// webhookOutcomes are the outcome labels of neostore_webhook_deliveries_total;
// anything else is counted as "other", so that the label stays bounded.
var webhookOutcomes = map[string]bool{"delivered": true, "retry": true, "failed": true, "disabled": true}

// WebhookAttempt counts a webhook delivery attempt by its outcome.
func (m *Metrics) WebhookAttempt(outcome string) {
	if !webhookOutcomes[outcome] {
		outcome = "other"
	}
	m.webhookAttempts.WithLabelValues(outcome).Inc()
}

// WebhookPending sets how many webhook deliveries are pending and the age
// of the oldest.
func (m *Metrics) WebhookPending(count int, oldest time.Duration) {
	m.webhookPending.Set(float64(count))
	m.webhookOldest.Set(oldest.Seconds())
}

// WebhookDisabledEndpoints sets how many subscriptions are disabled.
func (m *Metrics) WebhookDisabledEndpoints(count int) { m.webhookDisabled.Set(float64(count)) }
