package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/audit"
	"github.com/neostore/neostore-secrets/postgres"
)

func runAudit(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError("audit: want verify or search")
	}
	switch args[0] {
	case "verify":
		return runAuditVerify(ctx, args[1:], getenv, stdout, stderr)
	case "search":
		return runAuditSearch(ctx, args[1:], getenv, stdout, stderr)
	}
	return usageError("audit: unknown command %q; want verify or search", args[0])
}

// auditSource is where the audit commands read records: a file (with its
// rotated predecessors) or the PostgreSQL store's audit table.
type auditSource struct {
	file     string
	database bool
	where    storeFlags
}

func (s *auditSource) register(fs interface {
	StringVar(*string, string, string, string)
	BoolVar(*bool, string, bool, string)
}) {
	fs.StringVar(&s.file, "file", "", "audit file; its rotated files (FILE.N ... FILE.1) are read first")
	fs.BoolVar(&s.database, "database", false, "read the audit table of the PostgreSQL store (--store postgres --postgres-url URL)")
}

func (s *auditSource) validate() error {
	if (s.file == "") == !s.database {
		return usageError("give --file PATH or --database")
	}
	if s.database && s.where.store.Kind != storePostgres {
		return usageError("--database needs --store postgres --postgres-url URL")
	}
	return nil
}

// read returns the source's records: the paths of a file and its rotated
// predecessors, oldest first, or the database's lines (of tenant, when not
// empty) as one reader with its name.
func (s *auditSource) read(ctx context.Context, store neostore.Store, tenant string) (io.Reader, string, []string, error) {
	if s.file != "" {
		paths, err := audit.RotatedFiles(s.file)
		if err != nil {
			return nil, "", nil, err
		}
		return nil, s.file, paths, nil
	}
	pg, ok := store.(*postgres.Store)
	if !ok {
		return nil, "", nil, usageError("--database needs --store postgres")
	}
	var buf bytes.Buffer
	err := pg.AuditLines(ctx, tenant, func(line []byte) error {
		buf.Write(line)
		buf.WriteByte('\n')
		return nil
	})
	return &buf, "audit_log", nil, err
}

func runAuditVerify(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("audit verify", stderr)
	var src auditSource
	src.register(fs)
	src.where.register(fs)
	masterKeyFile := fs.String("master-key-file", "", "master keyset file (the audit key is stored wrapped by it)")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if err := src.validate(); err != nil {
		return err
	}
	master, err := loadMaster(serveConfig{MasterKeyFile: *masterKeyFile, MasterKey: getenv("NEOSTORE_MASTER_KEY")})
	if err != nil {
		return err
	}
	store, err := src.where.store.open(ctx, src.where.dataDir)
	if err != nil {
		return fmt.Errorf("audit verify reads the audit key and checkpoints from the store (stop an embedded server first): %w", err)
	}
	defer store.Close()
	wrapped, err := store.GetAuditKey(ctx)
	if err != nil {
		return fmt.Errorf("read the audit key: %w", err)
	}
	key, err := master.UnwrapAuditKey(wrapped)
	if err != nil {
		return configError(errors.New("the audit key does not open with this master key"))
	}
	stored, err := store.ListAuditCheckpoints(ctx)
	if err != nil {
		return err
	}
	checkpoints := make([]audit.Checkpoint, len(stored))
	for i, c := range stored {
		checkpoints[i] = audit.Checkpoint{Node: c.Node, Seq: c.Seq, Hash: c.Hash}
	}
	r, name, paths, err := src.read(ctx, store, "")
	if err != nil {
		return err
	}
	var rep audit.Report
	if paths != nil {
		rep, err = audit.Verify(paths, key, checkpoints)
	} else {
		rep, err = audit.VerifyReader(r, name, key, checkpoints)
	}
	if err != nil {
		var p *audit.Problem
		if errors.As(err, &p) {
			fmt.Fprintf(stdout, "FAILED: %s at %s line %d (node %q, seq %d): %s\n", p.Kind, p.File, p.Line, p.Node, p.Seq, p.Detail)
			return &exitError{code: 1, err: errors.New("the audit trail does not verify")}
		}
		return err
	}
	for _, c := range rep.Chains {
		fmt.Fprintf(stdout, "node %-20s records %d..%d intact\n", c.Node, c.First, c.Last)
	}
	// A torn tail is a crash, not tampering: what was acknowledged verifies,
	// so the exit status stays 0 and the warning says what the next start does.
	if tt := rep.TornTail; tt != nil {
		fmt.Fprintf(stdout, "WARNING: torn tail: an unacknowledged record was cut short at %s line %d (%d bytes, no newline); the next start cuts it\n", tt.File, tt.Line, tt.Bytes)
	}
	fmt.Fprintf(stdout, "OK: %d records verified; every chain reaches its checkpoint\n", rep.Records)
	return nil
}

func runAuditSearch(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("audit search", stderr)
	var src auditSource
	src.register(fs)
	src.where.register(fs)
	var f audit.Filter
	fs.StringVar(&f.Tenant, "tenant", "", "only this tenant's records")
	fs.StringVar(&f.Key, "key", "", "only this key's records")
	fs.StringVar(&f.Principal, "principal", "", "only records of this principal (API-key id, token sub or client id)")
	fs.StringVar(&f.Op, "op", "", "only this operation, e.g. secret.get")
	since := fs.String("since", "", "records at or after this time (RFC 3339) or this long ago (e.g. 24h)")
	until := fs.String("until", "", "records before this time (RFC 3339) or this long ago")
	asJSON := fs.Bool("json", false, "print the matching records as JSON lines")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if err := src.validate(); err != nil {
		return err
	}
	var err error
	if f.Since, err = parseWhen(*since); err != nil {
		return usageError("--since: %v", err)
	}
	if f.Until, err = parseWhen(*until); err != nil {
		return usageError("--until: %v", err)
	}
	var lines []audit.Line
	collect := func(l audit.Line) error {
		if *asJSON {
			_, err := fmt.Fprintln(stdout, string(l.Raw))
			return err
		}
		lines = append(lines, l)
		return nil
	}
	if src.file != "" {
		paths, err := audit.RotatedFiles(src.file)
		if err != nil {
			return err
		}
		err = audit.Search(paths, f, collect)
		if err != nil {
			return err
		}
	} else {
		store, err := src.where.store.open(ctx, src.where.dataDir)
		if err != nil {
			return err
		}
		defer store.Close()
		r, name, _, err := src.read(ctx, store, f.Tenant)
		if err != nil {
			return err
		}
		if err := audit.SearchReader(r, name, f, collect); err != nil {
			return err
		}
	}
	if *asJSON {
		return nil
	}
	return audit.WriteTable(stdout, lines)
}

// parseWhen reads an RFC 3339 time or a duration ago; "" is the zero time.
func parseWhen(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	return time.Time{}, errors.New("want an RFC 3339 time or a duration such as 24h")
}
