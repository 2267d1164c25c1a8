package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/envelope"
)

// devTenant is the tenant `dev` creates an API key for.
const devTenant = "demo"

// runDev starts a throwaway server: a temporary data directory and master
// key that are deleted on exit, and an API key for the demo tenant.
func runDev(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dev", stderr)
	listen := fs.String("listen", defaultListen, "loopback address to serve on")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	logger, err := newLogger(*logLevel, "text", stderr)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "neostore-dev-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	keyset, err := envelope.NewMasterKeyset()
	if err != nil {
		return err
	}
	master, err := envelope.ParseMaster(keyset)
	if err != nil {
		return err
	}
	cfg := serveConfig{
		Listen:        *listen,
		DataDir:       filepath.Join(dir, "data"),
		MaxValueBytes: 64 << 10,
		ShutdownGrace: 5 * time.Second,
		logOut:        stderr,
		Observe:       observabilityConfig{MetricsListen: "127.0.0.1:0"}, // a free port: dev must not clash with a real server
		// dev is a loopback playground: webhooks may go to a receiver on
		// this machine over plain HTTP (README, Notifications).
		Webhooks: webhookConfig{AllowInsecure: true, AllowPrivate: true},
	}
	return serve(ctx, cfg, master, logger, func(n *node) error {
		key, _, err := n.keys.Create(ctx, neostore.NewAPIKey{
			Tenant: devTenant, Scopes: neostore.ScopeRead | neostore.ScopeWrite, Name: "dev",
		})
		if err != nil {
			return err
		}
		base := "http://" + n.addr
		fmt.Fprintf(stdout, `neostore-secrets dev server: %[1]s (data and master key are temporary and deleted on exit)
API key for tenant %[2]q (Secret.Read, Secret.Write):

  %[3]s

Try it:
  curl -i -X PUT %[1]s/api/%[2]s/secrets/db-password -H 'X-API-KEY: %[3]s' -H 'Content-Type: application/json' -d '{"value":"s3cr3t"}'
  curl -s %[1]s/api/%[2]s/secrets/db-password -H 'X-API-KEY: %[3]s'
  curl -s %[1]s/api/%[2]s/secrets -H 'X-API-KEY: %[3]s'
  curl -i -X DELETE %[1]s/api/%[2]s/secrets/db-password -H 'X-API-KEY: %[3]s'

Web console: %[1]s/ui/ (sign in with the API key above)
Prometheus metrics: http://%[4]s/metrics
Data directory, for the apikey and webhook commands (webhooks may go to http and loopback here):

  --data %[5]s

Press Ctrl-C to stop.
`, base, devTenant, key, n.metricsAddr, cfg.DataDir)
		return nil
	})
}
