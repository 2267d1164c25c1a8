package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"slices"

	"github.com/neostore/neostore-secrets/postgres"
	"github.com/neostore/neostore-secrets/storecopy"
)

// runMigrate applies the PostgreSQL schema migrations, as serve does at
// start, for deployments whose nodes run with --postgres-skip-migrate or a
// role that may not change the schema.
func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate", stderr)
	url := fs.String("postgres-url", "", "PostgreSQL connection URL (a role that may create tables)")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if *url == "" {
		return usageError("migrate: --postgres-url is required")
	}
	from, to, err := postgres.Migrate(ctx, *url)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "schema version %d -> %d\n", from, to)
	return nil
}

// runMigrateStore copies an embedded store into PostgreSQL, still sealed,
// then verifies the copy tenant by tenant.
func runMigrateStore(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate-store", stderr)
	from := fs.String("from", "", "source store: bolt:DIR (stop the server that serves DIR first)")
	to := fs.String("to", "", "target store: postgres:URL")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if *from == "" || *to == "" {
		return usageError("migrate-store: --from and --to are required, e.g. --from bolt:/var/lib/neostore --to postgres:postgres://...")
	}
	src, err := openStoreURL(ctx, *from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := openStoreURL(ctx, *to)
	if err != nil {
		return err
	}
	defer dst.Close()

	copied, err := storecopy.Copy(ctx, src, dst)
	if err != nil {
		return fmt.Errorf("migrate-store: %w", err)
	}
	fmt.Fprintf(stdout, "copied %d tenants, %d secrets, %d API keys (sealed; no plaintext left the stores)\n", copied.Tenants, copied.Secrets, copied.APIKeys)
	verified, err := storecopy.Verify(ctx, src, dst)
	if err != nil {
		return fmt.Errorf("migrate-store: verification failed: %w", err)
	}
	tenants := make([]string, 0, len(verified.Digests))
	for t := range verified.Digests {
		tenants = append(tenants, t)
	}
	slices.Sort(tenants)
	for _, t := range tenants {
		d := verified.Digests[t]
		fmt.Fprintf(stdout, "  tenant %-30s sha256 %s\n", t, hex.EncodeToString(d[:]))
	}
	fmt.Fprintf(stdout, "verified: %d tenants, %d secrets, %d API keys identical in source and target\n", verified.Tenants, verified.Secrets, verified.APIKeys)
	return nil
}
