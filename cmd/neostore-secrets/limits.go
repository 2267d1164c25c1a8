package main

import (
	"flag"
	"log/slog"
	"net"
	"syscall"

	"github.com/neostore/neostore-secrets/connlimit"
	"github.com/neostore/neostore-secrets/metrics"
)

// limitsConfig bounds what one client can make the process hold. The zero
// value of each field means its documented default.
type limitsConfig struct {
	MaxConnections          int // API connections at once; default min(10000, RLIMIT_NOFILE - fdReserve); negative: unlimited
	MaxConnectionsPerClient int // API connections at once from one IP address; default 256; negative: unlimited
	MaxKeysPerTenant        int // secrets one tenant may hold; default 0, unlimited
}

func (c *limitsConfig) register(fs *flag.FlagSet) {
	fs.IntVar(&c.MaxConnections, "max-connections", 0, "API connections open at once; the excess is reset (default min(10000, open-file limit - 512); negative: unlimited)")
	fs.IntVar(&c.MaxConnectionsPerClient, "max-connections-per-client", 256, "API connections open at once from one client IP address; behind a proxy this limits the proxy (negative: unlimited)")
	fs.IntVar(&c.MaxKeysPerTenant, "max-keys-per-tenant", 0, "secrets one tenant may hold; a PUT of a new key beyond it gets 409 (0: unlimited)")
}

// Limits of the listeners other than the API's. They are fixed: only
// operators (the admin socket is mode 0600) and scrapers use them, and
// their own caps keep them answering while the API listener is saturated.
const (
	maxAdminConnections   = 64
	maxMetricsConnections = 32
	// fdReserve is the file descriptors kept out of the API's default
	// limit: the store (a bbolt file, or a PostgreSQL pool), the admin
	// and metrics listeners and their connections, audit files, the log,
	// certificate reloads.
	fdReserve      = 512
	defaultMaxConn = 10000
)

// openFileLimit returns the soft and hard RLIMIT_NOFILE. Go's syscall
// package has already raised the soft limit to the hard one at start (on
// Linux since Go 1.19), so there is nothing to raise here.
func openFileLimit() (soft, hard uint64, ok bool) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0, false
	}
	return lim.Cur, lim.Max, true
}

// maxConnections is the API listener's limit: the flag, or the default
// sized from the open-file limit; 0 means unlimited.
func (c limitsConfig) maxConnections(nofile uint64, known bool) int {
	switch {
	case c.MaxConnections > 0:
		return c.MaxConnections
	case c.MaxConnections < 0:
		return 0
	case !known:
		return defaultMaxConn
	}
	n := int64(nofile) - fdReserve
	if n < 64 {
		// A tiny limit: keep half for connections, rather than none.
		n = max(int64(nofile)/2, 1)
	}
	return int(min(n, defaultMaxConn))
}

func (c limitsConfig) maxPerClient() int { return max(c.MaxConnectionsPerClient, 0) }

// limitListener wraps ln with a connection limit whose refusals and
// evictions count in m under the listener's name.
func limitListener(ln net.Listener, name string, max, perClient int, m *metrics.Metrics) *connlimit.Listener {
	return connlimit.New(ln, connlimit.Config{
		Max:          max,
		MaxPerClient: perClient,
		OnRefuse:     func(reason string) { m.ConnectionRefused(name, reason) },
		OnEvict:      func() { m.ConnectionEvicted(name) },
	})
}

// logLimits reports the open-file limit and the connection limits drawn
// from it, so that an operator sees what the process can hold.
func logLimits(logger *slog.Logger, soft, hard uint64, known bool, maxConn, perClient int) {
	if !known {
		logger.Warn("could not read the open-file limit", "maxConnections", maxConn)
		return
	}
	logger.Info("connection limits", "openFiles", soft, "openFilesHard", hard,
		"maxConnections", maxConn, "maxConnectionsPerClient", perClient,
		"adminConnections", maxAdminConnections, "metricsConnections", maxMetricsConnections)
	if maxConn == 0 || uint64(maxConn)+fdReserve > soft {
		logger.Warn("--max-connections leaves fewer than 512 file descriptors for the store, the admin socket and the logs; raise the open-file limit (ulimit -n) or lower it",
			"openFiles", soft, "maxConnections", maxConn)
	}
}
