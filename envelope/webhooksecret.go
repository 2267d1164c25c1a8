package envelope

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"github.com/neostore/neostore-secrets"
)

// labelWebhookSecret is the associated data of a sealed webhook signing
// secret, followed by a zero byte and the subscription's id: a signing
// secret copied into another subscription's record does not open there,
// and no other ciphertext of the master key opens as one.
const labelWebhookSecret = "neostore/webhook-secret/v1"

// webhookSecretAD returns the associated data of subscriptionID's signing
// secrets.
func webhookSecretAD(subscriptionID string) []byte {
	ad := make([]byte, 0, len(labelWebhookSecret)+1+len(subscriptionID))
	ad = append(ad, labelWebhookSecret...)
	ad = append(ad, 0)
	return append(ad, subscriptionID...)
}

// SealSigningSecret seals a webhook subscription's signing secret with the
// primary master key, bound to the subscription's id, for the store to
// keep (neostore.WebhookSecret.Sealed).
func (m *Master) SealSigningSecret(subscriptionID string, secret []byte) ([]byte, error) {
	sealed, err := m.current().aead.Encrypt(secret, webhookSecretAD(subscriptionID))
	if err != nil {
		return nil, fmt.Errorf("envelope: seal webhook signing secret: %w: %w", errInternal(), err)
	}
	return sealed, nil
}

// OpenSigningSecret opens a signing secret SealSigningSecret sealed for
// subscriptionID, under any key of the master keyset. It fails with an
// internal error, naming no cause the caller could pass on, when sealed
// was made for another subscription, by another master key, or altered.
func (m *Master) OpenSigningSecret(subscriptionID string, sealed []byte) ([]byte, error) {
	secret, err := m.current().aead.Decrypt(sealed, webhookSecretAD(subscriptionID))
	if err != nil {
		return nil, fmt.Errorf("envelope: a webhook signing secret does not open with this master key: %w", errInternal())
	}
	return secret, nil
}

// WebhookSecretStore is what a Rotator needs of the webhook subscriptions
// (neostore.WebhookStore), to count their signing secrets by master key
// and seal them anew.
type WebhookSecretStore interface {
	ListWebhooks(ctx context.Context) ([]neostore.WebhookSubscription, error)
	GetWebhook(ctx context.Context, id string) (neostore.WebhookSubscription, error)
	UpdateWebhook(ctx context.Context, w neostore.WebhookSubscription) error
}

// webhooks returns the store's subscriptions.
func (r *Rotator) webhooks(ctx context.Context) ([]neostore.WebhookSubscription, error) {
	subs, err := r.store.ListWebhooks(ctx)
	if err != nil {
		return nil, fmt.Errorf("envelope: list webhook subscriptions: %w", err)
	}
	return subs, nil
}

// resealWebhookSecrets seals every webhook signing secret anew under k's
// primary unless it already is, and returns how many it sealed anew.
func (r *Rotator) resealWebhookSecrets(ctx context.Context, k *masterKeys) (int, error) {
	subs, err := r.webhooks(ctx)
	if err != nil || len(subs) == 0 {
		return 0, err
	}
	total := 0
	for _, sub := range subs {
		n, err := r.resealSubscription(ctx, r.store, k, sub.ID)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// resealSubscription seals the signing secrets of subscription id anew.
// WebhookStore has no compare-and-swap, so the subscription is read again
// just before it is written, and the write is given up and retried when a
// rotation, a removal or a 410 changed it meanwhile; only the moment
// between that read and the write remains unguarded.
func (r *Rotator) resealSubscription(ctx context.Context, ws WebhookSecretStore, k *masterKeys, id string) (int, error) {
	ad := webhookSecretAD(id)
	for range maxSwapAttempts {
		sub, err := ws.GetWebhook(ctx, id)
		if neostore.ErrorCode(err) == neostore.ENOTFOUND {
			return 0, nil
		} else if err != nil {
			return 0, fmt.Errorf("envelope: read webhook subscription: %w", err)
		}
		next := slices.Clone(sub.Secrets)
		n := 0
		for i, s := range sub.Secrets {
			if kid, ok := prefixKeyID(s.Sealed); ok && kid == k.primaryID {
				continue
			}
			pt, err := k.aead.Decrypt(s.Sealed, ad)
			if err != nil {
				return 0, fmt.Errorf("envelope: a signing secret of webhook %s does not open under the master keyset: %w", id, errInternal())
			}
			ct, err := k.aead.Encrypt(pt, ad)
			clear(pt)
			if err != nil {
				return 0, fmt.Errorf("envelope: seal webhook signing secret: %w", err)
			}
			next[i].Sealed = ct
			n++
		}
		if n == 0 {
			return 0, nil
		}
		again, err := ws.GetWebhook(ctx, id)
		if neostore.ErrorCode(err) == neostore.ENOTFOUND {
			return 0, nil
		} else if err != nil {
			return 0, fmt.Errorf("envelope: read webhook subscription: %w", err)
		}
		if !sameSecretsAndState(sub, again) {
			continue
		}
		sub.Secrets = next
		if err := ws.UpdateWebhook(ctx, sub); neostore.ErrorCode(err) == neostore.ENOTFOUND {
			return 0, nil
		} else if err != nil {
			return 0, fmt.Errorf("envelope: store webhook subscription: %w", err)
		}
		return n, nil
	}
	return 0, neostore.Errorf(neostore.ECONFLICT, "Webhook subscription %s kept changing while its signing secrets were sealed anew; run keys rewrap again.", id)
}

// sameSecretsAndState reports whether a and b have the same signing
// secrets and disabled state: nothing a rewrap would undo changed.
func sameSecretsAndState(a, b neostore.WebhookSubscription) bool {
	if a.DisabledAt != b.DisabledAt || a.URL != b.URL || len(a.Secrets) != len(b.Secrets) {
		return false
	}
	for i := range a.Secrets {
		if !bytes.Equal(a.Secrets[i].Sealed, b.Secrets[i].Sealed) || a.Secrets[i].ExpiresAt != b.Secrets[i].ExpiresAt {
			return false
		}
	}
	return true
}
