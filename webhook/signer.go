// Package webhook delivers the store's notification events to the
// subscribed endpoints: the Standard Webhooks signer and payload, the
// SSRF-safe sender with its retry schedule, the fan-out of the outbox, the
// scan of the index of due times, and the Dispatcher that runs them all
// against a neostore.WebhookStore on every node.
package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// SecretPrefix starts every serialized signing secret, as the Standard
// Webhooks specification asks, so that a secret is recognised for what it
// is wherever it is pasted.
const SecretPrefix = "whsec_"

// secretBytes is the length of a generated signing secret: 256 bits, inside
// the specification's 24 to 64 bytes.
const secretBytes = 32

// errSigningSecret is returned for a signing secret that is not "whsec_"
// and base64. It names no part of the secret.
var errSigningSecret = errors.New("webhook: malformed signing secret")

// NewSigningSecret returns a new signing secret: "whsec_" and the standard
// base64 of 32 random bytes. It is what `webhook add` shows once and what
// the store keeps sealed.
func NewSigningSecret() (string, error) {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b), nil
}

// SigningKey returns the HMAC key of a serialized signing secret: the
// base64-decoded bytes after "whsec_". Padding may be left out, as the
// specification's libraries accept. A secret without the prefix is taken
// as the raw key bytes (the form a sealed secret may be kept in).
func SigningKey(secret []byte) ([]byte, error) {
	s, ok := strings.CutPrefix(string(secret), SecretPrefix)
	if !ok {
		if len(secret) == 0 {
			return nil, errSigningSecret
		}
		return append([]byte(nil), secret...), nil
	}
	key, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil || len(key) == 0 {
		return nil, errSigningSecret
	}
	return key, nil
}

// Sign returns the Standard Webhooks symmetric signature of a message:
// "v1," and the base64 HMAC-SHA256, under key, of "id.timestamp.body"
// with the timestamp in unix seconds.
func Sign(key []byte, id string, ts time.Time, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(strconv.FormatInt(ts.Unix(), 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// SignatureHeader returns the webhook-signature header value: one
// signature per key, space-separated, so that during a rotation's grace
// period a receiver holding either secret can verify the message.
func SignatureHeader(keys [][]byte, id string, ts time.Time, body []byte) string {
	sigs := make([]string, len(keys))
	for i, k := range keys {
		sigs[i] = Sign(k, id, ts, body)
	}
	return strings.Join(sigs, " ")
}
