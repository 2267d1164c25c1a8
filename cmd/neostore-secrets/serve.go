package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/admin"
	"github.com/neostore/neostore-secrets/apikey"
	"github.com/neostore/neostore-secrets/envelope"
	"github.com/neostore/neostore-secrets/httpapi"
	"github.com/neostore/neostore-secrets/metrics"
)

// serveConfig is the configuration of `serve`. The zero value of each field
// means its documented default.
type serveConfig struct {
	Listen        string // address of the API; default 127.0.0.1:8200
	DataDir       string // data directory (embedded database, admin socket); required with the embedded store
	MasterKeyFile string // Tink JSON keyset file; or the keyset itself in NEOSTORE_MASTER_KEY
	MasterKey     string // the keyset JSON, from the environment only (flags show in ps)
	InsecureHTTP  bool   // allow plain HTTP on a non-loopback address
	MaxValueBytes int    // largest secret value accepted; default 64 KiB
	LogLevel      string // debug, info, warn, error; default info
	LogFormat     string // text or json; default text
	ShutdownGrace time.Duration
	TLS           tlsFlags // HTTPS; off means plain HTTP (see checkTransport)
	Tokens        tokenConfig
	Store         storeConfig
	Audit         auditConfig
	Observe       observabilityConfig
	Limits        limitsConfig
	UI            uiConfig

	logOut io.Writer // where the logger writes; the access log goes there too
}

const defaultListen = "127.0.0.1:8200"

func (c *serveConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.Listen, "listen", defaultListen, "address to serve the API on")
	fs.StringVar(&c.DataDir, "data", "", "data directory (created with mode 0700 if missing): the embedded database and the admin socket; optional with --store postgres")
	fs.StringVar(&c.MasterKeyFile, "master-key-file", "", "master keyset file written by `keys init`; or set NEOSTORE_MASTER_KEY to its contents")
	fs.BoolVar(&c.InsecureHTTP, "insecure-http", false, "serve plain HTTP on a non-loopback address (only behind a TLS-terminating proxy)")
	fs.IntVar(&c.MaxValueBytes, "max-value-bytes", 64<<10, "largest secret value accepted, in bytes (at most 512 KiB)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")
	fs.DurationVar(&c.ShutdownGrace, "shutdown-grace", 30*time.Second, "how long SIGTERM waits for in-flight requests")
	c.TLS.register(fs)
	c.Tokens.register(fs)
	c.Store.register(fs)
	c.Audit.register(fs)
	c.Observe.register(fs)
	c.Limits.register(fs)
	c.UI.register(fs)
}

func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var cfg serveConfig
	fs := newFlagSet("serve", stderr)
	cfg.register(fs)
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	cfg.MasterKey = getenv("NEOSTORE_MASTER_KEY")
	if getenv("GOGC") == "" {
		// The heap is small and short-lived (request garbage); collecting
		// at 4x instead of 2x the live heap saved about 5% of a GET's CPU
		// (kit: 33.6k -> 35.2k req/s at c32) for a few MB of RSS.
		debug.SetGCPercent(400)
	}
	logOut, flushLog := bufferLog(stderr)
	defer flushLog()
	cfg.logOut = logOut
	logger, err := newLogger(cfg.LogLevel, cfg.LogFormat, logOut)
	if err != nil {
		return err
	}
	if limit, source, err := setMemoryLimit(getenv, memlimit.FromCgroup); err != nil {
		logger.Warn("could not read the container's memory limit; the Go runtime has none", "err", err)
	} else if source == "none" {
		logger.Info("no memory limit: neither GOMEMLIMIT nor a cgroup limit is set")
	} else {
		logger.Info("memory limit", "goMemLimitBytes", limit, "source", source)
	}
	master, err := loadMaster(cfg)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, master, logger, nil)
}

// loadMaster reads the master keyset from the file or the environment.
func loadMaster(cfg serveConfig) (*envelope.Master, error) {
	switch {
	case cfg.MasterKeyFile != "" && cfg.MasterKey != "":
		return nil, configError(errors.New("both --master-key-file and NEOSTORE_MASTER_KEY are set; give one"))
	case cfg.MasterKeyFile != "":
		m, err := envelope.ReadMasterFile(cfg.MasterKeyFile)
		if err != nil {
			return nil, configError(fmt.Errorf("master key: %w", err))
		}
		return m, nil
	case cfg.MasterKey != "":
		m, err := envelope.ParseMaster([]byte(cfg.MasterKey))
		if err != nil {
			return nil, configError(fmt.Errorf("master key from NEOSTORE_MASTER_KEY: %w", err))
		}
		return m, nil
	}
	return nil, configError(errors.New("no master key: give --master-key-file (create one with `neostore-secrets keys init --out FILE`) or set NEOSTORE_MASTER_KEY"))
}

// node is a running server's state that `dev` and tests reach into.
type node struct {
	keys        *apikey.Verifier
	addr        string
	metricsAddr string
}

// serve opens the store and serves until ctx is done, then drains in-flight
// requests and closes the store. ready, when not nil, is called once the
// listeners are bound and before the first request is served; when it
// fails, serve returns its error without serving.
func serve(ctx context.Context, cfg serveConfig, master *envelope.Master, logger *slog.Logger, ready func(*node) error) error {
	if cfg.Store.Kind == "" {
		cfg.Store.Kind = storeBolt
	}
	if err := cfg.Store.validate(cfg.DataDir); err != nil {
		return err
	}
	if cfg.Limits.MaxKeysPerTenant < 0 {
		return usageError("serve: --max-keys-per-tenant must be 0 (unlimited) or more")
	}
	cfg.Store.maxKeysPerTenant = cfg.Limits.MaxKeysPerTenant
	if cfg.MaxValueBytes <= 0 || cfg.MaxValueBytes > 512<<10 {
		return usageError("serve: --max-value-bytes must be between 1 and 524288")
	}
	if err := checkTransport(cfg.Listen, cfg.InsecureHTTP, cfg.TLS, logger); err != nil {
		return err
	}
	tlsConfig, certs, err := cfg.TLS.load(logger)
	if err != nil {
		return err
	}
	var auditFile string
	if cfg.Audit.sinkKind(cfg.DataDir, cfg.Store) == auditSinkFile {
		auditFile = cfg.Audit.filePath(cfg.DataDir)
	}
	if err := checkDataFiles(cfg.DataDir, auditFile); err != nil {
		return err
	}
	var adminLn net.Listener
	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return fmt.Errorf("create data directory: %w", err)
		}
		ln, err := admin.Listen(cfg.DataDir, logger)
		if err != nil {
			return err
		}
		defer ln.Close()
		adminLn = ln
	}

	rawStore, err := cfg.Store.open(ctx, cfg.DataDir)
	if err != nil {
		return err
	}
	defer rawStore.Close()
	m := metrics.New()
	store := m.InstrumentStore(rawStore)
	if err := master.CheckKey(ctx, store); err != nil {
		if errors.Is(err, envelope.ErrWrongMasterKey) {
			return configError(fmt.Errorf("the master key is not the one this data directory was written with; refusing to start"))
		}
		return fmt.Errorf("check master key: %w", err)
	}

	now := time.Now
	keys, err := apikey.NewVerifier(ctx, store, now)
	if err != nil {
		return err
	}
	tokens, err := cfg.Tokens.verifier(ctx, logger)
	if err != nil {
		return err
	}
	sealer := envelope.NewSealer(master, store)
	secrets := neostore.NewSecretService(store, sealer, now)
	proxies, err := cfg.Audit.proxies()
	if err != nil {
		return err
	}
	trail, err := openTrail(ctx, cfg.Audit, cfg.DataDir, cfg.Store, rawStore, master, logger)
	if err != nil {
		return err
	}
	var auditor neostore.Auditor // a nil *audit.Trail must stay a nil interface
	if trail != nil {
		auditor = trail
		defer trail.Close() // after the servers below have drained
	}
	var accessLog *httpapi.AccessLog
	if !cfg.Observe.NoAccessLog && cfg.logOut != nil {
		accessLog = httpapi.NewAccessLog(cfg.logOut, strings.EqualFold(cfg.LogFormat, "json"))
	}
	limiter := cfg.Observe.limiter()
	var httpLimiter httpapi.Limiter // a nil *ratelimit.Limiter must stay a nil interface
	if limiter != nil {
		httpLimiter = limiter
	}
	consoleHandler, err := cfg.UI.handler(cfg.Tokens)
	if err != nil {
		return err
	}
	handler := httpapi.NewServer(httpapi.Config{
		MaxValueBytes: cfg.MaxValueBytes,
		Logger:        logger,
		Now:           now,
		Readiness: map[string]httpapi.ReadinessCheck{
			"store": store.Ping,
			// The master key is loaded and checked before the server
			// starts; the check names it so probes show what was verified.
			"masterKey":  func(context.Context) error { return nil },
			"auditTrail": auditReady(trail),
		},
		Auditor:        auditor,
		TrustedProxies: proxies,
		AccessLog:      accessLog,
		Observer:       m,
		Limiter:        httpLimiter,
		Console:        consoleHandler,
	}, secrets, keys, tokens)

	nofile, nofileHard, nofileKnown := openFileLimit()
	maxConn, perClient := cfg.Limits.maxConnections(nofile, nofileKnown), cfg.Limits.maxPerClient()
	logLimits(logger, nofile, nofileHard, nofileKnown, maxConn, perClient)

	stopMetrics, metricsAddr, err := serveMetrics(cfg.Observe, m, trail, logger)
	if err != nil {
		return err
	}
	defer stopMetrics(context.Background())

	rawLn, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	ln := limitListener(rawLn, "api", maxConn, perClient, m)
	srv := &http.Server{
		Handler:           handler,
		ConnState:         ln.ConnState,     // idle connections make room at the limit
		ReadHeaderTimeout: 5 * time.Second,  // slowloris: headers must arrive promptly
		ReadTimeout:       30 * time.Second, // whole request, body included (at most 1 MiB)
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	if tlsConfig != nil {
		srv.TLSConfig = tlsConfig
		srv.Handler = withHSTS(srv.Handler)
	}
	keyManager := admin.AuditedKeys(envelope.NewRotator(sealer, store), auditor, now)
	// No WriteTimeout: a backup or a rewrap may take longer than any bound.
	adminSrv := &http.Server{
		Handler:           admin.NewHandler(admin.Audited(keys, auditor, now), backupSource(rawStore), keyManager, logger),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
	if adminLn != nil {
		limited := limitListener(adminLn, "admin", maxAdminConnections, 0, m)
		adminSrv.ConnState = limited.ConnState
		adminLn = limited
	}

	// ready runs before the first request is accepted (connections wait in
	// the listen backlog meanwhile), so whatever it prints, such as dev's
	// banner, is out before anything answers: a client that sees the
	// server answer may read it.
	var serveErr error
	if ready != nil {
		serveErr = ready(&node{keys: keys, addr: ln.Addr().String(), metricsAddr: metricsAddr})
	}
	if serveErr != nil {
		ln.Close() // never handed to srv, whose Shutdown closes only what it serves
		return serveErr
	}
	logger.Info("serving", "addr", ln.Addr().String(), "store", cfg.Store.Kind, "data", cfg.DataDir)
	errc := make(chan error, 2)
	go func() { errc <- serveHTTP(srv, ln) }()
	if adminLn != nil {
		go func() { errc <- adminSrv.Serve(adminLn) }()
	}

	var background sync.WaitGroup
	bgCtx, stopBackground := context.WithCancel(context.Background())
	// Last-use times are written once a minute, so that a request never
	// waits on a disk write for bookkeeping.
	every(bgCtx, &background, time.Minute, func(ctx context.Context) {
		if err := keys.FlushLastUsed(ctx); err != nil {
			logger.Warn("could not record API key use", "err", err)
		}
	})
	watchCertificates(bgCtx, &background, certs, cfg.TLS.ReloadInterval)
	onSIGHUP(bgCtx, &background, reloadCertificates(certs, logger), reloadMaster(master, keyManager, logger))
	if limiter != nil {
		every(bgCtx, &background, time.Minute, func(context.Context) { limiter.Sweep() })
	}
	if cfg.Store.shared() {
		// A key created or revoked on another node takes effect here within
		// the interval plus one query; on failure the previous keys stay.
		every(bgCtx, &background, cfg.Store.reloadInterval(), func(ctx context.Context) {
			if err := keys.Reload(ctx); err != nil && ctx.Err() == nil {
				logger.Warn("could not reload API keys; keeping the previous ones", "err", err)
			}
		})
	}

	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	logger.Info("shutting down", "grace", cfg.ShutdownGrace.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		logger.Warn("in-flight requests did not finish in time", "err", err)
	}
	adminSrv.Shutdown(shutdownCtx)
	stopBackground()
	background.Wait()
	if err := keys.FlushLastUsed(shutdownCtx); err != nil {
		logger.Warn("could not record API key use", "err", err)
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	logger.Info("stopped")
	return nil
}

// databaseFile is the name of the embedded database inside the data directory.
const databaseFile = "secrets.db"

func newLogger(level, format string, w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageError("--log-format %q: want text or json", format)
}
