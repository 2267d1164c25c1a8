package webhook_test

import (
	"bytes"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/bolt"
	"github.com/neostore/neostore-secrets/envelope"
	"github.com/neostore/neostore-secrets/webhook"
)

// newManager returns a Manager over a real embedded store and master key,
// with a clock the test moves.
func newManager(t *testing.T, allowInsecure bool) (*webhook.Manager, *bolt.Store, *envelope.Master, *time.Time) {
	t.Helper()
	store, err := bolt.Open(filepath.Join(t.TempDir(), "secrets.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	keyset, err := envelope.NewMasterKeyset()
	if err != nil {
		t.Fatal(err)
	}
	master, err := envelope.ParseMaster(keyset)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	m := webhook.NewManager(webhook.ManagerOptions{Store: store, Sealer: master, AllowInsecure: allowInsecure, Now: func() time.Time { return now }})
	return m, store, master, &now
}

func TestManager_Add(t *testing.T) {
	ctx := t.Context()
	m, store, master, _ := newManager(t, false)
	for _, c := range []struct {
		name  string
		req   neostore.NewWebhook
		field string
	}{
		{"BadID", neostore.NewWebhook{ID: "wh_x", Tenant: "demo", URL: "https://example.com"}, "id"},
		{"BadTenant", neostore.NewWebhook{Tenant: "", URL: "https://example.com"}, "tenant"},
		{"HTTP", neostore.NewWebhook{Tenant: "demo", URL: "http://example.com"}, "url"},
		{"NoHost", neostore.NewWebhook{Tenant: "demo", URL: "https:///x"}, "url"},
		{"UnknownEvent", neostore.NewWebhook{Tenant: "demo", URL: "https://example.com", Events: []string{"webhook.test"}}, "events"},
		{"ZeroLead", neostore.NewWebhook{Tenant: "demo", URL: "https://example.com", Leads: []time.Duration{0}}, "leads"},
		{"LongLead", neostore.NewWebhook{Tenant: "demo", URL: "https://example.com", Leads: []time.Duration{webhook.MaxLead + time.Second}}, "leads"},
		{"TooManyLeads", neostore.NewWebhook{Tenant: "demo", URL: "https://example.com", Leads: make([]time.Duration, webhook.MaxLeads+1)}, "leads"},
		{"LongName", neostore.NewWebhook{Tenant: "demo", URL: "https://example.com", Name: strings.Repeat("n", 201)}, "name"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := m.Add(ctx, c.req)
			if neostore.ErrorCode(err) != neostore.EINVALID || neostore.ErrorFields(err)[c.field] == nil {
				t.Errorf("Add = %v (fields %v), want EINVALID on %s", err, neostore.ErrorFields(err), c.field)
			}
		})
	}
	if subs, _ := store.ListWebhooks(ctx); len(subs) != 0 {
		t.Fatalf("refused adds stored %d subscriptions", len(subs))
	}

	secret, sub, err := m.Add(ctx, neostore.NewWebhook{Tenant: "*", URL: "https://example.com/h",
		Events: []string{"secret.deleted", "secret.deleted"}, Leads: []time.Duration{time.Hour, 48 * time.Hour, time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, "whsec_") || !strings.HasPrefix(sub.ID, "wh_") {
		t.Errorf("Add = %q, %q; want a whsec_ secret and a wh_ id", secret, sub.ID)
	}
	if !slices.Equal(sub.Events, []string{"secret.deleted"}) || !slices.Equal(sub.Leads, []time.Duration{48 * time.Hour, time.Hour}) {
		t.Errorf("events %v, leads %v; want duplicates dropped and leads longest first", sub.Events, sub.Leads)
	}
	if len(sub.Secrets) != 1 || sub.Secrets[0].Sealed != nil {
		t.Errorf("Add returned secrets %+v, want one, without its sealed bytes", sub.Secrets)
	}
	stored, err := store.GetWebhook(ctx, sub.ID)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(stored.Secrets[0].Sealed, []byte(secret)) {
		t.Errorf("the store holds the signing secret in clear")
	}
	if plain, err := master.OpenSigningSecret(sub.ID, stored.Secrets[0].Sealed); err != nil || string(plain) != secret {
		t.Errorf("the stored secret opens to %q, %v; want what Add returned", plain, err)
	}

	_, def, err := m.Add(ctx, neostore.NewWebhook{Tenant: "demo", URL: "https://example.com/h"})
	if err != nil || !slices.Equal(def.Leads, webhook.DefaultLeads) || len(def.Events) != 0 {
		t.Errorf("Add without leads or events = %+v, %v; want the default leads and every event", def, err)
	}
	listed, err := m.List(ctx)
	if err != nil || len(listed) != 2 {
		t.Fatalf("List = %d, %v", len(listed), err)
	}
	for _, s := range listed {
		for _, sec := range s.Secrets {
			if sec.Sealed != nil {
				t.Errorf("List returned sealed bytes of %s", s.ID)
			}
		}
	}
}

func TestManager_RotateSecret(t *testing.T) {
	ctx := t.Context()
	m, store, _, now := newManager(t, true)
	first, sub, err := m.Add(ctx, neostore.NewWebhook{Tenant: "demo", URL: "http://example.com/h"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.RotateSecret(ctx, sub.ID, webhook.MaxRotationGrace+time.Second); neostore.ErrorFields(err)["grace"] == nil {
		t.Errorf("RotateSecret with a grace above the bound = %v, want EINVALID on grace", err)
	}
	if _, _, err := m.RotateSecret(ctx, "wh_aaaaaaaaaaaaaaaaaaaaaaaaaa", time.Hour); neostore.ErrorCode(err) != neostore.ENOTFOUND {
		t.Errorf("RotateSecret of an unknown id = %v, want ENOTFOUND", err)
	}
	second, rotated, err := m.RotateSecret(ctx, sub.ID, time.Hour)
	if err != nil || second == first {
		t.Fatalf("RotateSecret = %q, %v; want a new secret", second, err)
	}
	if len(rotated.Secrets) != 2 || rotated.Secrets[0].ExpiresAt.Set || rotated.Secrets[1].ExpiresAt != neostore.At(now.Add(time.Hour)) {
		t.Errorf("secrets after a rotation = %+v, want the new current one and the old until now+1h", rotated.Secrets)
	}
	*now = now.Add(2 * time.Hour) // the first grace is over
	_, again, err := m.RotateSecret(ctx, sub.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Secrets) != 1 {
		t.Errorf("secrets after a rotation without grace, past the earlier grace = %+v, want only the new one", again.Secrets)
	}
	stored, _ := store.GetWebhook(ctx, sub.ID)
	if len(stored.Secrets) != 1 {
		t.Errorf("stored secrets = %d, want 1", len(stored.Secrets))
	}
}

func TestManager_RefusesWithoutDispatcherOrToDisabled(t *testing.T) {
	ctx := t.Context()
	m, store, _, now := newManager(t, false)
	_, sub, err := m.Add(ctx, neostore.NewWebhook{Tenant: "demo", URL: "https://example.com/h"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Test(ctx, sub.ID); neostore.ErrorCode(err) != neostore.EINVALID {
		t.Errorf("Test without a dispatcher = %v, want EINVALID", err)
	}
	if _, err := m.Deliveries(ctx, "wh_aaaaaaaaaaaaaaaaaaaaaaaaaa", false); neostore.ErrorCode(err) != neostore.ENOTFOUND {
		t.Errorf("Deliveries of an unknown subscription = %v, want ENOTFOUND", err)
	}
	d := neostore.Delivery{
		ID: webhook.DeliveryID("msg_aaaaaaaaaaaaaaaaaaaaaaaaaa", sub.ID), SubscriptionID: sub.ID, State: neostore.DeliveryFailed,
		Event:     neostore.Event{ID: "msg_aaaaaaaaaaaaaaaaaaaaaaaaaa", Type: neostore.EventSecretDeleted, Timestamp: *now, Tenant: "demo", Key: "db"},
		CreatedAt: *now, FinishedAt: neostore.At(*now), Attempts: 3, LastError: "final status", LastStatus: 400,
	}
	if err := store.FanOut(ctx, nil, []neostore.Delivery{d}); err != nil {
		t.Fatal(err)
	}
	stored, _ := store.GetWebhook(ctx, sub.ID)
	stored.DisabledAt = neostore.At(*now)
	if err := store.UpdateWebhook(ctx, stored); err != nil {
		t.Fatal(err)
	}
	if err := m.Redeliver(ctx, d.ID); neostore.ErrorCode(err) != neostore.ECONFLICT || !strings.Contains(neostore.ErrorMessage(err), "410") {
		t.Errorf("Redeliver to a disabled endpoint = %v, want ECONFLICT naming the 410", err)
	}
	if err := m.Redeliver(ctx, "dlv_aaaaaaaaaaaaaaaaaaaaaaaaaa"); neostore.ErrorCode(err) != neostore.ENOTFOUND {
		t.Errorf("Redeliver of an unknown delivery = %v, want ENOTFOUND", err)
	}
}
