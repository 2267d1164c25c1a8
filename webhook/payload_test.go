package webhook

import (
	"strings"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets"
)

func date(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestPayload(t *testing.T) {
	tests := []struct {
		name  string
		event neostore.Event
		want  string
	}{
		{"Updated", neostore.Event{
			ID: "msg_x", Type: neostore.EventSecretUpdated, Timestamp: date("2099-01-01T00:00:00Z"),
			Tenant: "demo", Key: "db", Validity: neostore.Validity{ExpiresOn: neostore.At(date("2099-01-09T00:00:00Z"))},
			TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", Created: true,
		}, `{"type":"secret.updated","timestamp":"2099-01-01T00:00:00Z","data":{"tenantId":"demo","key":"db","notBefore":null,"expiresOn":"2099-01-09T00:00:00Z","dueAt":null,"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","created":true}}`},
		{"UpdatedNotCreated", neostore.Event{
			Type: neostore.EventSecretUpdated, Timestamp: date("2099-01-01T00:00:00.5Z"), Tenant: "demo", Key: "db", TraceID: "t",
		}, `{"type":"secret.updated","timestamp":"2099-01-01T00:00:00.5Z","data":{"tenantId":"demo","key":"db","notBefore":null,"expiresOn":null,"dueAt":null,"traceId":"t","created":false}}`},
		{"Expiring", neostore.Event{
			Type: neostore.EventSecretExpiring, Timestamp: date("2099-01-02T00:00:00Z"), Tenant: "demo", Key: "db",
			Validity: neostore.Validity{NotBefore: neostore.At(date("2098-12-01T00:00:00Z")), ExpiresOn: neostore.At(date("2099-01-09T00:00:00Z"))},
			DueAt:    neostore.At(date("2099-01-02T00:00:00Z")),
		}, `{"type":"secret.expiring","timestamp":"2099-01-02T00:00:00Z","data":{"tenantId":"demo","key":"db","notBefore":"2098-12-01T00:00:00Z","expiresOn":"2099-01-09T00:00:00Z","dueAt":"2099-01-02T00:00:00Z","traceId":null}}`},
		{"DeletedLocalTime", neostore.Event{
			Type: neostore.EventSecretDeleted, Timestamp: date("2099-01-01T02:00:00+02:00"), Tenant: "demo", Key: "db", TraceID: "t",
		}, `{"type":"secret.deleted","timestamp":"2099-01-01T00:00:00Z","data":{"tenantId":"demo","key":"db","notBefore":null,"expiresOn":null,"dueAt":null,"traceId":"t"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Payload(tt.event)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("Payload =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestIDs(t *testing.T) {
	id := neostore.NewEventID()
	if !strings.HasPrefix(id, "msg_") || len(id) != 4+26 || strings.ToLower(id) != id {
		t.Fatalf("neostore.NewEventID = %q, want msg_ and 26 lowercase base32 characters", id)
	}
	if other := neostore.NewEventID(); other == id {
		t.Fatal("two event ids are equal")
	}
	end := date("2099-01-09T00:00:00Z")
	created := neostore.At(date("2099-01-01T00:00:00Z"))
	a := TimeEventID(neostore.EventSecretExpiring, "demo", "db", end, 24*time.Hour, created)
	if b := TimeEventID(neostore.EventSecretExpiring, "demo", "db", end.In(time.FixedZone("x", 3600)), 24*time.Hour, created); a != b {
		t.Fatalf("the same time event has two ids: %s, %s", a, b)
	}
	if len(a) != 30 || !strings.HasPrefix(a, "msg_") {
		t.Fatalf("TimeEventID = %q", a)
	}
	for name, other := range map[string]string{
		"lead":      TimeEventID(neostore.EventSecretExpiring, "demo", "db", end, 168*time.Hour, created),
		"type":      TimeEventID(neostore.EventSecretExpired, "demo", "db", end, 24*time.Hour, created),
		"end":       TimeEventID(neostore.EventSecretExpiring, "demo", "db", end.Add(time.Nanosecond), 24*time.Hour, created),
		"created":   TimeEventID(neostore.EventSecretExpiring, "demo", "db", end, 24*time.Hour, neostore.At(created.At.Add(time.Second))),
		"tenantkey": TimeEventID(neostore.EventSecretExpiring, "demod", "b", end, 24*time.Hour, created),
	} {
		if other == a {
			t.Errorf("a different %s gives the same id", name)
		}
	}
	dl := DeliveryID(a, "wh_1")
	if len(dl) != 30 || !strings.HasPrefix(dl, "dlv_") || dl != DeliveryID(a, "wh_1") || dl == DeliveryID(a, "wh_2") {
		t.Fatalf("DeliveryID = %q: want dlv_, 26 characters, one per (event, subscription)", dl)
	}
}
