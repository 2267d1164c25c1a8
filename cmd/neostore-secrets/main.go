// Command neostore-secrets is the Neostore secret store: one binary that
// serves the Secret API and carries the operator's commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		if !errors.Is(err, errChildStatus) { // run's child has spoken for itself
			fmt.Fprintln(os.Stderr, "neostore-secrets:", err)
		}
		os.Exit(exitCode(err))
	}
}

// Exit codes beyond 0 and 1.
const (
	exitUsage    = 2  // bad command line
	exitNotFound = 3  // remote commands: the secret is not found (404)
	exitRefused  = 4  // remote commands: the server refused the credential (401, 403)
	exitConfig   = 78 // EX_CONFIG: missing or wrong master key, bad configuration
)

// exitError carries the process exit code of an error up to main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageError(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

func configError(err error) error { return &exitError{code: exitConfig, err: err} }

func exitCode(err error) int {
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	return 1
}

const usage = `usage: neostore-secrets <command> [flags]

commands:
  serve           serve the Secret API (see serve -h)
  dev             a throwaway server on 127.0.0.1:8200 with a demo tenant and API key
  keys init       write a new master keyset file (mode 0600)
  keys list|rotate|reload|rewrap|remove|rotate-tenant
                  rotate master and tenant keys online (see keys help)
  apikey create   issue an API key for a tenant
  apikey list     list API keys (never the keys themselves)
  apikey revoke   revoke an API key at once
  webhook add|list|remove|rotate-secret|test|deliveries|redeliver
                  signed notifications of secret changes and expiries (see webhook help)
  audit verify    check the audit trail's chain: reports the first altered, removed, inserted or reordered record, or a cut tail
  audit search    find audit records by tenant, key, principal, operation and time
  migrate         apply the PostgreSQL schema migrations
  migrate-store   copy an embedded store into PostgreSQL, still sealed, and verify the copy
  backup          write a consistent snapshot of the embedded store (online when a server runs)
  restore         bring a backup back into an empty data directory
  secret get|put|ls|rm|rotate
                  read and write secrets of a server over HTTP (see secret help);
                  exit codes 3 not found, 4 refused (401/403)
  run             run a command with secrets in its environment or a file, restart it
                  when they change, start it offline from an encrypted snapshot (see run -h)

Every flag can also be given as an environment variable: --master-key-file is
NEOSTORE_MASTER_KEY_FILE. Flags given on the command line win.
`

// run is the whole program; main only supplies the process's context,
// arguments, environment and streams, so tests can run it in-process.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		fmt.Fprint(stderr, usage)
		return usageError("no command given")
	}
	cmd, rest := args[1], args[2:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, getenv, stdout, stderr)
	case "dev":
		return runDev(ctx, rest, getenv, stdout, stderr)
	case "keys":
		return runKeys(ctx, rest, getenv, stdout, stderr)
	case "apikey":
		return runAPIKey(ctx, rest, getenv, stdout, stderr)
	case "webhook":
		return runWebhook(ctx, rest, getenv, stdout, stderr)
	case "audit":
		return runAudit(ctx, rest, getenv, stdout, stderr)
	case "migrate":
		return runMigrate(ctx, rest, getenv, stdout, stderr)
	case "migrate-store":
		return runMigrateStore(ctx, rest, getenv, stdout, stderr)
	case "backup":
		return runBackup(ctx, rest, getenv, stdout, stderr)
	case "restore":
		return runRestore(ctx, rest, getenv, stdout, stderr)
	case "secret":
		return runSecret(ctx, rest, getenv, stdin, stdout, stderr)
	case "run":
		return runRun(ctx, rest, getenv, os.Environ(), stdin, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usageError("unknown command %q", cmd)
}
