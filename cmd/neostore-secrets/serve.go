package main

import (
	"context"
	"crypto/tls"
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
	"github.com/neostore/neostore-secrets/audit"
	"github.com/neostore/neostore-secrets/envelope"
	"github.com/neostore/neostore-secrets/httpapi"
	"github.com/neostore/neostore-secrets/metrics"
	"github.com/neostore/neostore-secrets/postgres"
	"github.com/neostore/neostore-secrets/ratelimit"
	"github.com/neostore/neostore-secrets/tlsconfig"
	"github.com/neostore/neostore-secrets/webhook"
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
	Webhooks      webhookConfig

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
	c.Webhooks.register(fs)
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
// fails, serve returns its error without serving. It runs in steps, each a
// function below: check the configuration, open the dependencies, bind the
// listeners, serve and start the background tasks, wait, shut down.
func serve(ctx context.Context, cfg serveConfig, master *envelope.Master, logger *slog.Logger, ready func(*node) error) error {
	if err := cfg.check(logger); err != nil {
		return err
	}
	d, err := openDeps(ctx, cfg, master, logger)
	if err != nil {
		return err
	}
	defer d.close()
	l, err := bindListeners(cfg, d, logger)
	if err != nil {
		return err
	}
	// ready runs before the first request is accepted (connections wait in
	// the listen backlog meanwhile), so whatever it prints, such as dev's
	// banner, is out before anything answers: a client that sees the
	// server answer may read it.
	if ready != nil {
		if err := ready(&node{keys: d.keys, addr: l.ln.Addr().String(), metricsAddr: l.metricsAddr}); err != nil {
			l.close()
			return err
		}
	}
	l.serve(cfg, logger)
	stopBackground := startBackground(cfg, d, logger)
	serveErr := l.wait(ctx)
	l.shutdown(cfg.ShutdownGrace, stopBackground, d.keys, logger)
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	logger.Info("stopped")
	return nil
}

// check refuses a configuration serve cannot run, before anything opens.
func (cfg *serveConfig) check(logger *slog.Logger) error {
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
	if err := cfg.Webhooks.check(); err != nil {
		return err
	}
	if cfg.MaxValueBytes <= 0 || cfg.MaxValueBytes > 512<<10 {
		return usageError("serve: --max-value-bytes must be between 1 and 524288")
	}
	return checkTransport(cfg.Listen, cfg.InsecureHTTP, cfg.TLS, logger)
}

// deps is what serve opens before it listens. The store is opened once and
// used through one value, the instrumented one; the features only one kind
// of store has (backup, the database audit sink) are taken from it where it
// is opened. close releases everything in the reverse order of opening.
type deps struct {
	master    *envelope.Master
	tlsConfig *tls.Config // nil: plain HTTP
	certs     *tlsconfig.Reloader
	adminLn   net.Listener // nil without a data directory
	metrics   *metrics.Metrics
	store     neostore.Store
	backup    admin.Backuper // nil unless the store is the embedded one
	keys      *apikey.Verifier
	tokens    neostore.CredentialVerifier
	sealer    *envelope.Sealer
	secrets   *neostore.SecretService
	trail     *audit.Trail     // nil when auditing is off
	auditor   neostore.Auditor // trail, or nil
	keyMgr    neostore.KeyManager
	limiter   *ratelimit.Limiter

	dispatcher *webhook.Dispatcher     // nil when this node sends none (--webhooks off)
	hookObs    *webhookObserver        // the dispatcher's observer
	webhooks   neostore.WebhookManager // audited
	now        func() time.Time

	closers []func()
}

func (d *deps) onClose(f func()) { d.closers = append(d.closers, f) }

func (d *deps) close() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
}

// openDeps opens the store and everything built on it. On error it closes
// what it opened.
func openDeps(ctx context.Context, cfg serveConfig, master *envelope.Master, logger *slog.Logger) (_ *deps, err error) {
	d := &deps{master: master, now: time.Now, metrics: metrics.New()}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	if d.tlsConfig, d.certs, err = cfg.TLS.load(logger); err != nil {
		return nil, err
	}
	var auditFile string
	if cfg.Audit.sinkKind(cfg.DataDir, cfg.Store) == auditSinkFile {
		auditFile = cfg.Audit.filePath(cfg.DataDir)
	}
	if err := checkDataFiles(cfg.DataDir, auditFile); err != nil {
		return nil, err
	}
	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("create data directory: %w", err)
		}
		if d.adminLn, err = admin.Listen(cfg.DataDir, logger); err != nil {
			return nil, err
		}
		d.onClose(func() { d.adminLn.Close() })
	}
	raw, err := cfg.Store.open(ctx, cfg.DataDir)
	if err != nil {
		return nil, err
	}
	d.onClose(func() { raw.Close() })
	d.store, d.backup = d.metrics.InstrumentStore(raw), backupSource(raw)
	pg, _ := raw.(*postgres.Store)
	if err := master.CheckKey(ctx, d.store); err != nil {
		if errors.Is(err, envelope.ErrWrongMasterKey) {
			return nil, configError(fmt.Errorf("the master key is not the one this data directory was written with; refusing to start"))
		}
		return nil, fmt.Errorf("check master key: %w", err)
	}
	if d.keys, err = apikey.NewVerifier(ctx, d.store, d.now); err != nil {
		return nil, err
	}
	if d.tokens, err = cfg.Tokens.verifier(ctx, logger); err != nil {
		return nil, err
	}
	d.sealer = envelope.NewSealer(master, d.store)
	var secretStore neostore.SecretStore = d.store
	if cfg.Webhooks.on() {
		d.hookObs = newWebhookObserver(d.metrics)
		opts := cfg.Webhooks.options()
		opts.Store, opts.Opener, opts.Now, opts.Owner = d.store, master, d.now, cfg.Audit.nodeID()
		opts.Observer, opts.Logger = d.hookObs, logger
		d.dispatcher = webhook.New(opts)
		secretStore = notifyingStore{Store: d.store, notify: d.dispatcher.Notify}
	}
	d.secrets = neostore.NewSecretService(secretStore, d.sealer, d.now)
	if d.trail, d.auditor, err = openTrail(ctx, cfg.Audit, cfg.DataDir, cfg.Store, d.store, pg, master, logger); err != nil {
		return nil, err
	}
	if d.trail != nil {
		d.onClose(func() { d.trail.Close() }) // after the servers have drained
	}
	d.keyMgr = admin.AuditedKeys(envelope.NewRotator(d.sealer, d.store), d.auditor, d.now)
	opts := webhook.ManagerOptions{Store: d.store, Sealer: master, AllowInsecure: cfg.Webhooks.AllowInsecure, Now: d.now}
	if d.dispatcher != nil {
		opts.Dispatcher, opts.Notify = d.dispatcher, d.dispatcher.Notify
	}
	d.webhooks = admin.AuditedWebhooks(webhook.NewManager(opts), d.auditor, webhook.NewSubscriptionID, d.now)
	d.limiter = cfg.Observe.limiter()
	return d, nil
}

// apiHandler builds the Secret API's handler over d.
func apiHandler(cfg serveConfig, d *deps, logger *slog.Logger) (http.Handler, error) {
	proxies, err := cfg.Audit.proxies()
	if err != nil {
		return nil, err
	}
	var accessLog *httpapi.AccessLog
	if !cfg.Observe.NoAccessLog && cfg.logOut != nil {
		accessLog = httpapi.NewAccessLog(cfg.logOut, strings.EqualFold(cfg.LogFormat, "json"))
	}
	consoleHandler, err := cfg.UI.handler(cfg.Tokens)
	if err != nil {
		return nil, err
	}
	hcfg := httpapi.Config{
		MaxValueBytes: cfg.MaxValueBytes,
		Logger:        logger,
		Now:           d.now,
		Readiness: map[string]httpapi.ReadinessCheck{
			"store": d.store.Ping,
			// The master key is loaded and checked before the server
			// starts; the check names it so probes show what was verified.
			"masterKey":  func(context.Context) error { return nil },
			"auditTrail": auditReady(d.trail),
		},
		Auditor:        d.auditor,
		TrustedProxies: proxies,
		AccessLog:      accessLog,
		Observer:       d.metrics,
		Console:        consoleHandler,
	}
	if d.limiter != nil {
		hcfg.Limiter = d.limiter
	}
	h := httpapi.NewServer(hcfg, d.secrets, d.keys, d.tokens)
	if d.tlsConfig != nil {
		h = withHSTS(h)
	}
	return h, nil
}

// listeners are the servers serve runs and the listeners they serve.
type listeners struct {
	srv, adminSrv *http.Server
	ln, adminLn   net.Listener // bounded by connlimit; adminLn is nil without a data directory
	metricsAddr   string
	stopMetrics   func(context.Context)
	errc          chan error
}

// bindListeners binds the API and metrics listeners and builds the API and
// admin servers, bounding the connections of each; nothing is served yet.
func bindListeners(cfg serveConfig, d *deps, logger *slog.Logger) (*listeners, error) {
	handler, err := apiHandler(cfg, d, logger)
	if err != nil {
		return nil, err
	}
	nofile, nofileHard, nofileKnown := openFileLimit()
	maxConn, perClient := cfg.Limits.maxConnections(nofile, nofileKnown), cfg.Limits.maxPerClient()
	logLimits(logger, nofile, nofileHard, nofileKnown, maxConn, perClient)

	l := &listeners{errc: make(chan error, 2)}
	if l.stopMetrics, l.metricsAddr, err = serveMetrics(cfg.Observe, d.metrics, d.trail, logger); err != nil {
		return nil, err
	}
	rawLn, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		l.stopMetrics(context.Background())
		return nil, fmt.Errorf("listen: %w", err)
	}
	ln := limitListener(rawLn, "api", maxConn, perClient, d.metrics)
	l.ln = ln
	l.srv = &http.Server{
		Handler:           handler,
		TLSConfig:         d.tlsConfig,
		ConnState:         ln.ConnState,     // idle connections make room at the limit
		ReadHeaderTimeout: 5 * time.Second,  // slowloris: headers must arrive promptly
		ReadTimeout:       30 * time.Second, // whole request, body included (at most 1 MiB)
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	// No WriteTimeout: a backup or a rewrap may take longer than any bound.
	l.adminSrv = &http.Server{
		Handler:           admin.NewHandler(admin.Audited(d.keys, d.auditor, d.now), d.backup, d.keyMgr, d.webhooks, logger),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
	if d.adminLn != nil {
		limited := limitListener(d.adminLn, "admin", maxAdminConnections, 0, d.metrics)
		l.adminSrv.ConnState = limited.ConnState
		l.adminLn = limited
	}
	return l, nil
}

// serve starts serving the API and the admin socket.
func (l *listeners) serve(cfg serveConfig, logger *slog.Logger) {
	logger.Info("serving", "addr", l.ln.Addr().String(), "store", cfg.Store.Kind, "data", cfg.DataDir)
	go func() { l.errc <- serveHTTP(l.srv, l.ln) }()
	if l.adminLn != nil {
		go func() { l.errc <- l.adminSrv.Serve(l.adminLn) }()
	}
}

// close releases listeners that were never served. The admin listener is
// closed with the dependencies.
func (l *listeners) close() {
	l.ln.Close() // never handed to srv, whose Shutdown closes only what it serves
	l.stopMetrics(context.Background())
}

// startBackground starts the periodic tasks of a serving node and returns
// the function that stops them and waits until they ended.
func startBackground(cfg serveConfig, d *deps, logger *slog.Logger) (stop func()) {
	var background sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	// Last-use times are written once a minute, so that a request never
	// waits on a disk write for bookkeeping.
	every(ctx, &background, time.Minute, func(ctx context.Context) {
		if err := d.keys.FlushLastUsed(ctx); err != nil {
			logger.Warn("could not record API key use", "err", err)
		}
	})
	watchCertificates(ctx, &background, d.certs, cfg.TLS.ReloadInterval)
	onSIGHUP(ctx, &background, reloadCertificates(d.certs, logger), reloadMaster(d.master, d.keyMgr, logger))
	if d.limiter != nil {
		every(ctx, &background, time.Minute, func(context.Context) { d.limiter.Sweep() })
	}
	if d.dispatcher != nil {
		// Receivers are outside: a failing one fills the queue and the
		// metrics, never /readyz. The dispatcher's attempts end with ctx.
		d.hookObs.auditDisabled(ctx, &background, d.store, d.auditor, d.now, logger)
		background.Go(func() {
			if err := d.dispatcher.Run(ctx); err != nil && ctx.Err() == nil {
				logger.Error("webhook dispatcher stopped", "err", err)
			}
		})
	}
	if cfg.Store.shared() {
		// A key created or revoked on another node takes effect here within
		// the interval plus one query; on failure the previous keys stay.
		every(ctx, &background, cfg.Store.reloadInterval(), func(ctx context.Context) {
			if err := d.keys.Reload(ctx); err != nil && ctx.Err() == nil {
				logger.Warn("could not reload API keys; keeping the previous ones", "err", err)
			}
		})
	}
	return func() { cancel(); background.Wait() }
}

// wait waits until ctx is done or a server fails, and returns that failure.
func (l *listeners) wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-l.errc:
		return err
	}
}

// shutdown drains in-flight requests within grace, stops the background
// tasks and records the last API-key use.
func (l *listeners) shutdown(grace time.Duration, stopBackground func(), keys *apikey.Verifier, logger *slog.Logger) {
	logger.Info("shutting down", "grace", grace.String())
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := l.srv.Shutdown(ctx); err != nil {
		logger.Warn("in-flight requests did not finish in time", "err", err)
	}
	l.adminSrv.Shutdown(ctx)
	stopBackground()
	if err := keys.FlushLastUsed(ctx); err != nil {
		logger.Warn("could not record API key use", "err", err)
	}
	l.stopMetrics(context.Background())
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
