package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/admin"
	"github.com/neostore/neostore-secrets/apikey"
)

func runAPIKey(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError("apikey: want create, list or revoke")
	}
	switch args[0] {
	case "create":
		return runAPIKeyCreate(ctx, args[1:], getenv, stdout, stderr)
	case "list":
		return runAPIKeyList(ctx, args[1:], getenv, stdout, stderr)
	case "revoke":
		return runAPIKeyRevoke(ctx, args[1:], getenv, stdout, stderr)
	}
	return usageError("apikey: unknown command %q; want create, list or revoke", args[0])
}

// storeFlags are the flags every apikey command takes to find the keys.
type storeFlags struct {
	dataDir string
	store   storeConfig
}

func (f *storeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.dataDir, "data", "", "data directory of the server (its admin socket, or the embedded database when no server runs)")
	f.store.register(fs)
}

// withIssuer runs fn against the running server's admin socket when a server
// serves the data directory, else against the store itself. With a shared
// (PostgreSQL) store, other nodes pick the change up within their
// --apikey-reload-interval.
func withIssuer(ctx context.Context, f storeFlags, fn func(neostore.APIKeyIssuer) error) error {
	if f.dataDir != "" {
		client, err := admin.Dial(f.dataDir)
		if err == nil {
			return fn(client)
		} else if !errors.Is(err, admin.ErrNoServer) {
			return err
		}
	}
	store, err := f.store.open(ctx, f.dataDir)
	if err != nil {
		return err
	}
	defer store.Close()
	keys, err := apikey.NewVerifier(ctx, store, time.Now)
	if err != nil {
		return err
	}
	return fn(keys)
}

func runAPIKeyCreate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("apikey create", stderr)
	var where storeFlags
	where.register(fs)
	tenant := fs.String("tenant", "", "tenant the key may touch")
	var scopes stringList
	fs.Var(&scopes, "scope", "Secret.Read or Secret.Write; repeatable")
	name := fs.String("name", "", "a label for the key")
	expires := fs.String("expires", "", "expiry, RFC 3339 (e.g. 2099-01-01T00:00:00Z); default never")
	asJSON := fs.Bool("json", false, "print the key and its record as JSON")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	req := neostore.NewAPIKey{Tenant: *tenant, Name: *name}
	for _, s := range scopes {
		scope, ok := neostore.ParseScope(s)
		if !ok {
			return usageError("apikey create: --scope %q: want Secret.Read or Secret.Write", s)
		}
		req.Scopes |= scope
	}
	if *expires != "" {
		t, err := time.Parse(time.RFC3339, *expires)
		if err != nil {
			return usageError("apikey create: --expires: want an RFC 3339 date-time")
		}
		req.ExpiresAt = neostore.At(t)
	}
	return withIssuer(ctx, where, func(issuer neostore.APIKeyIssuer) error {
		key, rec, err := issuer.Create(ctx, req)
		if err != nil {
			return cliError(err)
		}
		if *asJSON {
			b, err := json.MarshalIndent(struct {
				Key    string          `json:"key"`
				Record json.RawMessage `json:"record"`
			}{key, mustMarshalKey(rec)}, "", "  ")
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, string(b))
			return nil
		}
		fmt.Fprintln(stdout, key)
		fmt.Fprintf(stderr, "created API key %s for tenant %s with scopes %s. The key is shown only once.\n", rec.ID, rec.Tenant, rec.Scopes)
		return nil
	})
}

func mustMarshalKey(k neostore.APIKey) json.RawMessage {
	b, _ := admin.MarshalKeys([]neostore.APIKey{k})
	var one []json.RawMessage
	json.Unmarshal(b, &one)
	return one[0]
}

func runAPIKeyList(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("apikey list", stderr)
	var where storeFlags
	where.register(fs)
	tenant := fs.String("tenant", "", "list only this tenant's keys")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	return withIssuer(ctx, where, func(issuer neostore.APIKeyIssuer) error {
		keys, err := issuer.List(ctx, *tenant)
		if err != nil {
			return cliError(err)
		}
		if *asJSON {
			b, err := admin.MarshalKeys(keys)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, string(b))
			return nil
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tTENANT\tSCOPES\tCREATED\tEXPIRES\tLAST USED\tSTATUS")
		now := time.Now()
		for _, k := range keys {
			status := "active"
			switch {
			case k.RevokedAt.Set:
				status = "revoked " + k.RevokedAt.At.Format(time.RFC3339)
			case !k.Usable(now):
				status = "expired"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, orDash(displayName(k.Name)), k.Tenant, k.Scopes,
				k.CreatedAt.Format(time.RFC3339), boundText(k.ExpiresAt, "never"), boundText(k.LastUsed, "-"), status)
		}
		return tw.Flush()
	})
}

func runAPIKeyRevoke(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("apikey revoke", stderr)
	var where storeFlags
	where.register(fs)
	ids, err := parseArgs(fs, args, getenv)
	if err != nil {
		return err
	}
	if len(ids) != 1 {
		return usageError("apikey revoke: want one key id: apikey revoke --data DIR ID")
	}
	id := ids[0]
	return withIssuer(ctx, where, func(issuer neostore.APIKeyIssuer) error {
		if err := issuer.Revoke(ctx, id); err != nil {
			return cliError(err)
		}
		fmt.Fprintf(stderr, "revoked API key %s\n", id)
		return nil
	})
}

// cliError turns a domain error into a message for the operator.
func cliError(err error) error {
	var e *neostore.Error
	if errors.As(err, &e) && e.Code != neostore.EINTERNAL {
		return errors.New(e.Message)
	}
	return err
}

// displayName returns a key's name for a terminal: as it is when every rune
// is printable, else quoted with Go escapes, so that a name holding escape
// sequences or newlines (any admin-socket client can set one) cannot
// recolour the terminal or forge table rows. A name that begins with a quote
// is quoted too, so that a quoted name is never ambiguous.
func displayName(s string) string {
	if strings.HasPrefix(s, `"`) || strings.ContainsFunc(s, func(r rune) bool { return !strconv.IsPrint(r) }) || !utf8.ValidString(s) {
		return strconv.Quote(s)
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func boundText(b neostore.Bound, unset string) string {
	if !b.Set {
		return unset
	}
	return b.At.Format(time.RFC3339)
}
