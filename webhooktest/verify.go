// Package webhooktest is a webhook receiver for tests and the crash driver,
// written from the Standard Webhooks specification (version 1.0.0,
// github.com/standard-webhooks/standard-webhooks, spec/standard-webhooks.md)
// alone. It shares no code with package webhook's signer on purpose: a
// receiver built from the signer would agree with any mistake the signer
// makes, so it could not show that our deliveries verify as the
// specification says a consumer verifies them.
//
// What it checks, as the specification's "Verifying signatures" section
// asks of a consumer: the webhook-id, webhook-timestamp and
// webhook-signature headers are present; the timestamp is an integer of
// unix seconds within a tolerance of the receiver's clock (replays); and at
// least one of the space-separated signatures is "v1," followed by the
// base64 HMAC-SHA256, under one of the endpoint's signing secrets, of
// "msg_id.timestamp.payload" over the body exactly as received, compared in
// constant time. Signatures of other versions (v1a, future ones) are
// skipped, so that a header carrying several schemes still verifies.
package webhooktest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DefaultTolerance is how far webhook-timestamp may lie from the receiver's
// clock, either way: the five minutes of the specification's reference
// libraries.
const DefaultTolerance = 5 * time.Minute

// secretPrefix marks a serialized symmetric signing secret ("Secret
// serialization" in the specification's table of schemes).
const secretPrefix = "whsec_"

// The reasons Verify refuses a delivery.
var (
	ErrMissingHeader = errors.New("webhooktest: a webhook-id, webhook-timestamp or webhook-signature header is missing")
	ErrTimestamp     = errors.New("webhooktest: webhook-timestamp is not an integer of unix seconds")
	ErrTooOld        = errors.New("webhooktest: webhook-timestamp is older than the tolerance")
	ErrTooNew        = errors.New("webhooktest: webhook-timestamp is further in the future than the tolerance")
	ErrNoSignature   = errors.New("webhooktest: no v1 signature matches")
)

// DecodeSecret returns the HMAC key of a serialized signing secret: the
// standard base64 after the "whsec_" prefix (the prefix is optional, as in
// the reference libraries).
func DecodeSecret(s string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, secretPrefix))
	if err != nil {
		return nil, fmt.Errorf("webhooktest: signing secret is not base64 after %q", secretPrefix)
	}
	if len(key) == 0 {
		return nil, errors.New("webhooktest: empty signing secret")
	}
	return key, nil
}

// Sign returns the "v1,<base64>" signature of one message under key, as the
// specification's signature scheme defines it. The tests use it to forge
// and to rotate; it is not the server's signer.
func Sign(key []byte, id string, timestamp int64, body []byte) string {
	return "v1," + base64.StdEncoding.EncodeToString(mac(key, id, strconv.FormatInt(timestamp, 10), body))
}

// mac is HMAC-SHA256(key, id "." timestamp "." body).
func mac(key []byte, id, timestamp string, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(id))
	h.Write([]byte{'.'})
	h.Write([]byte(timestamp))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Verify checks one delivery's headers and body against the endpoint's
// signing keys (decoded, see DecodeSecret) at now, and returns the indexes
// of the keys that at least one v1 signature in the header matches, in
// order. It returns an error, and no indexes, when a header is missing, the
// timestamp is malformed or outside tolerance, or no signature matches.
func Verify(keys [][]byte, id, timestamp, signatures string, body []byte, now time.Time, tolerance time.Duration) ([]int, error) {
	if id == "" || timestamp == "" || signatures == "" {
		return nil, ErrMissingHeader
	}
	secs, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return nil, ErrTimestamp
	}
	sent := time.Unix(secs, 0)
	switch {
	case now.Sub(sent) > tolerance:
		return nil, ErrTooOld
	case sent.Sub(now) > tolerance:
		return nil, ErrTooNew
	}
	var given [][]byte
	for _, s := range strings.Fields(signatures) {
		version, sig, ok := strings.Cut(s, ",")
		if !ok || version != "v1" {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(sig)
		if err != nil || len(raw) != sha256.Size {
			continue
		}
		given = append(given, raw)
	}
	var matched []int
	for i, key := range keys {
		want := mac(key, id, timestamp, body)
		for _, g := range given {
			// hmac.Equal compares in constant time: a byte-by-byte
			// comparison that stops early would be a signing oracle.
			if hmac.Equal(want, g) {
				matched = append(matched, i)
				break
			}
		}
	}
	if len(matched) == 0 {
		return nil, ErrNoSignature
	}
	return matched, nil
}
