package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/neostore/neostore-secrets"
)

// Defaults of Options, exported so that flags can show them without
// stating them again.
const (
	DefaultMaxConns         = 16
	DefaultConnectTimeout   = 5 * time.Second
	DefaultStatementTimeout = 5 * time.Second
	defaultPingTimeout      = 2 * time.Second
)

// Options configures Open. The zero value is ready to use. The URL's own
// connect_timeout, statement_timeout and pool_max_conns are overridden by
// these fields (by their defaults when zero): set limits here, not there.
type Options struct {
	// MaxConns is the most connections this node keeps to the database.
	// Zero means 16. Every node opens up to this many, so nodes × MaxConns
	// must stay below the server's max_connections (100 by default, some
	// reserved for superusers), or connections are refused under load and
	// requests answer 503. Too few make requests queue for a connection;
	// the wait counts against the same per-call bound as the statement.
	// Concurrent reads of single secrets share at most a quarter of them
	// (rounded up), in batches of one pipeline each (see GetSecret); the
	// rest serve writes and lists. Two are kept open even when idle,
	// unless the URL's pool_min_conns says otherwise.
	MaxConns int32

	// ConnectTimeout bounds opening one connection: TCP, TLS and
	// authentication. Zero means 5s. When the database is unreachable a
	// request waits this long before it fails; too short a value fails
	// connections to a distant or busy server that would have succeeded.
	ConnectTimeout time.Duration

	// StatementTimeout bounds each statement, on the server (PostgreSQL's
	// statement_timeout, which also ends waits for locks) and in the
	// client. Zero means 5s. Every store call returns within
	// ConnectTimeout + StatementTimeout, even when its context has no
	// deadline. Too short a value fails legitimate work on a loaded
	// server; too long holds requests, and their connections, while the
	// database hangs.
	StatementTimeout time.Duration

	// PingTimeout bounds Ping, which readiness probes call. Zero means 2s.
	// Keep it below the probe's own timeout, so that the probe sees "not
	// ready" rather than its own timeout.
	PingTimeout time.Duration

	// SkipMigrate makes Open check the schema version instead of
	// migrating, for a role that may read and write rows but not change
	// the schema; run `neostore-secrets migrate` with an owner's role
	// first. Open then fails unless the database is at this build's
	// version. False (the default) migrates on every start, which needs a
	// role that may create tables.
	SkipMigrate bool

	// MaxKeysPerTenant is the most secrets one tenant may hold; a put of a
	// new key beyond it fails with neostore.ErrTenantFull. Zero means
	// unlimited. Each put then runs in a transaction that takes a
	// per-tenant advisory lock and counts the tenant's keys (up to the
	// quota), so that puts on every node stay within it; it costs a round
	// trip and serializes one tenant's puts. CockroachDB's advisory locks
	// are no-ops, so there concurrent puts may overshoot the quota.
	MaxKeysPerTenant int
}

// Store is a neostore.Store in a PostgreSQL database, shared by every node
// that opens the same database. It is safe for concurrent use.
type Store struct {
	pool        *pgxpool.Pool
	callTimeout time.Duration // ConnectTimeout + StatementTimeout
	pingTimeout time.Duration
	closed      atomic.Bool
	maxKeys     int // Options.MaxKeysPerTenant

	textsScratch sync.Pool // of *textsScratch, for collectTexts
	gets         getBatcher
}

var _ neostore.Store = (*Store)(nil)

// Open connects to the database at url (a postgres:// URL or a libpq
// keyword/value string), brings its schema to this build's version (see
// Migrate) and returns the store. Open fails when the database cannot be
// reached within ctx and opts.ConnectTimeout; after it has returned, the
// pool reconnects by itself whenever the database comes back.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err) // pgx redacts the password
	}
	cfg.MaxConns = opts.MaxConns
	if cfg.MinConns == 0 {
		// Connections are recycled hourly (pgxpool's MaxConnLifetime)
		// and closed after 30 idle minutes: with two kept open, and
		// reopened in the background, a lone request (a CLI call, a
		// health-checking sidecar) does not pay a dial and TLS and
		// authentication first. The URL's pool_min_conns wins.
		cfg.MinConns = min(2, opts.MaxConns)
	}
	cfg.ConnConfig.ConnectTimeout = opts.ConnectTimeout
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "neostore-secrets"
	}

	// Migrations run on a connection of their own, without the statement
	// timeout: schema changes may take longer than any query.
	migrateCfg := cfg.ConnConfig.Copy()
	delete(migrateCfg.RuntimeParams, "statement_timeout")
	if opts.SkipMigrate {
		err = checkVersion(ctx, migrateCfg)
	} else {
		_, _, err = migrateConfig(ctx, migrateCfg)
	}
	if err != nil {
		return nil, openError(ctx, "open", err)
	}

	cfg.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(opts.StatementTimeout.Milliseconds(), 10)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	s := &Store{
		pool:        pool,
		callTimeout: opts.ConnectTimeout + opts.StatementTimeout,
		pingTimeout: opts.PingTimeout,
		maxKeys:     max(opts.MaxKeysPerTenant, 0),
	}
	s.gets = getBatcher{store: s, maxLeaders: readLeaders(opts.MaxConns)}
	return s, nil
}

// openError wraps a failure of Open or Migrate, with EUNAVAILABLE in the
// chain when the database could not be reached, so that a caller may wait
// and retry instead of giving up on a bad configuration.
func openError(ctx context.Context, op string, err error) error {
	if unavailable(ctx, err) && !errors.Is(err, errUnavailable) {
		return fmt.Errorf("postgres: %s: %w: %w", op, errUnavailable, err)
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}

func (o Options) withDefaults() (Options, error) {
	if o.MaxConns < 0 || o.ConnectTimeout < 0 || o.StatementTimeout < 0 || o.PingTimeout < 0 {
		return o, errors.New("negative option")
	}
	if o.StatementTimeout > 0 && o.StatementTimeout < time.Millisecond {
		return o, errors.New("StatementTimeout below 1ms")
	}
	if o.MaxConns == 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.StatementTimeout == 0 {
		o.StatementTimeout = DefaultStatementTimeout
	}
	if o.PingTimeout == 0 {
		o.PingTimeout = defaultPingTimeout
	}
	return o, nil
}

// checkVersion fails unless the database is at this build's schema
// version.
func checkVersion(ctx context.Context, cfg *pgx.ConnConfig) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	current, err := schemaVersion(ctx, conn)
	if err != nil {
		return err
	}
	latest := SchemaVersion()
	if err := checkNotNewer(current, latest); err != nil {
		return err
	}
	if current != latest {
		return fmt.Errorf("the database is at schema version %d, this build needs %d: run `neostore-secrets migrate` first", current, latest)
	}
	return nil
}

// Close closes the pool after the calls in progress have returned (each
// within its bound). Calls after Close fail with EUNAVAILABLE: a request
// that races a shutting-down node should be retried on another. Closing
// twice is harmless.
func (s *Store) Close() error {
	s.closed.Store(true)
	s.pool.Close()
	return nil
}

// Ping returns nil when a connection answers SELECT 1 within the ping
// timeout, and an EUNAVAILABLE error otherwise.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.check(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.pingTimeout)
	defer cancel()
	var one int
	if err := s.pool.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return s.fail(ctx, "ping", err)
	}
	return nil
}

// Errors every method may return.
var (
	errUnavailable = neostore.Errorf(neostore.EUNAVAILABLE, "The database is unavailable; retry later.")
	errClosed      = neostore.Errorf(neostore.EUNAVAILABLE, "The store is closed; retry later.")
)

// call returns the context for one store call: ctx bounded by the call
// timeout, so that no call outlives ConnectTimeout + StatementTimeout,
// whatever deadline the caller set or forgot.
func (s *Store) call(ctx context.Context) (context.Context, context.CancelFunc, error) {
	if err := s.check(ctx); err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.callTimeout)
	return ctx, cancel, nil
}

// check fails a call on a closed store or a context that is already done.
func (s *Store) check(ctx context.Context) error {
	if s.closed.Load() {
		return errClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", errUnavailable, err)
	}
	return nil
}

// fail wraps err, the failure of op, for the caller: an EUNAVAILABLE error
// when the database could not be reached or did not answer in time (the
// API answers 503 with Retry-After), a plain wrapped error, which is
// EINTERNAL, for anything else. Either way the pgx error stays in the
// chain for the log, and neostore.ErrorMessage shows the client only a
// generic message.
func (s *Store) fail(ctx context.Context, op string, err error) error {
	if s.closed.Load() {
		return fmt.Errorf("postgres: %s: %w: %w", op, errClosed, err)
	}
	if unavailable(ctx, err) {
		return fmt.Errorf("postgres: %s: %w: %w", op, errUnavailable, err)
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}

// unavailable reports whether err means the database is down, unreachable,
// overloaded, restarting, failing over or too slow, rather than that the
// query or the data is wrong.
func unavailable(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return unavailableState(pgErr.Code)
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &connectErr), errors.As(err, &netErr), pgconn.Timeout(err), pgconn.SafeToRetry(err):
		return true
	case errors.Is(err, pgconn.ErrConnClosed), errors.Is(err, net.ErrClosed),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return true
	}
	return false
}

// unavailableState reports whether a server error, by SQLSTATE, is
// transient: a retry later, perhaps on a new connection, may succeed.
func unavailableState(code string) bool {
	switch code {
	case "57014", // query_canceled: statement_timeout fired
		"57P01", // admin_shutdown
		"57P02", // crash_shutdown
		"57P03", // cannot_connect_now: starting up, recovering
		"57P05", // idle_session_timeout
		"55P03", // lock_not_available: lock_timeout fired
		"40001", // serialization_failure (CockroachDB retry errors too)
		"40P01", // deadlock_detected
		"25006", // read_only_sql_transaction: connected to a standby after a failover
		"58030": // io_error on the server
		return true
	}
	if len(code) < 2 {
		return false
	}
	switch code[:2] {
	case "08", // connection exception
		"53": // insufficient resources: too many connections, disk full, out of memory
		return true
	}
	return false
}
