// Package bolt is the embedded store: it keeps a node's secrets, tenant keys,
// key-check record and API keys in one bbolt file. It holds ciphertext and
// metadata only; sealing and authorization happen a layer up.
//
// Layout of the file:
//
//	secrets/<tenant>/<key>  secret record (see record.go), one nested bucket per tenant
//	tenantkeys/<tenant>     wrapped tenant data key
//	meta/schema             schema version, one byte
//	meta/keycheck           key-check record
//	apikeys/<id>            API-key record, JSON
//	apikeyhashes/<hash>     id of the API key with that hash, for uniqueness
//	audit/key, audit/cp/<node>  wrapped audit key, each node's audit checkpoint
//	auditjournal/<node>/<seq>   audit lines of changes, until checkpointed (auditstate.go)
//	webhooks, webhookcover, outbox, due, deliveries, dlvdue, dlvsub, dlvdone
//	                        webhook notifications (webhook.go)
package bolt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	bbolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/neostore/neostore-secrets"
)

var (
	bucketSecrets      = []byte("secrets")
	bucketTenantKeys   = []byte("tenantkeys")
	bucketMeta         = []byte("meta")
	bucketAPIKeys      = []byte("apikeys")
	bucketAPIKeyHashes = []byte("apikeyhashes")

	metaSchema   = []byte("schema")
	metaKeyCheck = []byte("keycheck")
)

// schemaVersion is the layout this package reads and writes. A file with
// another version is refused rather than misread.
const schemaVersion = 1

const defaultTimeout = time.Second

// Options configures Open. The zero value is ready to use.
type Options struct {
	// Timeout is how long Open waits for the file lock that another process
	// (or another Open in this one) holds. Zero means 1s. bbolt's own
	// "wait forever" is not offered: a second server started by mistake
	// should fail, not hang.
	Timeout time.Duration
	// MaxKeysPerTenant is the most secrets one tenant may hold; a put of a
	// new key beyond it fails with neostore.ErrTenantFull. Zero means
	// unlimited. Each put of a new key then counts the tenant's keys (up
	// to the quota) in the write transaction, which keeps the count exact
	// under concurrent puts but costs a walk of the tenant per new key:
	// keep the quota in the tens of thousands.
	MaxKeysPerTenant int
}

// Store is a neostore.Store in a bbolt file. It is safe for concurrent use.
type Store struct {
	db   *bbolt.DB
	path string

	commit   committer // the group commit (commit.go)
	closeErr error
	once     sync.Once

	maxKeys int // Options.MaxKeysPerTenant

	released     atomic.Int64 // page writes counted at the last releaseMapped
	releaseAfter int64        // releaseAfterWrites; smaller in tests
}

var _ neostore.Store = (*Store)(nil)

// Open opens the store at path, creating the file (mode 0600) and its
// buckets when they do not exist. Only one process may have the file open;
// Open fails after opts.Timeout when another does.
func Open(path string, opts Options) (*Store, error) {
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = defaultTimeout
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout:      timeout,
		FreelistType: bbolt.FreelistArrayType,
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("bolt: open %s: file is locked by another process (is another neostore server running on it?); gave up after %v: %w", path, timeout, err)
	} else if err != nil {
		return nil, fmt.Errorf("bolt: open %s: %w", path, err)
	}
	s := &Store{db: db, path: path, maxKeys: max(opts.MaxKeysPerTenant, 0), releaseAfter: releaseAfterWrites}
	s.commit.idle.L = &s.commit.mu
	if err := s.init(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("bolt: open %s: %w", path, err)
	}
	return s, nil
}

// init creates the top-level buckets of a new file and checks the schema
// version of an existing one.
func (s *Store) init() error {
	tx, err := s.db.Begin(true)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()

	for _, name := range append([][]byte{bucketSecrets, bucketTenantKeys, bucketMeta, bucketAPIKeys, bucketAPIKeyHashes}, webhookBuckets...) {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	// Files written before the due index existed get it now; they stay
	// schema 1, the new buckets are additive.
	if err := indexExisting(tx); err != nil {
		return fmt.Errorf("index due times: %w", err)
	}
	meta := tx.Bucket(bucketMeta)
	switch v := meta.Get(metaSchema); {
	case v == nil:
		if err := meta.Put(metaSchema, []byte{schemaVersion}); err != nil {
			return err
		}
	case len(v) != 1 || v[0] != schemaVersion:
		return fmt.Errorf("schema version %v, this build reads only %d", v, schemaVersion)
	}
	return tx.Commit()
}

// Close closes the file and releases its lock. It waits for running
// transactions and for the writes queued for the group commit, which
// commit; calls after Close fail. Closing twice is harmless.
func (s *Store) Close() error {
	s.once.Do(func() {
		s.closeCommitter()
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("bolt: close: %w", err)
		}
	})
	return s.closeErr
}

// Path returns the path of the store's file.
func (s *Store) Path() string { return s.path }

// Ping returns nil when the file is open and its buckets are in place.
func (s *Store) Ping(ctx context.Context) error {
	tx, err := s.begin(ctx, false)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if tx.Bucket(bucketSecrets) == nil {
		return errors.New("bolt: ping: secrets bucket missing")
	}
	return nil
}

// Backup writes a consistent snapshot of the whole file to w while the store
// keeps serving, and returns the number of bytes written. The snapshot is a
// bbolt file that Open reads. A long backup holds a read transaction, which
// delays writes that need to grow the file until it ends.
func (s *Store) Backup(w io.Writer) (int64, error) {
	tx, err := s.db.Begin(false)
	if err != nil {
		return 0, fmt.Errorf("bolt: backup: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	n, err := tx.WriteTo(w)
	if err != nil {
		return n, fmt.Errorf("bolt: backup: %w", err)
	}
	return n, nil
}

// begin starts a transaction unless ctx is already done: bbolt itself does
// not watch contexts, so a request that has gone away is not served.
func (s *Store) begin(ctx context.Context, writable bool) (*bbolt.Tx, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	tx, err := s.db.Begin(writable)
	if err != nil {
		return nil, fmt.Errorf("bolt: begin: %w", err)
	}
	return tx, nil
}
