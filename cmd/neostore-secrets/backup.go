package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/admin"
	"github.com/neostore/neostore-secrets/bolt"
	"github.com/neostore/neostore-secrets/envelope"
	"github.com/neostore/neostore-secrets/storecopy"
)

// backupSource returns the store's snapshot writer for the admin socket, or
// nil when the store is not the embedded one (PostgreSQL has its own tools).
func backupSource(store neostore.Store) admin.Backuper {
	if b, ok := store.(admin.Backuper); ok {
		return b
	}
	return nil
}

// runBackup writes a consistent snapshot of an embedded store to a file. The
// snapshot stays sealed: it is useless without the master key, which must
// never be stored beside it.
func runBackup(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("backup", stderr)
	dataDir := fs.String("data", "", "data directory of the embedded store; a server running on it is asked for the snapshot over its admin socket")
	out := fs.String("out", "", "file to write the snapshot to (mode 0600, through a temporary file and a rename: never left half-written); an existing file is refused unless --force")
	force := fs.Bool("force", false, "replace an existing --out file (atomically)")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if *dataDir == "" || *out == "" {
		return usageError("backup: --data and --out are required")
	}
	dbPath := filepath.Join(*dataDir, databaseFile)
	if sameFile(*out, dbPath) {
		return usageError("backup: --out is the live database file")
	}
	// Refused like keys init refuses: the file there may be the only copy
	// of an older backup. Checked before the snapshot is taken; a file
	// created meanwhile is still replaced by the rename.
	if _, err := os.Lstat(*out); err == nil && !*force {
		return fmt.Errorf("backup: %s already exists; refusing to overwrite it (pass --force to replace it)", *out)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("backup: %w", err)
	}
	client, err := admin.Dial(*dataDir)
	if err != nil && !errors.Is(err, admin.ErrNoServer) {
		return fmt.Errorf("backup: %w", err)
	}
	if client == nil {
		if _, err := os.Stat(dbPath); err != nil {
			return fmt.Errorf("backup: no embedded store in %s and no server running on it: %w", *dataDir, err)
		}
	}

	var from string
	sum := sha256.New()
	n, err := writeFileAtomic(*out, func(w io.Writer) (int64, error) {
		w = io.MultiWriter(w, sum)
		if client != nil {
			from = "the running server (online snapshot)"
			n, err := client.Backup(ctx, w)
			return n, cliError(err)
		}
		// No server: open the file ourselves. bbolt's lock keeps a server
		// from starting on it meanwhile (it fails rather than waits).
		store, err := bolt.Open(dbPath, bolt.Options{})
		if err != nil {
			return 0, err
		}
		defer store.Close()
		from = "the database file (no server running)"
		return store.Backup(w)
	})
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %s: %d bytes, sha256 %s, from %s\n", *out, n, hex.EncodeToString(sum.Sum(nil)), from)
	fmt.Fprintln(stderr, "The backup is sealed: keep the master key elsewhere (never beside the backup); restore needs both.")
	return nil
}

// runRestore brings a backup back into an empty data directory after
// checking that it is a neostore store (and, given the master key, that the
// key opens it). It never overwrites anything.
func runRestore(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("restore", stderr)
	from := fs.String("from", "", "backup file written by `backup`")
	dataDir := fs.String("data", "", "data directory to restore into: must be empty or absent (created with mode 0700)")
	masterKeyFile := fs.String("master-key-file", "", "optional: check that this master keyset opens the backup before restoring it")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if *from == "" || *dataDir == "" {
		return usageError("restore: --from and --data are required")
	}
	var master *envelope.Master
	if *masterKeyFile != "" {
		m, err := loadMaster(serveConfig{MasterKeyFile: *masterKeyFile})
		if err != nil {
			return err
		}
		master = m
	}
	src, err := os.Open(*from)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer src.Close()
	if info, err := src.Stat(); err != nil {
		return fmt.Errorf("restore: %w", err)
	} else if !info.Mode().IsRegular() || info.Size() == 0 {
		return fmt.Errorf("restore: %s is not a backup (not a regular, non-empty file)", *from)
	}
	if err := emptyDataDir(*dataDir); err != nil {
		return err
	}

	// Copy under a temporary name, check the copy, then move it into place:
	// a server started meanwhile sees no database rather than half of one,
	// and the backup file itself is never opened for writing.
	tmp := filepath.Join(*dataDir, "."+databaseFile+".restore")
	if err := copyFile(tmp, src); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("restore: %w", err)
	}
	report, err := checkBackup(ctx, tmp, master)
	if err != nil {
		os.Remove(tmp)
		return err
	}
	// A hard link, unlike a rename, fails when the target exists: a server
	// that started on the directory meanwhile keeps its database.
	err = os.Link(tmp, filepath.Join(*dataDir, databaseFile))
	os.Remove(tmp)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := syncDir(*dataDir); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	fmt.Fprintf(stdout, "restored %s into %s: %d tenants, %d secrets, %d API keys\n", *from, *dataDir, report.Tenants, report.Secrets, report.APIKeys)
	if master == nil {
		fmt.Fprintln(stderr, "Start `serve` with the master key the backup was written with; any other key is refused at start.")
	}
	return nil
}

// checkBackup opens the restored copy at path as a store and reads all of it:
// the file must be a bbolt file of this schema with a key-check record (so an
// arbitrary or empty bbolt file is refused), and, when master is given, the
// key-check record must open under it.
func checkBackup(ctx context.Context, path string, master *envelope.Master) (storecopy.Report, error) {
	store, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		return storecopy.Report{}, fmt.Errorf("restore: not a neostore backup: %w", err)
	}
	defer store.Close()
	if _, err := store.GetKeyCheck(ctx); err != nil {
		if neostore.ErrorCode(err) == neostore.ENOTFOUND {
			return storecopy.Report{}, errors.New("restore: not a neostore backup: it holds no key-check record")
		}
		return storecopy.Report{}, fmt.Errorf("restore: %w", err)
	}
	if master != nil {
		if err := master.CheckKey(ctx, store); err != nil {
			if errors.Is(err, envelope.ErrWrongMasterKey) {
				return storecopy.Report{}, configError(errors.New("restore: the master key is not the one this backup was written with; nothing restored"))
			}
			return storecopy.Report{}, fmt.Errorf("restore: %w", err)
		}
	}
	// Reading every record catches a damaged file now rather than at the
	// first request for the damaged part.
	report, err := storecopy.Digest(ctx, store)
	if err != nil {
		return report, fmt.Errorf("restore: the backup does not read back: %w", err)
	}
	return report, nil
}

// emptyDataDir creates dir with mode 0700, or accepts an existing empty
// directory and restricts it to 0700. Anything in it is refused: a restore
// never overwrites a store.
func emptyDataDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("restore: create data directory: %w", err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("restore: %w", err)
	case len(entries) > 0:
		return usageError("restore: %s is not empty (it holds %s); restore only into an empty or new directory", dir, entries[0].Name())
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("restore: restrict data directory: %w", err)
	}
	return nil
}

// writeFileAtomic writes path through write: into a new temporary file
// beside it (mode 0600), fsync'd, then renamed over path and the directory
// fsync'd, so path holds either its old content or the whole new one.
func writeFileAtomic(path string, write func(io.Writer) (int64, error)) (n int64, err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(0o600); err != nil {
		return 0, err
	}
	if n, err = write(f); err != nil {
		return n, err
	}
	if err = f.Sync(); err != nil {
		return n, err
	}
	if err = f.Close(); err != nil {
		return n, err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return n, err
	}
	return n, syncDir(dir)
}

// copyFile copies src into a new file dst (mode 0600) and fsyncs it.
func copyFile(dst string, src io.Reader) error {
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, src); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// sameFile reports whether a and b name the same existing file.
func sameFile(a, b string) bool {
	ia, err := os.Stat(a)
	if err != nil {
		return false
	}
	ib, err := os.Stat(b)
	return err == nil && os.SameFile(ia, ib)
}
