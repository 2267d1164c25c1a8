package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"sort"
	"strings"

	"github.com/neostore/neostore-secrets/client"
)

// defaultAddr is where remote commands find a server by default: the
// address `dev` and `serve` listen on by default.
const defaultAddr = "http://" + defaultListen

// remoteConfig is the connection settings every command that talks to a
// server over HTTP shares (secret, run). The credential is never a flag:
// a flag value shows in `ps`. It comes from NEOSTORE_API_KEY,
// NEOSTORE_TOKEN or the file --api-key-file names, exactly one of them.
type remoteConfig struct {
	Addr       string // base URL of the server
	Tenant     string // the tenant the command acts on
	CACert     string // PEM file of the CAs to trust for https://; empty means the system roots
	APIKeyFile string // file holding an API key (surrounding whitespace ignored)
}

// register adds the settings' flags to fs; parseFlags fills them from
// NEOSTORE_ADDR, NEOSTORE_TENANT, NEOSTORE_CACERT and NEOSTORE_API_KEY_FILE too.
func (c *remoteConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "addr", defaultAddr, "base URL of the server")
	fs.StringVar(&c.Tenant, "tenant", "", "tenant id")
	fs.StringVar(&c.CACert, "cacert", "", "PEM file of the CA certificates to trust for https:// (default: the system's)")
	fs.StringVar(&c.APIKeyFile, "api-key-file", "", "file holding the API key (or set NEOSTORE_API_KEY, or NEOSTORE_TOKEN for a bearer token)")
}

// needTenant returns a usage error when no tenant was given.
func (c *remoteConfig) needTenant(cmd string) error {
	if c.Tenant == "" {
		return usageError("%s: no tenant: give --tenant or set NEOSTORE_TENANT", cmd)
	}
	return nil
}

// credential is the one credential the environment or --api-key-file
// gives: exactly one of NEOSTORE_API_KEY, NEOSTORE_TOKEN and --api-key-file.
type credential struct {
	secret  string // the API key or bearer token itself
	isToken bool   // a bearer token (NEOSTORE_TOKEN), not an API key
}

// option is the client option that sends the credential.
func (c credential) option() client.Option {
	if c.isToken {
		t := c.secret
		return client.WithTokenSource(func(context.Context) (string, error) { return t, nil })
	}
	return client.WithAPIKey(c.secret)
}

// credential finds the credential, or returns a usage error when none or
// more than one is given.
func (c *remoteConfig) credential(getenv func(string) string) (credential, error) {
	var given []string
	var cred credential
	if k := getenv("NEOSTORE_API_KEY"); k != "" {
		given = append(given, "NEOSTORE_API_KEY")
		cred = credential{secret: k}
	}
	if t := getenv("NEOSTORE_TOKEN"); t != "" {
		given = append(given, "NEOSTORE_TOKEN")
		cred = credential{secret: t, isToken: true}
	}
	if c.APIKeyFile != "" {
		given = append(given, "--api-key-file")
		b, err := os.ReadFile(c.APIKeyFile)
		if err != nil {
			return credential{}, usageError("--api-key-file: %v", err)
		}
		k := string(bytes.TrimSpace(b))
		if k == "" {
			return credential{}, usageError("--api-key-file: %s is empty", c.APIKeyFile)
		}
		cred = credential{secret: k}
	}
	switch len(given) {
	case 0:
		return credential{}, usageError("no credential: set NEOSTORE_API_KEY (or NEOSTORE_TOKEN for a bearer token), or give --api-key-file")
	case 1:
		return cred, nil
	default:
		return credential{}, usageError("more than one credential given (%s): give exactly one", strings.Join(given, ", "))
	}
}

// client builds a client of the server from the settings and cred. opts
// come after the settings' own, so a caller may add or override
// (WithRetries, WithCache...).
func (c *remoteConfig) client(cred credential, userAgent string, opts ...client.Option) (*client.Client, error) {
	all := []client.Option{cred.option()}
	if userAgent != "" {
		all = append(all, client.WithUserAgent(userAgent))
	}
	if c.CACert != "" {
		pem, err := os.ReadFile(c.CACert)
		if err != nil {
			return nil, usageError("--cacert: %v", err)
		}
		all = append(all, client.WithCABundle(pem))
	}
	cl, err := client.New(c.Addr, append(all, opts...)...)
	if err != nil {
		return nil, usageError("--addr %q: %v", c.Addr, err)
	}
	return cl, nil
}

// remoteError gives a client error the exit code of its kind: 3 when the
// secret is not found, 4 when the server refused the credential (401/403),
// and otherwise 1. A problem's field errors and detail are added to the
// message, which then names status, title, traceId and the server's words
// (never a value).
func remoteError(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	var e *client.Error
	if errors.As(err, &e) {
		var extra []string
		if e.Detail != "" {
			extra = append(extra, e.Detail)
		}
		fields := make([]string, 0, len(e.Errors))
		for f := range e.Errors {
			fields = append(fields, f)
		}
		sort.Strings(fields)
		for _, f := range fields {
			extra = append(extra, f+": "+strings.Join(e.Errors[f], " "))
		}
		if len(extra) > 0 {
			msg += ": " + strings.Join(extra, "; ")
		}
	}
	code := 1
	switch {
	case errors.Is(err, client.ErrNotFound):
		code = exitNotFound
	case errors.Is(err, client.ErrUnauthenticated), errors.Is(err, client.ErrForbidden):
		code = exitRefused
	}
	return &exitError{code: code, err: &remoteFailure{msg: msg, err: err}}
}

// remoteFailure is a client error with the server's words added to its
// message; errors.Is and errors.As still see the client error.
type remoteFailure struct {
	msg string
	err error
}

func (e *remoteFailure) Error() string { return e.msg }
func (e *remoteFailure) Unwrap() error { return e.err }
