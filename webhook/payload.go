package webhook

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/neostore/neostore-secrets"
)

// idEncoding is lowercase base32 without padding: 26 characters carry 130
// bits, and the id stays a single token in a header, a URL and a log.
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// TimeEventID returns the id of a time event: a digest of what makes it
// one event (its type, the secret, the window end, the lead and the
// secret's CreatedOn), so that every node and every scan that makes it
// makes the same id and the store queues it once per endpoint. lead is 0
// for secret.expired and secret.activated.
func TimeEventID(typ, tenant, key string, windowEnd time.Time, lead time.Duration, createdOn neostore.Bound) string {
	created := ""
	if createdOn.Set {
		created = createdOn.At.UTC().Format(time.RFC3339Nano)
	}
	return "msg_" + digest(typ, tenant, key, windowEnd.UTC().Format(time.RFC3339Nano), strconv.FormatInt(int64(lead), 10), created)
}

// DeliveryID returns the id of eventID's delivery to subscriptionID.
func DeliveryID(eventID, subscriptionID string) string {
	return "dlv_" + digest(eventID, subscriptionID)
}

// digest returns 26 base32 characters of the SHA-256 of parts, each ended
// by a zero byte so that no two lists of parts run together alike.
func digest(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return idEncoding.EncodeToString(h.Sum(nil))[:26]
}

// payload is the body of a secret event. Times are *time.Time in UTC, as
// the Secret API writes createdOn and updatedOn (RFC 3339, null when
// unset).
type payload struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      any       `json:"data"`
}

type secretData struct {
	TenantID  string     `json:"tenantId"`
	Key       string     `json:"key"`
	NotBefore *time.Time `json:"notBefore"`
	ExpiresOn *time.Time `json:"expiresOn"`
	DueAt     *time.Time `json:"dueAt"`
	TraceID   *string    `json:"traceId"`
	Created   *bool      `json:"created,omitempty"` // secret.updated only
}

type testData struct {
	SubscriptionID string `json:"subscriptionId"`
}

// Payload returns the JSON body of e: its type, timestamp and thin data
// (tenant, key, window, due time, trace id; "created" on secret.updated
// only), never a value.
func Payload(e neostore.Event) ([]byte, error) {
	d := secretData{
		TenantID:  e.Tenant,
		Key:       e.Key,
		NotBefore: e.Validity.NotBefore.Ptr(),
		ExpiresOn: e.Validity.ExpiresOn.Ptr(),
		DueAt:     e.DueAt.Ptr(),
	}
	if e.TraceID != "" {
		d.TraceID = &e.TraceID
	}
	if e.Type == neostore.EventSecretUpdated {
		d.Created = &e.Created
	}
	return json.Marshal(payload{Type: e.Type, Timestamp: e.Timestamp.UTC(), Data: d})
}

// testPayload returns the body of `webhook test`'s message to a
// subscription.
func testPayload(id string, ts time.Time) ([]byte, error) {
	return json.Marshal(payload{Type: neostore.EventWebhookTest, Timestamp: ts.UTC(), Data: testData{SubscriptionID: id}})
}

// safeID reports whether s can go into the signed content and a header:
// the specification forbids '.' in the id, and an id is ours in any case.
func safeID(s string) bool {
	return s != "" && !strings.ContainsAny(s, ". \r\n")
}
