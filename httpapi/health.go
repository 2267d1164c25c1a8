package httpapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"
)

// ReadinessCheck reports whether one dependency can serve: nil when it can.
// Its error goes to the log, never to the response.
type ReadinessCheck func(ctx context.Context) error

// checkTimeout bounds each readiness check, so a hung dependency makes the
// probe say "not ready" rather than time out.
const checkTimeout = 2 * time.Second

// handleHealthz answers GET /healthz: the process is alive and serving HTTP.
func handleHealthz(out *responder) http.Handler {
	body := []byte(`{"status":"alive"}`)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out.encode(w, http.StatusOK, hdrAppJSON, body)
	})
}

// handleReadyz answers GET /readyz: 200 when every check passes, else 503,
// with a JSON body naming each check and "ok" or "failing". Checks run
// concurrently, each within checkTimeout.
func handleReadyz(out *responder, checks map[string]ReadinessCheck) http.Handler {
	names := make([]string, 0, len(checks))
	for name := range checks {
		names = append(names, name)
	}
	sort.Strings(names)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		results := make([]error, len(names))
		var wg sync.WaitGroup
		for i, name := range names {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(r.Context(), checkTimeout)
				defer cancel()
				results[i] = checks[name](ctx)
			})
		}
		wg.Wait()
		status, state := http.StatusOK, "ready"
		report := make(map[string]string, len(names))
		for i, name := range names {
			report[name] = "ok"
			if err := results[i]; err != nil {
				report[name] = "failing"
				status, state = http.StatusServiceUnavailable, "not ready"
				out.log(r.Context(), slog.LevelWarn, "readiness check failing", slog.String("check", name), slog.Any("err", err))
			}
		}
		body, _ := json.Marshal(struct {
			Status string            `json:"status"`
			Checks map[string]string `json:"checks"`
		}{state, report})
		out.encode(w, status, hdrAppJSON, body)
	})
}
