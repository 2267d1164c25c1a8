package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/audit"
	"github.com/neostore/neostore-secrets/envelope"
	"github.com/neostore/neostore-secrets/postgres"
)

// Audit sinks.
const (
	auditSinkFile     = "file"
	auditSinkStdout   = "stdout"
	auditSinkDatabase = "database"
	auditSinkOff      = "off"
)

// Defaults of auditConfig, each stated here once: the flags show them and
// openTrail applies them to a zero field.
const (
	defaultAuditMaxBytes   = 100 << 20 // the size at which the audit file rotates
	defaultAuditDurability = audit.WriteSync
)

// auditConfig configures the audit trail. The zero value of each field
// means its documented default.
type auditConfig struct {
	Sink           string     // file (default with --data), database (default with --store postgres and no --data), stdout, off
	File           string     // default DATA/audit.log
	MaxBytes       int64      // rotate the file past this size; default 100 MiB; negative never rotates
	Keep           int        // rotated files kept; 0 keeps all
	Durability     string     // writes (default), group, every, none
	FailOpen       bool       // serve when the trail cannot record, counting dropped records
	NodeID         string     // default the host name
	TrustedProxies stringList // peers whose X-Forwarded-For is believed
}

func (c *auditConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.Sink, "audit-sink", "", "where audit records go: file, database (PostgreSQL store only), stdout or off (default file, or database with --store postgres and no --data)")
	fs.StringVar(&c.File, "audit-file", "", "audit file (default audit.log in the data directory)")
	fs.Int64Var(&c.MaxBytes, "audit-max-bytes", defaultAuditMaxBytes, "rotate the audit file when it would grow past this many bytes (negative: never)")
	fs.IntVar(&c.Keep, "audit-keep", 0, "rotated audit files to keep (0: keep all; they are evidence)")
	fs.StringVar(&c.Durability, "audit-durability", defaultAuditDurability.String(), "writes: a change's record is durable before its response (with the embedded store, committed with the change), a read's is written before and fsync'd within "+audit.ReadSyncDelay.String()+"; group: every record fsync'd before its response, concurrent ones sharing an fsync; every: one fsync per record; none: written, never waited for")
	fs.BoolVar(&c.FailOpen, "audit-fail-open", false, "serve requests even when their records cannot be written (counted as dropped); default is to refuse them with 503")
	fs.StringVar(&c.NodeID, "node-id", "", "this node's name in audit records (default the host name)")
	fs.Var(&c.TrustedProxies, "trusted-proxies", "CIDRs of proxies whose X-Forwarded-For names the client in audit records, repeatable or comma-separated")
}

// sinkKind resolves the default sink.
func (c *auditConfig) sinkKind(dataDir string, store storeConfig) string {
	switch {
	case c.Sink != "":
		return c.Sink
	case dataDir == "" && store.Kind == storePostgres:
		return auditSinkDatabase
	}
	return auditSinkFile
}

func (c *auditConfig) filePath(dataDir string) string {
	if c.File != "" {
		return c.File
	}
	return filepath.Join(dataDir, "audit.log")
}

func (c *auditConfig) nodeID() string {
	if c.NodeID != "" {
		return c.NodeID
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "neostore"
}

func (c *auditConfig) proxies() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range c.TrustedProxies {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			if a, aerr := netip.ParseAddr(s); aerr == nil {
				p = netip.PrefixFrom(a, a.BitLen())
			} else {
				return nil, usageError("--trusted-proxies %q: want a CIDR or an address", s)
			}
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// openTrail opens the audit trail configured by cfg, and returns it twice:
// as itself and as the neostore.Auditor the handlers take; both are nil when
// auditing is off. Its HMAC key is the store's audit key, unwrapped with the
// master key; its checkpoints go to the store. pg is the store when it is
// the PostgreSQL one (the database sink lives there), else nil.
func openTrail(ctx context.Context, cfg auditConfig, dataDir string, storeCfg storeConfig, store neostore.Store, pg *postgres.Store, master *envelope.Master, logger *slog.Logger) (*audit.Trail, neostore.Auditor, error) {
	kind := cfg.sinkKind(dataDir, storeCfg)
	if kind == auditSinkOff {
		logger.Warn("the audit trail is off: requests are not recorded")
		return nil, nil, nil
	}
	if cfg.Durability == "" {
		cfg.Durability = defaultAuditDurability.String()
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = defaultAuditMaxBytes
	}
	durability, err := audit.ParseDurability(cfg.Durability)
	if err != nil {
		return nil, nil, usageError("--audit-durability %q: want writes, group, every or none", cfg.Durability)
	}
	sink, journal, durability, err := openAuditSink(cfg, kind, dataDir, durability, store, pg, logger)
	if err != nil {
		return nil, nil, err
	}
	key, err := master.AuditKey(ctx, store)
	if err != nil {
		sink.Close()
		return nil, nil, fmt.Errorf("audit key: %w", err)
	}
	trail, err := audit.Open(audit.Config{
		NodeID:      cfg.nodeID(),
		Key:         key,
		Sink:        sink,
		Durability:  durability,
		FailOpen:    cfg.FailOpen,
		Checkpoints: checkpointStore{store},
		Journal:     journal,
		Logger:      logger,
	})
	if err != nil {
		sink.Close()
		return nil, nil, fmt.Errorf("open audit trail: %w", err)
	}
	logger.Info("audit trail", "sink", kind, "node", cfg.nodeID(), "durability", durability.String(), "failOpen", cfg.FailOpen, "journal", journal != nil)
	return trail, trail, nil
}

// openAuditSink opens the sink of kind, and returns with it the journal
// the trail gets (the store's, when it commits a change's record with the
// change) and the durability the sink can keep.
func openAuditSink(cfg auditConfig, kind, dataDir string, durability audit.Durability, store neostore.Store, pg *postgres.Store, logger *slog.Logger) (sink audit.Sink, journal neostore.ChangeJournal, _ audit.Durability, _ error) {
	switch kind {
	case auditSinkFile:
		if cfg.File == "" && dataDir == "" {
			return nil, nil, 0, usageError("--audit-sink file needs --audit-file or --data")
		}
		fs, err := audit.OpenFile(cfg.filePath(dataDir), cfg.MaxBytes, cfg.Keep)
		if err != nil {
			return nil, nil, 0, err
		}
		if n := fs.CutAtOpen(); n > 0 {
			logger.Warn("audit: cut a partial last line left by a crash (a record never acknowledged)", "file", cfg.filePath(dataDir), "bytes", n)
		}
		sink = fs
		// The embedded store commits the record of a write with the write,
		// so the write waits for one fsync, not two (audit.Config.Journal).
		// Every wrapper of the store forwards ChangeJournal: which store
		// value is passed cannot turn this off.
		if durability == audit.WriteSync {
			journal = store.ChangeJournal()
		}
	case auditSinkStdout:
		sink = audit.NewWriterSink(os.Stdout)
	case auditSinkDatabase:
		if pg == nil {
			return nil, nil, 0, usageError("--audit-sink database needs --store postgres")
		}
		sink = pg.NewAuditSink()
		// A database sink holds records in memory until Sync commits them,
		// so a read may not be answered before its record is committed.
		if durability == audit.WriteSync || durability == audit.NoSync {
			durability = audit.GroupSync
		}
	default:
		return nil, nil, 0, usageError("--audit-sink %q: want file, database, stdout or off", kind)
	}
	return sink, journal, durability, nil
}

// checkpointStore adapts the store's audit checkpoints to the trail.
type checkpointStore struct{ s neostore.AuditStateStore }

func (c checkpointStore) SaveCheckpoint(ctx context.Context, node string, seq uint64, hash []byte) error {
	return c.s.SaveAuditCheckpoint(ctx, node, seq, hash)
}

func (c checkpointStore) LoadCheckpoint(ctx context.Context, node string) (uint64, []byte, bool, error) {
	return c.s.LoadAuditCheckpoint(ctx, node)
}

// auditReady is the readiness check of the trail: it fails while records
// cannot be written (a closed or broken trail), probed by auditing nothing.
func auditReady(trail *audit.Trail) func(context.Context) error {
	return func(ctx context.Context) error {
		if trail == nil {
			return nil
		}
		if err := trail.Healthy(); err != nil {
			return err
		}
		return nil
	}
}
