package envelope_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/bolt"
	"github.com/neostore/neostore-secrets/envelope"
)

// TestRotator_WebhookSecrets rotates the master key of a real embedded
// store holding a webhook subscription with two signing secrets (mid
// rotation): the old master key stays needed until a rewrap seals both
// anew, and the secrets open the same afterwards, with the old key gone.
func TestRotator_WebhookSecrets(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "master.key")
	keyset, err := envelope.NewMasterKeyset()
	if err != nil {
		t.Fatal(err)
	}
	if err := envelope.WriteMasterFile(keyFile, keyset); err != nil {
		t.Fatal(err)
	}
	master, err := envelope.ReadMasterFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	store, err := bolt.Open(filepath.Join(dir, "secrets.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := master.CheckKey(ctx, store); err != nil {
		t.Fatal(err)
	}
	oldID := master.Keys()[0].ID

	const id = "wh_aaaaaaaaaaaaaaaaaaaaaaaaaa"
	plain := []string{"whsec_current", "whsec_previous"}
	var secrets []neostore.WebhookSecret
	for i, p := range plain {
		sealed, err := master.SealSigningSecret(id, []byte(p))
		if err != nil {
			t.Fatal(err)
		}
		s := neostore.WebhookSecret{Sealed: sealed}
		if i == 1 {
			s.ExpiresAt = neostore.At(time.Now().Add(time.Hour))
		}
		secrets = append(secrets, s)
	}
	sub := neostore.WebhookSubscription{ID: id, Tenant: "demo", URL: "https://example.com/hook", Leads: []time.Duration{time.Hour}, Secrets: secrets, CreatedAt: time.Now().UTC()}
	if err := store.CreateWebhook(ctx, sub); err != nil {
		t.Fatal(err)
	}

	rot := envelope.NewRotator(envelope.NewSealer(master, store), store)
	newID, err := envelope.AddMasterKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := rot.ReloadMaster(ctx)
	if err != nil {
		t.Fatalf("ReloadMaster: %v", err)
	}
	for _, k := range keys {
		if k.ID == oldID && k.WebhookSecrets != 2 {
			t.Errorf("old master key seals %d webhook secrets, want 2", k.WebhookSecrets)
		}
	}
	err = rot.CheckMasterKeyRemoval(ctx, oldID)
	if neostore.ErrorCode(err) != neostore.ECONFLICT || !strings.Contains(neostore.ErrorMessage(err), "2 webhook signing secrets") {
		t.Fatalf("CheckMasterKeyRemoval before rewrap = %v, want ECONFLICT counting 2 webhook signing secrets", err)
	}

	rep, err := rot.Rewrap(ctx)
	if err != nil {
		t.Fatalf("Rewrap: %v", err)
	}
	if rep.WebhookSecrets != 2 {
		t.Errorf("Rewrap sealed %d webhook secrets anew, want 2", rep.WebhookSecrets)
	}
	if again, err := rot.Rewrap(ctx); err != nil || again.WebhookSecrets != 0 {
		t.Errorf("second Rewrap = %+v, %v; want no webhook secret sealed anew", again, err)
	}
	keys, err = rot.MasterKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if want := map[uint32]int{oldID: 0, newID: 2}[k.ID]; k.WebhookSecrets != want {
			t.Errorf("master key %d seals %d webhook secrets after rewrap, want %d", k.ID, k.WebhookSecrets, want)
		}
	}
	if err := rot.CheckMasterKeyRemoval(ctx, oldID); err != nil {
		t.Fatalf("CheckMasterKeyRemoval after rewrap: %v", err)
	}
	if err := envelope.RemoveMasterKey(keyFile, oldID); err != nil {
		t.Fatal(err)
	}

	fresh, err := envelope.ReadMasterFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	got, err := store.GetWebhook(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if got.Secrets[1].ExpiresAt != secrets[1].ExpiresAt {
		t.Errorf("rewrap changed the old secret's end: %v, want %v", got.Secrets[1].ExpiresAt, secrets[1].ExpiresAt)
	}
	for i, p := range plain {
		pt, err := fresh.OpenSigningSecret(id, got.Secrets[i].Sealed)
		if err != nil || string(pt) != p {
			t.Errorf("secret %d after rewrap = %q, %v; want %q", i, pt, err, p)
		}
	}
}
