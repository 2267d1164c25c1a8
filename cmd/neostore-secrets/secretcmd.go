package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/neostore/neostore-secrets/client"
)

// cliUserAgent is the User-Agent of the remote commands.
const cliUserAgent = "neostore-secrets-cli/1"

// maxInputValue bounds what put reads from stdin or --from-file: more than
// any server accepts (its --max-value-bytes), so the server's 413 decides.
const maxInputValue = 16 << 20

const secretUsage = `usage: neostore-secrets secret <command> [flags]

commands:
  get KEY                 write the value to stdout, with no added newline
  put KEY                 store the value read from stdin (or --from-file)
  ls                      list the tenant's keys, one per line (--json: a JSON array)
  rm KEY                  delete a secret (done even if it did not exist)
  rotate OLD NEW          store the value from stdin under NEW, then let OLD
                          expire after --grace (default 24h)

Every command takes --addr (NEOSTORE_ADDR, default ` + defaultAddr + `),
--tenant (NEOSTORE_TENANT) and --cacert (NEOSTORE_CACERT). The credential
comes from NEOSTORE_API_KEY, NEOSTORE_TOKEN (a bearer token) or
--api-key-file, never from a flag value.

Exit codes: 0 done, 1 error, 2 usage, 3 not found, 4 refused (401/403).
`

// runSecret serves `secret get|put|ls|rm|rotate`: the Secret API over HTTP.
func runSecret(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, secretUsage)
		return usageError("secret: want get, put, ls, rm or rotate")
	}
	rest := args[1:]
	switch args[0] {
	case "get":
		return runSecretGet(ctx, rest, getenv, stdout, stderr)
	case "put":
		return runSecretPut(ctx, rest, getenv, stdin, stderr)
	case "ls", "list":
		return runSecretList(ctx, rest, getenv, stdout, stderr)
	case "rm", "delete":
		return runSecretRemove(ctx, rest, getenv, stderr)
	case "rotate":
		return runSecretRotate(ctx, rest, getenv, stdin, stderr, time.Now)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, secretUsage)
		return nil
	}
	fmt.Fprint(stderr, secretUsage)
	return usageError("secret: unknown command %q; want get, put, ls, rm or rotate", args[0])
}

// remoteArgs parses the flags of a secret command and its positional
// arguments, of which it wants exactly len(names), and returns them with a
// client. hint is added to the error when there are too many.
func remoteArgs(fs *flag.FlagSet, rc *remoteConfig, args []string, getenv func(string) string, names []string, hint string) ([]string, *client.Client, error) {
	pos, err := parseArgs(fs, args, getenv)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case len(pos) > len(names):
		return nil, nil, usageError("%s: unexpected argument%s", fs.Name(), hint)
	case len(pos) < len(names):
		return nil, nil, usageError("%s: want %s", fs.Name(), names[len(pos)])
	}
	if err := rc.needTenant(fs.Name()); err != nil {
		return nil, nil, err
	}
	cred, err := rc.credential(getenv)
	if err != nil {
		return nil, nil, err
	}
	c, err := rc.client(cred, cliUserAgent)
	if err != nil {
		return nil, nil, err
	}
	return pos, c, nil
}

func runSecretGet(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("secret get", stderr)
	var rc remoteConfig
	rc.register(fs)
	pos, c, err := remoteArgs(fs, &rc, args, getenv, []string{"KEY"}, "")
	if err != nil {
		return err
	}
	value, err := c.Get(ctx, rc.Tenant, pos[0])
	if err != nil {
		return remoteError(err)
	}
	defer clear(value)
	_, err = stdout.Write(value)
	return err
}

// windowFlags are put's and rotate's flags of the validity window.
type windowFlags struct {
	fromFile, notBefore, expiresOn string
	expiresIn                      time.Duration
}

func (w *windowFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&w.fromFile, "from-file", "", "read the value from this file instead of stdin")
	fs.StringVar(&w.notBefore, "not-before", "", "not served before this time, RFC 3339 (e.g. 2099-01-01T00:00:00Z)")
	fs.StringVar(&w.expiresOn, "expires-on", "", "not served after this time, RFC 3339 (e.g. 2099-01-01T00:00:00Z)")
	fs.DurationVar(&w.expiresIn, "expires-in", 0, "not served after this long from now (e.g. 720h)")
}

// validity turns the flags into a window, measuring --expires-in from now.
func (w *windowFlags) validity(cmd string, now time.Time) (client.Validity, error) {
	var v client.Validity
	var err error
	if w.notBefore != "" {
		if v.NotBefore, err = time.Parse(time.RFC3339, w.notBefore); err != nil {
			return v, usageError("%s: --not-before: want an RFC 3339 time like 2099-01-01T00:00:00Z", cmd)
		}
	}
	switch {
	case w.expiresOn != "" && w.expiresIn != 0:
		return v, usageError("%s: give --expires-on or --expires-in, not both", cmd)
	case w.expiresOn != "":
		if v.ExpiresOn, err = time.Parse(time.RFC3339, w.expiresOn); err != nil {
			return v, usageError("%s: --expires-on: want an RFC 3339 time like 2099-01-01T00:00:00Z", cmd)
		}
	case w.expiresIn < 0:
		return v, usageError("%s: --expires-in must be positive", cmd)
	case w.expiresIn > 0:
		v.ExpiresOn = now.Add(w.expiresIn)
	}
	return v, nil
}

// readValue reads the value from --from-file or stdin, all of it: a
// trailing newline is part of the value (use echo -n or printf).
func (w *windowFlags) readValue(cmd string, stdin io.Reader, stderr io.Writer) ([]byte, error) {
	r := stdin
	if w.fromFile != "" {
		f, err := os.Open(w.fromFile)
		if err != nil {
			return nil, usageError("%s: --from-file: %v", cmd, err)
		}
		defer f.Close()
		r = f
	} else if f, ok := stdin.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			fmt.Fprintln(stderr, "reading the value from the terminal; end it with Ctrl-D (a newline you type is part of it)")
		}
	}
	value, err := io.ReadAll(io.LimitReader(r, maxInputValue+1))
	if err != nil {
		return nil, fmt.Errorf("%s: reading the value: %w", cmd, err)
	}
	if len(value) > maxInputValue {
		clear(value)
		return nil, usageError("%s: the value is larger than %d bytes", cmd, maxInputValue)
	}
	return value, nil
}

// noValueArg is the hint of put and rotate when a value is given as an argument.
const noValueArg = ": the value is never taken from the command line (it would show in ps); pipe it to stdin or use --from-file"

func runSecretPut(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stderr io.Writer) error {
	fs := newFlagSet("secret put", stderr)
	var rc remoteConfig
	rc.register(fs)
	var wf windowFlags
	wf.register(fs)
	pos, c, err := remoteArgs(fs, &rc, args, getenv, []string{"KEY"}, noValueArg)
	if err != nil {
		return err
	}
	v, err := wf.validity(fs.Name(), time.Now())
	if err != nil {
		return err
	}
	value, err := wf.readValue(fs.Name(), stdin, stderr)
	if err != nil {
		return err
	}
	defer clear(value)
	return remoteError(c.Put(ctx, rc.Tenant, pos[0], value, v))
}

func runSecretList(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("secret ls", stderr)
	var rc remoteConfig
	rc.register(fs)
	asJSON := fs.Bool("json", false, "print a JSON array")
	_, c, err := remoteArgs(fs, &rc, args, getenv, nil, "")
	if err != nil {
		return err
	}
	keys, err := c.List(ctx, rc.Tenant)
	if err != nil {
		return remoteError(err)
	}
	if *asJSON {
		b, err := json.Marshal(keys)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", b)
		return err
	}
	for _, k := range keys {
		if _, err := fmt.Fprintln(stdout, k); err != nil {
			return err
		}
	}
	return nil
}

func runSecretRemove(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := newFlagSet("secret rm", stderr)
	var rc remoteConfig
	rc.register(fs)
	pos, c, err := remoteArgs(fs, &rc, args, getenv, []string{"KEY"}, "")
	if err != nil {
		return err
	}
	return remoteError(c.Delete(ctx, rc.Tenant, pos[0]))
}

// runSecretRotate does what the contract recommends for rotation: the new
// value under a new key, and the old key kept for a grace period. It reads
// OLD first (so a missing OLD stops it before anything is written), stores
// the new value under NEW with put's window flags, then stores OLD again
// with its current value and expiresOn = now + grace. The API does not
// return a secret's window, so OLD's notBefore (already past, since OLD is
// served) is not kept, and an expiry OLD had before is replaced by the new
// one. A change to OLD by someone else between the read and the re-store
// is overwritten.
func runSecretRotate(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stderr io.Writer, now func() time.Time) error {
	fs := newFlagSet("secret rotate", stderr)
	var rc remoteConfig
	rc.register(fs)
	var wf windowFlags
	wf.register(fs)
	grace := fs.Duration("grace", 24*time.Hour, "how long OLD is still served after the rotation")
	pos, c, err := remoteArgs(fs, &rc, args, getenv, []string{"OLD", "NEW"}, noValueArg)
	if err != nil {
		return err
	}
	oldKey, newKey := pos[0], pos[1]
	if oldKey == newKey {
		return usageError("secret rotate: OLD and NEW are the same key")
	}
	if *grace <= 0 {
		return usageError("secret rotate: --grace must be positive (to stop serving OLD at once, use secret rm)")
	}
	v, err := wf.validity(fs.Name(), now())
	if err != nil {
		return err
	}
	value, err := wf.readValue(fs.Name(), stdin, stderr)
	if err != nil {
		return err
	}
	defer clear(value)
	old, err := c.Get(ctx, rc.Tenant, oldKey)
	if err != nil {
		return remoteError(fmt.Errorf("reading %s: %w", oldKey, err))
	}
	defer clear(old)
	if err := c.Put(ctx, rc.Tenant, newKey, value, v); err != nil {
		return remoteError(fmt.Errorf("storing %s: %w", newKey, err))
	}
	expires := now().Add(*grace).UTC()
	if err := c.Put(ctx, rc.Tenant, oldKey, old, client.Validity{ExpiresOn: expires}); err != nil {
		return remoteError(fmt.Errorf("%s is stored; setting the expiry of %s: %w", newKey, oldKey, err))
	}
	fmt.Fprintf(stderr, "%s stored; %s is served until %s\n", newKey, oldKey, expires.Format(time.RFC3339))
	return nil
}
