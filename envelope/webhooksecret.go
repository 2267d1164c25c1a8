package envelope

import (
	"fmt"
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
