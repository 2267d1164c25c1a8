package audit_test

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/audit"
)

// The documented schema of a record line. A record must never carry a
// secret value, an API key, a token or key material; these tests fail when
// a field is added anywhere, so that the addition gets that review.
var (
	wantLineKeys      = []string{"time", "node", "seq", "traceId", "op", "tenant", "key", "principal", "status", "errorCode", "clientAddr", "userAgent", "durationNs", "prev", "mac"}
	wantPrincipalKeys = []string{"kind", "id", "name", "issuer", "sub", "clientId"}
)

func TestRecord_Schema(t *testing.T) {
	t.Run("DomainTypesHaveOnlyTheReviewedFields", func(t *testing.T) {
		check := func(v any, want []string) {
			t.Helper()
			var got []string
			typ := reflect.TypeOf(v)
			for f := range typ.Fields() {
				got = append(got, f.Name+" "+f.Type.String())
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s fields\n got %v\nwant %v\nA new field must be reviewed: can it ever hold a secret value, "+
					"a credential or key material? If not, add it to the audit encoding (record.go) and to this list.", typ, got, want)
			}
		}
		check(neostore.AuditRecord{}, []string{
			"Time time.Time", "TraceID string", "Op string", "Tenant string", "Key string",
			"Principal neostore.AuditPrincipal", "Status int", "ErrorCode string", "ClientAddr string",
			"UserAgent string", "Duration time.Duration",
		})
		check(neostore.AuditPrincipal{}, []string{
			"Kind string", "ID string", "Name string", "Issuer string", "Subject string", "ClientID string",
		})
	})

	t.Run("LineHasExactlyTheDocumentedKeysInOrder", func(t *testing.T) {
		path := tempPath(t)
		tr := openTrail(t, audit.Config{Sink: openFileSink(t, path, 0, 0)})
		// Every field set, each to a canary, so that omitempty hides none.
		r := &neostore.AuditRecord{
			Time: time.Now(), TraceID: "canary-trace", Op: "canary-op", Tenant: "canary-tenant", Key: "canary-key",
			Principal: neostore.AuditPrincipal{
				Kind: "canary-kind", ID: "canary-id", Name: "canary-name",
				Issuer: "canary-iss", Subject: "canary-sub", ClientID: "canary-client",
			},
			Status: 599, ErrorCode: "canary-code", ClientAddr: "canary-addr", UserAgent: "canary-ua", Duration: 1,
		}
		must(t, tr.Audit(context.Background(), r))
		must(t, tr.Close())
		line := readLines(t, path)[0]

		if got := topLevelKeys(t, line); !slices.Equal(got, wantLineKeys) {
			t.Errorf("line keys\n got %v\nwant %v", got, wantLineKeys)
		}
		var m struct{ Principal json.RawMessage }
		must(t, json.Unmarshal([]byte(line), &m))
		if got := topLevelKeys(t, string(m.Principal)); !slices.Equal(got, wantPrincipalKeys) {
			t.Errorf("principal keys\n got %v\nwant %v", got, wantPrincipalKeys)
		}
		// Nothing but the record's own values (and the chain's) is on the line.
		rest := line
		for _, v := range []string{"canary-trace", "canary-op", "canary-tenant", "canary-key", "canary-kind",
			"canary-id", "canary-name", "canary-iss", "canary-sub", "canary-client", "canary-code", "canary-addr", "canary-ua"} {
			if strings.Count(line, v) != 1 {
				t.Errorf("%s appears %d times, want once", v, strings.Count(line, v))
			}
			rest = strings.Replace(rest, v, "", 1)
		}
		if strings.Contains(rest, "canary") {
			t.Errorf("line holds an unexpected canary: %s", line)
		}
	})
}

// topLevelKeys returns the keys of the JSON object s in order.
func topLevelKeys(t *testing.T, s string) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %s", s)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		must(t, dec.Decode(&skip))
	}
	return keys
}

func TestParseLine(t *testing.T) {
	path := tempPath(t)
	writeTrail(t, path, "node-a", testKey, 1)
	good := readLines(t, path)[0]
	tests := map[string]string{
		"NotJSON":      "hello",
		"NoSeq":        strings.Replace(good, `"seq":1,`, ``, 1),
		"NoNode":       strings.Replace(good, `"node":"node-a",`, ``, 1),
		"BadTime":      strings.Replace(good, `"time":"2026`, `"time":"yesterday`, 1),
		"UppercaseMAC": good[:len(good)-66] + strings.ToUpper(good[len(good)-66:len(good)-2]) + `"}`,
		"ShortPrev":    strings.Replace(good, `"prev":"00`, `"prev":"`, 1),
	}
	for name, line := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := audit.ParseLine([]byte(line)); err == nil {
				t.Errorf("ParseLine(%s) succeeded, want an error", line)
			}
		})
	}
	if _, err := audit.ParseLine([]byte(good)); err != nil {
		t.Errorf("ParseLine(good) = %v", err)
	}
}
