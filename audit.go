package neostore

import (
	"context"
	"sync/atomic"
	"time"
)

// Audit operations: what a record says was attempted.
const (
	OpSecretList   = "secret.list"
	OpSecretGet    = "secret.get"
	OpSecretPut    = "secret.put"
	OpSecretDelete = "secret.delete"
	OpSecretAttrs  = "secret.attributes" // the console's list: windows and times, no value
	OpMe           = "me"                // who the caller is
	OpAPIKeyCreate = "apikey.create"
	OpAPIKeyList   = "apikey.list"
	OpAPIKeyRevoke = "apikey.revoke"
	OpKeyRotate    = "key.rotate"
	OpKeyRewrap    = "key.rewrap"
	OpStoreMigrate = "store.migrate"
	OpUnknownRoute = "http.unknown" // a request that matched no operation
)

// AuditPrincipal identifies who made a request, without any credential.
type AuditPrincipal struct {
	Kind     string `json:"kind"` // PrincipalAPIKey, PrincipalToken, or "anonymous"
	ID       string `json:"id,omitempty"`
	Name     string `json:"name,omitempty"`
	Issuer   string `json:"issuer,omitempty"`
	Subject  string `json:"sub,omitempty"`
	ClientID string `json:"clientId,omitempty"`
}

// AuditRecord is what the audit trail keeps of one request or admin action.
// It never holds a secret value, a credential or key material. The chain
// fields (node, sequence, hashes) are filled in by the Auditor.
type AuditRecord struct {
	Time       time.Time      `json:"time"`
	TraceID    string         `json:"traceId,omitempty"`
	Op         string         `json:"op"`
	Tenant     string         `json:"tenant,omitempty"`
	Key        string         `json:"key,omitempty"`
	Principal  AuditPrincipal `json:"principal"`
	Status     int            `json:"status"`
	ErrorCode  string         `json:"errorCode,omitempty"`
	ClientAddr string         `json:"clientAddr,omitempty"`
	UserAgent  string         `json:"userAgent,omitempty"`
	Duration   time.Duration  `json:"durationNs"`
}

// AuditStateStore keeps what the audit trail needs from the store: its HMAC
// key, wrapped by the master key, and the checkpoint of each node's chain
// (sequence number and hash of its last record), against which a cut tail
// of the audit file is detected.
type AuditStateStore interface {
	// GetAuditKey returns the wrapped audit key, or ENOTFOUND.
	GetAuditKey(ctx context.Context) ([]byte, error)

	// CreateAuditKey stores wrapped unless an audit key is stored, and
	// returns the one stored afterwards.
	CreateAuditKey(ctx context.Context, wrapped []byte) ([]byte, error)

	// ReplaceAuditKey stores wrapped if the stored audit key is still old
	// (a master-key rewrap), else returns ECONFLICT.
	ReplaceAuditKey(ctx context.Context, old, wrapped []byte) error

	// SaveAuditCheckpoint records that node's chain reached seq with hash.
	// A checkpoint never moves backwards: an older seq is ignored. A store
	// that journals audit entries (see AuditEntry) drops node's entries up
	// to seq in the same transaction: the trail holds them durably now.
	SaveAuditCheckpoint(ctx context.Context, node string, seq uint64, hash []byte) error

	// LoadAuditCheckpoint returns node's checkpoint; found is false when
	// the node never saved one.
	LoadAuditCheckpoint(ctx context.Context, node string) (seq uint64, hash []byte, found bool, err error)

	// ListAuditCheckpoints returns every node's checkpoint, by node.
	ListAuditCheckpoints(ctx context.Context) ([]AuditCheckpoint, error)
}

// AuditCheckpoint is how far one node's audit chain is known to reach.
type AuditCheckpoint struct {
	Node string
	Seq  uint64
	Hash []byte
}

// Auditor appends records to the audit trail.
type Auditor interface {
	// Audit appends r and returns once it is as durable as the configured
	// mode promises. It returns EUNAVAILABLE when the trail cannot accept
	// the record; the caller must then refuse the request (fail closed).
	Audit(ctx context.Context, r *AuditRecord) error
}

// ChangeAuditor is an Auditor that can let the store make the record of a
// change durable in the change's own transaction, so that a write costs one
// fsync instead of two (the trail's, then the store's).
type ChangeAuditor interface {
	Auditor

	// AuditChange appends r, the record of a change about to be made, and
	// returns once it is written, before it is necessarily durable. The
	// caller makes the change with Change{Audit: entry} and calls Durable
	// before it answers.
	// A nil entry means the record is already as durable as Audit makes it.
	// It returns EUNAVAILABLE like Audit: the change must then not be made.
	AuditChange(ctx context.Context, r *AuditRecord) (*AuditEntry, error)

	// Durable returns once e's record is durable: at once when the store
	// committed it with the change, otherwise once the trail fsync'd it.
	// It returns EUNAVAILABLE when the record cannot be made durable.
	Durable(ctx context.Context, e *AuditEntry) error
}

// AuditEntry is the sealed line of a change's audit record, written to the
// trail but maybe not yet durable there. A store that journals audit
// entries receives it as Change.Audit, stores Line under Node and Seq in
// the change's own transaction, and calls Committed once that transaction
// is durable; the trail copies journaled lines it lost back in when it
// restarts (ChangeJournal). Line is metadata only, like every audit record.
type AuditEntry struct {
	Node  string
	Seq   uint64
	Line  []byte // the record's line, without its newline
	Epoch uint64 // the auditor's: which run of its chain Seq is from; stores ignore it

	committed atomic.Bool
}

// Committed marks the entry as durable in the store.
func (e *AuditEntry) Committed() { e.committed.Store(true) }

// IsCommitted reports whether a store made the entry durable.
func (e *AuditEntry) IsCommitted() bool { return e.committed.Load() }
