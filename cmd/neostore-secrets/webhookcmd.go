package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/admin"
	"github.com/neostore/neostore-secrets/envelope"
	"github.com/neostore/neostore-secrets/postgres"
	"github.com/neostore/neostore-secrets/webhook"
)

const webhookUsage = `usage: neostore-secrets webhook <command> [flags]

  add            subscribe an endpoint: --tenant T|'*' --url URL [--events LIST] [--lead 720h,168h,24h] [--name N];
                 prints its signing secret (whsec_...) once, on the first line
  list           list the subscriptions (never their secrets)
  remove         remove a subscription and its deliveries: remove ID
  rotate-secret  give a subscription a new signing secret: rotate-secret ID [--grace 24h];
                 prints it on the first line; the old one signs too until the grace ends
  test           send a webhook.test event at once and print the outcome: test ID
  deliveries     list a subscription's deliveries: deliveries ID [--failed]
  redeliver      send a delivery again: redeliver DELIVERY-ID

Where the store is: --data DIR talks to the server running there over its admin
socket, or opens the embedded store when none runs; --store postgres
--postgres-url URL works on a shared store directly. Without a server the
commands need the master key (--master-key-file or NEOSTORE_MASTER_KEY) and
record their changes in the audit trail themselves.
`

func runWebhook(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, webhookUsage)
		return usageError("webhook: want a command")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "add":
		return runWebhookAdd(ctx, rest, getenv, stdout, stderr)
	case "list":
		return runWebhookList(ctx, rest, getenv, stdout, stderr)
	case "remove":
		return runWebhookRemove(ctx, rest, getenv, stdout, stderr)
	case "rotate-secret":
		return runWebhookRotate(ctx, rest, getenv, stdout, stderr)
	case "test":
		return runWebhookTest(ctx, rest, getenv, stdout, stderr)
	case "deliveries":
		return runWebhookDeliveries(ctx, rest, getenv, stdout, stderr)
	case "redeliver":
		return runWebhookRedeliver(ctx, rest, getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, webhookUsage)
		return nil
	}
	fmt.Fprint(stderr, webhookUsage)
	return usageError("webhook: unknown command %q", cmd)
}

// webhookFlags are the flags every webhook command takes: where the store
// is, and what a command working on the store itself needs (the master
// key, the sending policy, the audit trail).
type webhookFlags struct {
	keys   keyFlags
	send   webhookConfig
	audit  auditConfig
	stderr io.Writer // warnings of a command working on the store itself
}

func newWebhookFlagSet(name string, f *webhookFlags, stderr io.Writer) *flag.FlagSet {
	fs := newKeyFlagSet(name, &f.keys, stderr)
	f.stderr = stderr
	f.send.registerPolicy(fs)
	f.audit.register(fs)
	return fs
}

// withWebhooks runs fn against the server on --data when one runs there
// (its own --webhook-* settings apply), else against the store itself,
// with the master key from the flags or NEOSTORE_MASTER_KEY and every
// change recorded in the audit trail the flags name.
func withWebhooks(ctx context.Context, f webhookFlags, getenv func(string) string, fn func(neostore.WebhookManager) error) error {
	where := f.keys.where
	if where.dataDir != "" {
		client, err := admin.Dial(where.dataDir)
		if err == nil {
			return fn(client.Webhooks())
		} else if !errors.Is(err, admin.ErrNoServer) {
			return err
		}
	}
	if !f.keys.located() {
		return usageError("say where the store is: --data DIR, or --store postgres --postgres-url URL")
	}
	master, err := loadMaster(serveConfig{MasterKeyFile: f.keys.masterKey, MasterKey: getenv("NEOSTORE_MASTER_KEY")})
	if err != nil {
		return err
	}
	store, err := where.store.open(ctx, where.dataDir)
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
	auditCfg := f.audit
	if auditCfg.NodeID == "" && where.store.shared() {
		// Servers may be writing their chains meanwhile: this command's
		// records form a chain of their own.
		auditCfg.NodeID = cliNodeID(auditCfg.nodeID())
	}
	pg, _ := store.(*postgres.Store)
	logger := slog.New(slog.NewTextHandler(f.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	trail, auditor, err := openTrail(ctx, auditCfg, where.dataDir, where.store, store, pg, master, logger)
	if err != nil {
		return err
	}
	if trail != nil {
		defer trail.Close()
	}
	d := webhook.New(webhook.Options{
		Store: store, Opener: master, Owner: cliNodeID("webhook"),
		AllowInsecure: f.send.AllowInsecure, AllowPrivate: f.send.AllowPrivate, Logger: logger,
	})
	m := webhook.NewManager(webhook.ManagerOptions{Store: store, Sealer: master, Dispatcher: d, AllowInsecure: f.send.AllowInsecure})
	return fn(admin.AuditedWebhooks(m, auditor, webhook.NewSubscriptionID, time.Now))
}

// cliNodeID names one run of a command in audit records and leases.
func cliNodeID(base string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return base + "-cli-" + hex.EncodeToString(b)
}

func runWebhookAdd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var f webhookFlags
	fs := newWebhookFlagSet("webhook add", &f, stderr)
	tenant := fs.String("tenant", "", "tenant whose events the endpoint gets, or '*' for every tenant")
	endpoint := fs.String("url", "", "the endpoint: an https URL (http only when the server runs with --webhook-allow-insecure)")
	var events, leads stringList
	fs.Var(&events, "events", "event types, comma-separated: "+strings.Join(neostore.EventTypes, ",")+" (default all)")
	fs.Var(&leads, "lead", "secret.expiring lead times, comma-separated (default 720h,168h,24h)")
	name := fs.String("name", "", "a label for the subscription")
	asJSON := fs.Bool("json", false, "print the secret and the record as JSON")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if *tenant == "" || *endpoint == "" {
		return usageError("webhook add: --tenant and --url are required")
	}
	if *tenant != neostore.WebhookAllTenants && !neostore.ValidTenantID(*tenant) {
		return usageError("webhook add: --tenant %q: want a tenant id (letters, digits, '-' and '_') or '*'", *tenant)
	}
	if err := webhook.ValidateURL(*endpoint, true); err != nil {
		return usageError("webhook add: --url: %s", neostore.ErrorMessage(err))
	}
	for _, e := range events {
		if !containsString(neostore.EventTypes, e) {
			return usageError("webhook add: --events: unknown event type %q; want %s", e, strings.Join(neostore.EventTypes, ", "))
		}
	}
	req := neostore.NewWebhook{Tenant: *tenant, URL: *endpoint, Events: events, Name: *name}
	for _, l := range leads {
		d, err := time.ParseDuration(l)
		if err != nil || d <= 0 || d > webhook.MaxLead {
			return usageError("webhook add: --lead %q: want a positive duration of at most 8760h, such as 720h", l)
		}
		req.Leads = append(req.Leads, d)
	}
	if len(req.Leads) > webhook.MaxLeads {
		return usageError("webhook add: --lead: at most %d lead times", webhook.MaxLeads)
	}
	return withWebhooks(ctx, f, getenv, func(hooks neostore.WebhookManager) error {
		secret, sub, err := hooks.Add(ctx, req)
		if err != nil {
			return cliError(err)
		}
		if *asJSON {
			return printSecretJSON(stdout, secret, sub)
		}
		fmt.Fprintln(stdout, secret)
		printWebhook(stdout, sub)
		fmt.Fprintf(stderr, "added webhook %s for tenant %s. The signing secret is shown only once: give it to the receiver, which verifies every message with it.\n", sub.ID, sub.Tenant)
		return nil
	})
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// printSecretJSON prints a signing secret with its subscription's record.
func printSecretJSON(w io.Writer, secret string, sub neostore.WebhookSubscription) error {
	rec, err := admin.MarshalWebhooks([]neostore.WebhookSubscription{sub})
	if err != nil {
		return err
	}
	var one []json.RawMessage
	if err := json.Unmarshal(rec, &one); err != nil {
		return err
	}
	b, err := json.MarshalIndent(struct {
		Secret string          `json:"secret"`
		Record json.RawMessage `json:"record"`
	}{secret, one[0]}, "", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintln(w, string(b))
	return nil
}

// printWebhook prints a subscription as name-value lines.
func printWebhook(w io.Writer, sub neostore.WebhookSubscription) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "id\t%s\n", sub.ID)
	fmt.Fprintf(tw, "name\t%s\n", orDash(displayName(sub.Name)))
	fmt.Fprintf(tw, "tenant\t%s\n", sub.Tenant)
	fmt.Fprintf(tw, "url\t%s\n", displayName(redactURL(sub.URL)))
	fmt.Fprintf(tw, "events\t%s\n", eventsText(sub.Events))
	fmt.Fprintf(tw, "leads\t%s\n", leadsText(sub.Leads))
	fmt.Fprintf(tw, "status\t%s\n", webhookStatus(sub, time.Now()))
	tw.Flush()
}

// redactURL shows an endpoint without what may be a credential: its
// userinfo and its query.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable)"
	}
	if u.User != nil {
		u.User = url.User("...")
	}
	if u.RawQuery != "" {
		u.RawQuery = "..."
	}
	u.Fragment = ""
	return u.String()
}

func eventsText(events []string) string {
	if len(events) == 0 {
		return "all"
	}
	return strings.Join(events, ",")
}

func leadsText(leads []time.Duration) string {
	parts := make([]string, len(leads))
	for i, l := range leads {
		parts[i] = shortDuration(l)
	}
	return strings.Join(parts, ",")
}

// shortDuration writes d as --lead takes it: 720h rather than 720h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	s = strings.TrimSuffix(s, "0s")
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	if s == "" {
		return "0s"
	}
	return s
}

// webhookStatus says whether a subscription sends: active, rotating (two
// secrets sign) or disabled.
func webhookStatus(sub neostore.WebhookSubscription, now time.Time) string {
	if sub.DisabledAt.Set {
		return "disabled " + sub.DisabledAt.At.Format(time.RFC3339) + " (410 Gone)"
	}
	var until time.Time
	for _, s := range sub.Secrets {
		if s.ExpiresAt.Set && s.ExpiresAt.At.After(now) && s.ExpiresAt.At.After(until) {
			until = s.ExpiresAt.At
		}
	}
	if !until.IsZero() {
		return "active; old secret signs until " + until.Format(time.RFC3339)
	}
	return "active"
}

func runWebhookList(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var f webhookFlags
	fs := newWebhookFlagSet("webhook list", &f, stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	return withWebhooks(ctx, f, getenv, func(hooks neostore.WebhookManager) error {
		subs, err := hooks.List(ctx)
		if err != nil {
			return cliError(err)
		}
		if *asJSON {
			b, err := admin.MarshalWebhooks(subs)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, string(b))
			return nil
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tTENANT\tURL\tEVENTS\tLEADS\tCREATED\tSTATUS")
		now := time.Now()
		for _, s := range subs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, orDash(displayName(s.Name)), s.Tenant,
				displayName(redactURL(s.URL)), eventsText(s.Events), leadsText(s.Leads), s.CreatedAt.Format(time.RFC3339), webhookStatus(s, now))
		}
		return tw.Flush()
	})
}

// oneID parses the one positional argument of cmd.
func oneID(fs *flag.FlagSet, args []string, getenv func(string) string, cmd, what string) (string, error) {
	ids, err := parseArgs(fs, args, getenv)
	if err != nil {
		return "", err
	}
	if len(ids) != 1 {
		return "", usageError("%s: want one %s: %s --data DIR %s", cmd, strings.ToLower(what), cmd, what)
	}
	return ids[0], nil
}

func runWebhookRemove(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var f webhookFlags
	fs := newWebhookFlagSet("webhook remove", &f, stderr)
	id, err := oneID(fs, args, getenv, "webhook remove", "ID")
	if err != nil {
		return err
	}
	return withWebhooks(ctx, f, getenv, func(hooks neostore.WebhookManager) error {
		if err := hooks.Remove(ctx, id); err != nil {
			return cliError(err)
		}
		fmt.Fprintf(stderr, "removed webhook %s and its deliveries\n", id)
		return nil
	})
}

func runWebhookRotate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var f webhookFlags
	fs := newWebhookFlagSet("webhook rotate-secret", &f, stderr)
	grace := fs.Duration("grace", 24*time.Hour, "how long the old secret keeps signing next to the new one (0: it stops at once)")
	asJSON := fs.Bool("json", false, "print the secret and the record as JSON")
	id, err := oneID(fs, args, getenv, "webhook rotate-secret", "ID")
	if err != nil {
		return err
	}
	if *grace < 0 || *grace > webhook.MaxRotationGrace {
		return usageError("webhook rotate-secret: --grace: want 0 to 720h")
	}
	return withWebhooks(ctx, f, getenv, func(hooks neostore.WebhookManager) error {
		secret, sub, err := hooks.RotateSecret(ctx, id, *grace)
		if err != nil {
			return cliError(err)
		}
		if *asJSON {
			return printSecretJSON(stdout, secret, sub)
		}
		fmt.Fprintln(stdout, secret)
		printWebhook(stdout, sub)
		if *grace > 0 {
			fmt.Fprintf(stderr, "new signing secret for webhook %s, shown only once; the old one signs too until %s.\n", sub.ID, time.Now().Add(*grace).UTC().Format(time.RFC3339))
		} else {
			fmt.Fprintf(stderr, "new signing secret for webhook %s, shown only once; the old one no longer signs.\n", sub.ID)
		}
		return nil
	})
}

func runWebhookTest(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var f webhookFlags
	fs := newWebhookFlagSet("webhook test", &f, stderr)
	id, err := oneID(fs, args, getenv, "webhook test", "ID")
	if err != nil {
		return err
	}
	return withWebhooks(ctx, f, getenv, func(hooks neostore.WebhookManager) error {
		res, err := hooks.Test(ctx, id)
		if err != nil {
			return cliError(err)
		}
		d := res.Duration.Round(time.Millisecond)
		switch {
		case res.Delivered:
			fmt.Fprintf(stdout, "delivered: HTTP %d in %v\n", res.Status, d)
			return nil
		case res.Status != 0:
			fmt.Fprintf(stdout, "not delivered: HTTP %d (%s) in %v\n", res.Status, res.Error, d)
		default:
			fmt.Fprintf(stdout, "not delivered: %s after %v\n", res.Error, d)
		}
		return errors.New("webhook test: the endpoint did not accept the test event")
	})
}

func runWebhookDeliveries(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var f webhookFlags
	fs := newWebhookFlagSet("webhook deliveries", &f, stderr)
	failed := fs.Bool("failed", false, "only the failed deliveries (final: out of retries, a final status, the endpoint disabled)")
	asJSON := fs.Bool("json", false, "print JSON")
	id, err := oneID(fs, args, getenv, "webhook deliveries", "ID")
	if err != nil {
		return err
	}
	return withWebhooks(ctx, f, getenv, func(hooks neostore.WebhookManager) error {
		ds, err := hooks.Deliveries(ctx, id, *failed)
		if err != nil {
			return cliError(err)
		}
		if *asJSON {
			b, err := admin.MarshalDeliveries(ds)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, string(b))
			return nil
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "DELIVERY\tEVENT\tTENANT\tKEY\tSTATE\tATTEMPTS\tLAST\tCREATED\tLAST ATTEMPT\tNEXT/FINISHED")
		for _, d := range ds {
			last := "-"
			switch {
			case d.LastStatus != 0 && d.LastError != "":
				last = fmt.Sprintf("%d %s", d.LastStatus, d.LastError)
			case d.LastStatus != 0:
				last = fmt.Sprint(d.LastStatus)
			case d.LastError != "":
				last = d.LastError
			}
			next := boundText(d.FinishedAt, "-")
			if d.State == neostore.DeliveryPending && !d.NextAttemptAt.IsZero() {
				next = d.NextAttemptAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", d.ID, d.Event.Type, orDash(d.Event.Tenant), orDash(displayName(d.Event.Key)),
				d.State, d.Attempts, last, d.CreatedAt.UTC().Format(time.RFC3339), boundText(d.LastAttemptAt, "-"), next)
		}
		return tw.Flush()
	})
}

func runWebhookRedeliver(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var f webhookFlags
	fs := newWebhookFlagSet("webhook redeliver", &f, stderr)
	id, err := oneID(fs, args, getenv, "webhook redeliver", "DELIVERY-ID")
	if err != nil {
		return err
	}
	return withWebhooks(ctx, f, getenv, func(hooks neostore.WebhookManager) error {
		if err := hooks.Redeliver(ctx, id); err != nil {
			return cliError(err)
		}
		fmt.Fprintf(stderr, "delivery %s is queued again: it is sent at once, with its retries anew\n", id)
		return nil
	})
}
