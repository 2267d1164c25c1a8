package neostore

import (
	"crypto/rand"
	"encoding/base32"
)

// The errors of WebhookStore.
var (
	// ErrWebhookNotFound is returned for an unknown subscription id.
	ErrWebhookNotFound = Errorf(ENOTFOUND, "Webhook subscription not found.")
	// ErrWebhookIDTaken is returned by CreateWebhook for an id in use, or none.
	ErrWebhookIDTaken = Errorf(EINVALID, "A webhook subscription with this id already exists.")
	// ErrDeliveryNotFound is returned for an unknown delivery id.
	ErrDeliveryNotFound = Errorf(ENOTFOUND, "Webhook delivery not found.")
	// ErrLeaseLost is returned by CompleteAttempt when the owner no longer
	// holds the delivery's lease: its lease ran out and another node took it.
	ErrLeaseLost = Errorf(ECONFLICT, "The delivery's lease is held by another node.")
	// ErrDueCursorMoved is returned by AdvanceDueCursor when the cursor is
	// no longer where the scan began, or another node is advancing it.
	ErrDueCursorMoved = Errorf(ECONFLICT, "The due scan was advanced by another node.")
)

// eventIDEncoding writes ids in lowercase base32 without padding.
var eventIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewEventID returns a fresh change-event id (ChangeNotice.EventID): "msg_"
// and 26 lowercase base32 characters of 16 random bytes.
func NewEventID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return "msg_" + eventIDEncoding.EncodeToString(b[:])
}
