package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/admin"
	"github.com/neostore/neostore-secrets/envelope"
)

const keysUsage = `usage: neostore-secrets keys <command> [flags]

  init           write a new master keyset file: --out FILE
  list           list the master keys (ids, status, primary; never key material)
  rotate         add a new primary key to the master keyset file, and reload the server on --data
  reload         make the server on --data re-read its master key file (as SIGHUP does)
  rewrap         wrap every tenant data key (and webhook signing secret) anew under the primary master key, online
  remove         remove an old master key from the file once nothing depends on it
  rotate-tenant  give a tenant a new data key and seal its secrets anew, online

Where the store is: --data DIR talks to the server running there over its admin
socket, or opens the embedded store when none runs; --store postgres
--postgres-url URL works on a shared store directly. Without a server the
commands need the master key (--master-key-file or NEOSTORE_MASTER_KEY).
`

// defaultRotateGrace is how long rotate-tenant waits between storing the
// new data key and sealing anew: every node must have stopped sealing with
// the old key (envelope.DefaultKeyRefresh) and every write sealed before
// must have reached the store (at most connect + statement timeout, 10s by
// default, on PostgreSQL).
const defaultRotateGrace = 15 * time.Second

func runKeys(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, keysUsage)
		return usageError("keys: want a command")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "init":
		return runKeysInit(rest, getenv, stderr)
	case "list":
		return runKeysList(ctx, rest, getenv, stdout, stderr)
	case "rotate":
		return runKeysRotate(ctx, rest, getenv, stdout, stderr)
	case "reload":
		return runKeysReload(ctx, rest, getenv, stdout, stderr)
	case "rewrap":
		return runKeysRewrap(ctx, rest, getenv, stdout, stderr)
	case "remove":
		return runKeysRemove(ctx, rest, getenv, stdout, stderr)
	case "rotate-tenant":
		return runKeysRotateTenant(ctx, rest, getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, keysUsage)
		return nil
	}
	fmt.Fprint(stderr, keysUsage)
	return usageError("keys: unknown command %q", cmd)
}

func runKeysInit(args []string, getenv func(string) string, stderr io.Writer) error {
	fs := newFlagSet("keys init", stderr)
	out := fs.String("out", "", "file to write the new master keyset to (mode 0600; never overwritten)")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if *out == "" {
		return usageError("keys init: --out is required")
	}
	// A missing directory (/etc/neostore on a fresh machine) is created
	// private, as the key file is; one that exists is left as it is.
	if dir := filepath.Dir(*out); dir != "" {
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return fmt.Errorf("keys init: create the directory for --out: %w", err)
			}
			fmt.Fprintf(stderr, "created directory %s (mode 0700)\n", dir)
		}
	}
	keyset, err := envelope.NewMasterKeyset()
	if err != nil {
		return err
	}
	if err := envelope.WriteMasterFile(*out, keyset); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "wrote a new master keyset to %s (mode 0600). Keep it apart from the data and its backups: without it no secret can be read.\n", *out)
	return nil
}

// keyFlags are the flags of the key commands that work on a store: where
// it is, and the master key for when no server runs.
type keyFlags struct {
	where     storeFlags
	masterKey string
}

// located reports whether the flags name a store.
func (f *keyFlags) located() bool {
	return f.where.dataDir != "" || f.where.store.Kind == storePostgres
}

// withKeyManager runs fn against the server on --data when one runs there,
// else against the store itself with the master key from the flags or
// NEOSTORE_MASTER_KEY. viaServer tells fn which it got.
func withKeyManager(ctx context.Context, f keyFlags, getenv func(string) string, fn func(km neostore.KeyManager, viaServer bool) error) error {
	if f.where.dataDir != "" {
		client, err := admin.Dial(f.where.dataDir)
		if err == nil {
			return fn(client, true)
		} else if !errors.Is(err, admin.ErrNoServer) {
			return err
		}
	}
	if !f.located() {
		return usageError("say where the store is: --data DIR, or --store postgres --postgres-url URL")
	}
	master, err := loadMaster(serveConfig{MasterKeyFile: f.masterKey, MasterKey: getenv("NEOSTORE_MASTER_KEY")})
	if err != nil {
		return err
	}
	store, err := f.where.store.open(ctx, f.where.dataDir)
	if err != nil {
		return err
	}
	defer store.Close()
	if err := master.CheckKey(ctx, store); err != nil {
		if errors.Is(err, envelope.ErrWrongMasterKey) {
			return configError(errors.New("the master key is not the one this store was written with"))
		}
		return err
	}
	return fn(envelope.NewRotator(envelope.NewSealer(master, store), store), false)
}

// newKeyFlagSet returns a flag set with the flags of f.
func newKeyFlagSet(name string, f *keyFlags, stderr io.Writer) *flag.FlagSet {
	fs := newFlagSet(name, stderr)
	f.where.register(fs)
	fs.StringVar(&f.masterKey, "master-key-file", "", "master keyset file; needed when no server runs (or set NEOSTORE_MASTER_KEY)")
	return fs
}

func runKeysList(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var f keyFlags
	fs := newKeyFlagSet("keys list", &f, stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	var fileKeys []neostore.MasterKey
	if f.masterKey != "" {
		m, err := envelope.ReadMasterFile(f.masterKey)
		if err != nil {
			return configError(fmt.Errorf("master key: %w", err))
		}
		fileKeys = m.Keys()
	}
	if !f.located() {
		if fileKeys == nil {
			return usageError("keys list: give --master-key-file FILE, --data DIR, or both")
		}
		return printMasterKeys(stdout, fileKeys, false, *asJSON)
	}
	return withKeyManager(ctx, f, getenv, func(km neostore.KeyManager, viaServer bool) error {
		inUse, err := km.MasterKeys(ctx)
		if err != nil {
			return cliError(err)
		}
		if viaServer && fileKeys != nil && !sameKeyset(fileKeys, inUse) {
			fmt.Fprintf(stderr, "warning: the server on %s uses another keyset than %s (run `keys reload --data %s`); showing the server's.\n", f.where.dataDir, f.masterKey, f.where.dataDir)
		}
		return printMasterKeys(stdout, inUse, true, *asJSON)
	})
}

func printMasterKeys(w io.Writer, keys []neostore.MasterKey, usage, asJSON bool) error {
	if asJSON {
		b, err := admin.MarshalMasterKeys(keys)
		if err != nil {
			return err
		}
		fmt.Fprintln(w, string(b))
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if usage {
		fmt.Fprintln(tw, "ID\tSTATUS\tPRIMARY\tTENANT KEYS\tWEBHOOK SECRETS\tKEY CHECK\tAUDIT KEY")
	} else {
		fmt.Fprintln(tw, "ID\tSTATUS\tPRIMARY")
	}
	for _, k := range keys {
		primary := "-"
		if k.Primary {
			primary = "primary"
		}
		if usage {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%s\t%s\n", k.ID, k.Status, primary, k.TenantKeys, k.WebhookSecrets, yesNo(k.KeyCheck), yesNo(k.AuditKey))
		} else {
			fmt.Fprintf(tw, "%d\t%s\t%s\n", k.ID, k.Status, primary)
		}
	}
	return tw.Flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "-"
}

// sameKeyset reports whether two keysets hold the same key ids with the
// same primary.
func sameKeyset(a, b []neostore.MasterKey) bool {
	ids := func(keys []neostore.MasterKey) []string {
		var out []string
		for _, k := range keys {
			out = append(out, fmt.Sprintf("%d/%v", k.ID, k.Primary))
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(ids(a), ids(b))
}

func primaryID(keys []neostore.MasterKey) (uint32, bool) {
	for _, k := range keys {
		if k.Primary {
			return k.ID, true
		}
	}
	return 0, false
}

func runKeysRotate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("keys rotate", stderr)
	file := fs.String("master-key-file", "", "master keyset file to add a new primary key to (replaced atomically; old keys stay)")
	dataDir := fs.String("data", "", "data directory of a running server to reload the file into")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if *file == "" {
		return usageError("keys rotate: --master-key-file is required")
	}
	id, err := envelope.AddMasterKey(*file)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, id)
	fmt.Fprintf(stderr, "added master key %d to %s as its primary; the old keys stay in it, so everything they wrapped still opens.\n", id, *file)
	if *dataDir != "" {
		if err := reloadServer(ctx, *dataDir, id, stderr); err != nil {
			return err
		}
	}
	fmt.Fprintf(stderr, "next: reload every server that reads this file (SIGHUP, or `keys reload --data DIR`), then run `keys rewrap`.\n")
	return nil
}

// reloadServer makes the server on dataDir reload its master key file and
// checks that its primary is now wantPrimary: a server that reads another
// file would not have it.
func reloadServer(ctx context.Context, dataDir string, wantPrimary uint32, stderr io.Writer) error {
	client, err := admin.Dial(dataDir)
	if errors.Is(err, admin.ErrNoServer) {
		fmt.Fprintf(stderr, "no server runs on %s; it will read the new keyset when it starts.\n", dataDir)
		return nil
	} else if err != nil {
		return err
	}
	keys, err := client.ReloadMaster(ctx)
	if err != nil {
		return fmt.Errorf("the server on %s did not reload its master key file: %w", dataDir, cliError(err))
	}
	if p, _ := primaryID(keys); wantPrimary != 0 && p != wantPrimary {
		return fmt.Errorf("the server on %s reloaded a keyset whose primary is %d, not %d: it reads another master key file", dataDir, p, wantPrimary)
	}
	p, _ := primaryID(keys)
	fmt.Fprintf(stderr, "the server on %s reloaded its master keyset: %d keys, primary %d.\n", dataDir, len(keys), p)
	return nil
}

func runKeysReload(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("keys reload", stderr)
	dataDir := fs.String("data", "", "data directory of the running server")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if *dataDir == "" {
		return usageError("keys reload: --data is required")
	}
	client, err := admin.Dial(*dataDir)
	if err != nil {
		return err
	}
	keys, err := client.ReloadMaster(ctx)
	if err != nil {
		return cliError(err)
	}
	return printMasterKeys(stdout, keys, true, false)
}

func runKeysRewrap(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var f keyFlags
	fs := newKeyFlagSet("keys rewrap", &f, stderr)
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	return withKeyManager(ctx, f, getenv, func(km neostore.KeyManager, _ bool) error {
		rep, err := km.Rewrap(ctx)
		if err != nil {
			return cliError(err)
		}
		fmt.Fprintf(stdout, "rewrapped %d of %d tenant data keys under the primary master key", rep.Rewrapped, rep.Tenants)
		if rep.KeyCheckResealed {
			fmt.Fprint(stdout, "; key-check record sealed anew")
		}
		if rep.AuditKeyResealed {
			fmt.Fprint(stdout, "; audit key sealed anew")
		}
		if rep.WebhookSecrets > 0 {
			fmt.Fprintf(stdout, "; %d webhook signing secrets sealed anew", rep.WebhookSecrets)
		}
		fmt.Fprintln(stdout)
		return nil
	})
}

func runKeysRemove(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var f keyFlags
	fs := newKeyFlagSet("keys remove", &f, stderr)
	keyID := fs.String("key-id", "", "id of the master key to remove (see keys list)")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if f.masterKey == "" || *keyID == "" {
		return usageError("keys remove: --master-key-file and --key-id are required")
	}
	id64, err := strconv.ParseUint(*keyID, 10, 32)
	if err != nil {
		return usageError("keys remove: --key-id %q is not a key id", *keyID)
	}
	id := uint32(id64)
	if !f.located() {
		return usageError("keys remove: say where the store is (--data DIR, or --store postgres --postgres-url URL), so that nothing that still needs key %d is left without it", id)
	}
	m, err := envelope.ReadMasterFile(f.masterKey)
	if err != nil {
		return configError(fmt.Errorf("master key: %w", err))
	}
	fileKeys := m.Keys()
	if !slices.ContainsFunc(fileKeys, func(k neostore.MasterKey) bool { return k.ID == id }) {
		return fmt.Errorf("%s has no key %d", f.masterKey, id)
	}
	if p, _ := primaryID(fileKeys); p == id {
		return fmt.Errorf("key %d is the primary key of %s; add a new primary first (keys rotate), then rewrap", id, f.masterKey)
	}
	return withKeyManager(ctx, f, getenv, func(km neostore.KeyManager, viaServer bool) error {
		if viaServer {
			// The server wraps new tenant keys with its own primary: if it
			// has not loaded this file, it may still be wrapping with id.
			inUse, err := km.MasterKeys(ctx)
			if err != nil {
				return cliError(err)
			}
			if !sameKeyset(fileKeys, inUse) {
				return fmt.Errorf("the server on %s has not loaded %s (its keyset differs); run `keys reload --data %s` first", f.where.dataDir, f.masterKey, f.where.dataDir)
			}
		}
		if err := km.CheckMasterKeyRemoval(ctx, id); err != nil {
			return fmt.Errorf("refusing to remove master key %d: %w", id, cliError(err))
		}
		if err := envelope.RemoveMasterKey(f.masterKey, id); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "removed master key %d from %s.\n", id, f.masterKey)
		if viaServer {
			return reloadServer(ctx, f.where.dataDir, 0, stderr)
		}
		fmt.Fprintf(stderr, "reload every server that reads this file (SIGHUP, or `keys reload --data DIR`).\n")
		return nil
	})
}

func runKeysRotateTenant(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var f keyFlags
	fs := newKeyFlagSet("keys rotate-tenant", &f, stderr)
	grace := fs.Duration("grace", defaultRotateGrace, "wait between storing the new data key and sealing anew, so that every node has stopped sealing with the old one")
	positional, err := parseArgs(fs, args, getenv)
	if err != nil {
		return err
	}
	if len(positional) != 1 {
		return usageError("keys rotate-tenant: want one tenant id: keys rotate-tenant --data DIR TENANT")
	}
	if *grace < 0 {
		return usageError("keys rotate-tenant: --grace must not be negative")
	}
	tenant := positional[0]
	return withKeyManager(ctx, f, getenv, func(km neostore.KeyManager, _ bool) error {
		fmt.Fprintf(stderr, "rotating the data key of tenant %s; waiting %v before sealing anew...\n", tenant, *grace)
		rep, err := km.RotateTenantKey(ctx, tenant, *grace)
		if err != nil {
			return cliError(err)
		}
		fmt.Fprintf(stdout, "tenant %s: new data key %d; removed %v; %d secrets, %d sealed anew, %d changed by clients meanwhile\n",
			rep.Tenant, rep.NewKeyID, rep.RemovedKeyIDs, rep.Secrets, rep.Resealed, rep.Skipped)
		return nil
	})
}
