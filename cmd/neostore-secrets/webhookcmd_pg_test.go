package main

import (
	"strings"
	"testing"

	"github.com/neostore/neostore-secrets/pgtest"
)

// TestWebhook_Postgres drives the webhook commands directly on a real
// PostgreSQL store, with no server in between, while a node serves the
// same database: what the commands change, the node sends, and the
// commands' audit records go to the database trail with their own chain.
func TestWebhook_Postgres(t *testing.T) {
	url := pgtest.Start(t)
	masterKey := newMasterKey(t)
	node, nodeDir := startPostgresNode(t, url, masterKey, "--webhook-allow-insecure", "--webhook-allow-private", "--audit-sink", "database", "--node-id", "node-a")
	direct := []string{"--store", "postgres", "--postgres-url", url, "--master-key-file", masterKey}
	key := createKey(t, nodeDir, "demo", "Secret.Read", "Secret.Write")
	rc := newHookReceiver(t)

	if _, _, err := cli(t, append([]string{"webhook", "add", "--tenant", "demo", "--url", rc.url}, direct...)...); err == nil || !strings.Contains(err.Error(), "https") {
		t.Errorf("webhook add of http without --webhook-allow-insecure = %v, want a refusal", err)
	}
	secret, id := addWebhook(t, append([]string{"--tenant", "demo", "--url", rc.url + "/hook", "--webhook-allow-insecure"}, direct...)...)
	if subs := listWebhooks(t, "--data", nodeDir); len(subs) != 1 || subs[0].ID != id {
		t.Fatalf("the node lists %+v, want the subscription added on the database", subs)
	}
	if subs := listWebhooks(t, direct...); len(subs) != 1 || subs[0].ID != id {
		t.Fatalf("webhook list on the database = %+v, want %s", subs, id)
	}

	// The node signs with the secret the command sealed.
	do(t, "PUT", node.base+"/api/demo/secrets/db", key, `{"value":"v"}`)
	put := rc.next(t, "secret.updated")
	if !put.signedBy(t, secret) {
		t.Errorf("the node's message is not signed by the secret webhook add printed")
	}

	out := mustCLI(t, append([]string{"webhook", "rotate-secret", id, "--grace", "1h"}, direct...)...)
	next := strings.SplitN(out, "\n", 2)[0]
	if out := mustCLI(t, "webhook", "test", "--data", nodeDir, id); !strings.HasPrefix(out, "delivered") {
		t.Errorf("webhook test through the node = %q", out)
	}
	if m := rc.next(t, "webhook.test"); !m.signedBy(t, secret) || !m.signedBy(t, next) {
		t.Errorf("after a rotation on the database, the node signs with %q, want the old and the new secret", m.signatures)
	}
	// The command sends a test itself, under its own policy flags.
	if _, _, err := cli(t, append([]string{"webhook", "test", id}, direct...)...); err == nil {
		t.Errorf("webhook test to loopback without --webhook-allow-private succeeded")
	}
	if out := mustCLI(t, append([]string{"webhook", "test", id, "--webhook-allow-insecure", "--webhook-allow-private"}, direct...)...); !strings.HasPrefix(out, "delivered: HTTP 204") {
		t.Errorf("webhook test on the database = %q, want delivered", out)
	}
	if m := rc.next(t, "webhook.test"); !m.signedBy(t, next) {
		t.Errorf("the command's test message is not signed by the new secret")
	}

	// A delivery redelivered on the database is sent again by the node.
	dlv := waitDelivery(t, nodeDir, id, put.id, "delivered", false).ID
	if out := mustCLI(t, append([]string{"webhook", "deliveries", id}, direct...)...); !strings.Contains(out, dlv) {
		t.Errorf("webhook deliveries on the database = %q, want %s", out, dlv)
	}
	mustCLI(t, append([]string{"webhook", "redeliver", dlv}, direct...)...)
	if again := rc.next(t, "secret.updated"); again.id != put.id || !again.signedBy(t, next) {
		t.Errorf("redelivered message %s, want %s again, signed by the new secret", again.id, put.id)
	}

	mustCLI(t, append([]string{"webhook", "remove", id}, direct...)...)
	if subs := listWebhooks(t, "--data", nodeDir); len(subs) != 0 {
		t.Errorf("the node still lists %+v after remove on the database", subs)
	}

	search := mustCLI(t, "audit", "search", "--database", "--store", "postgres", "--postgres-url", url, "--key", id, "--json")
	search += mustCLI(t, "audit", "search", "--database", "--store", "postgres", "--postgres-url", url, "--key", dlv, "--json")
	for _, op := range []string{"webhook.add", "webhook.rotate-secret", "webhook.test", "webhook.redeliver", "webhook.remove"} {
		if !strings.Contains(search, `"op":"`+op+`"`) {
			t.Errorf("the database trail has no %s record of %s:\n%s", op, id, search)
		}
	}
	if !strings.Contains(search, `-cli-`) {
		t.Errorf("the commands' records do not carry a node of their own:\n%s", search)
	}
	for _, leak := range []string{strings.TrimPrefix(secret, "whsec_"), strings.TrimPrefix(next, "whsec_"), rc.url} {
		if strings.Contains(search, leak) {
			t.Errorf("the database trail holds %q", leak)
		}
	}
	if out, _, err := cli(t, "audit", "verify", "--database", "--store", "postgres", "--postgres-url", url, "--master-key-file", masterKey); err != nil {
		t.Errorf("audit verify --database = %v\n%s", err, out)
	}
}
