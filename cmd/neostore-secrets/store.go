package main

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"time"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/bolt"
	"github.com/neostore/neostore-secrets/postgres"
)

// Store kinds.
const (
	storeBolt     = "bolt"
	storePostgres = "postgres"
)

// storeConfig selects and configures the store. The zero value of each
// field means its documented default.
type storeConfig struct {
	Kind             string        // bolt (embedded, default) or postgres
	PostgresURL      string        // connection URL of the PostgreSQL store
	MaxConns         int           // pool size per node; default 16
	ConnectTimeout   time.Duration // default 5s
	StatementTimeout time.Duration // default 5s
	APIKeyReload     time.Duration // how often API keys are re-read from a shared store; default 2s

	// maxKeysPerTenant is serve's --max-keys-per-tenant (0: unlimited);
	// the other commands that open a store leave it unlimited.
	maxKeysPerTenant int
}

func (c *storeConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.Kind, "store", storeBolt, "bolt (embedded, one node) or postgres (many nodes on one database)")
	fs.StringVar(&c.PostgresURL, "postgres-url", "", "PostgreSQL connection URL, e.g. postgres://neostore@db:5432/neostore?sslmode=verify-full")
	fs.IntVar(&c.MaxConns, "postgres-max-conns", postgres.DefaultMaxConns, "PostgreSQL connections per node (nodes x this must stay below max_connections)")
	fs.DurationVar(&c.ConnectTimeout, "postgres-connect-timeout", postgres.DefaultConnectTimeout, "bound on opening one PostgreSQL connection")
	fs.DurationVar(&c.StatementTimeout, "postgres-statement-timeout", postgres.DefaultStatementTimeout, "bound on each PostgreSQL statement; a request fails with 503 after connect+statement timeout")
	fs.DurationVar(&c.APIKeyReload, "apikey-reload-interval", defaultAPIKeyReload, "with --store postgres: how often API keys changed on other nodes are picked up (revocation bound)")
}

func (c *storeConfig) validate(dataDir string) error {
	switch c.Kind {
	case storeBolt:
		if dataDir == "" {
			return usageError("--data is required with --store bolt")
		}
	case storePostgres:
		if c.PostgresURL == "" {
			return usageError("--postgres-url is required with --store postgres")
		}
	default:
		return usageError("--store %q: want bolt or postgres", c.Kind)
	}
	return nil
}

// defaultAPIKeyReload is how often API keys are re-read from a shared store.
const defaultAPIKeyReload = 2 * time.Second

// reloadInterval is APIKeyReload, or its default.
func (c *storeConfig) reloadInterval() time.Duration {
	if c.APIKeyReload <= 0 {
		return defaultAPIKeyReload
	}
	return c.APIKeyReload
}

// shared reports whether several nodes may share the store, so that each
// must re-read what the others change.
func (c *storeConfig) shared() bool { return c.Kind == storePostgres }

func (c *storeConfig) postgresOptions() postgres.Options {
	return postgres.Options{
		MaxConns:         int32(c.MaxConns),
		ConnectTimeout:   c.ConnectTimeout,
		StatementTimeout: c.StatementTimeout,
		MaxKeysPerTenant: c.maxKeysPerTenant,
	}
}

// open opens the configured store; the embedded one lives in dataDir.
func (c *storeConfig) open(ctx context.Context, dataDir string) (neostore.Store, error) {
	if err := c.validate(dataDir); err != nil {
		return nil, err
	}
	if c.Kind == storePostgres {
		s, err := postgres.Open(ctx, c.PostgresURL, c.postgresOptions())
		if err != nil {
			return nil, fmt.Errorf("open PostgreSQL store: %w", err)
		}
		return s, nil
	}
	return bolt.Open(filepath.Join(dataDir, databaseFile), bolt.Options{MaxKeysPerTenant: c.maxKeysPerTenant})
}

// openStoreURL opens a store named the way migrate-store names them:
// bolt:DIR or postgres:URL.
func openStoreURL(ctx context.Context, spec string) (neostore.Store, error) {
	kind, rest, ok := cutKind(spec)
	switch {
	case ok && kind == storeBolt:
		return bolt.Open(filepath.Join(rest, databaseFile), bolt.Options{})
	case ok && kind == storePostgres:
		s, err := postgres.Open(ctx, rest, postgres.Options{})
		if err != nil {
			return nil, fmt.Errorf("open PostgreSQL store: %w", err)
		}
		return s, nil
	}
	return nil, usageError("store %q: want bolt:DIR or postgres:URL", redactStoreSpec(spec))
}

func cutKind(spec string) (kind, rest string, ok bool) {
	for _, k := range []string{storeBolt, storePostgres} {
		if len(spec) > len(k)+1 && spec[:len(k)+1] == k+":" {
			return k, spec[len(k)+1:], true
		}
	}
	return "", "", false
}

// redactStoreSpec keeps only the kind of a store spec: a PostgreSQL URL may
// carry a password.
func redactStoreSpec(spec string) string {
	if kind, _, ok := cutKind(spec); ok {
		return kind + ":..."
	}
	return "(unrecognised)"
}
