package audit

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets"
)

// jsonBody is what encodeBody wrote with encoding/json before it was
// written by hand: the reference its output must equal byte for byte.
func jsonBody(t testing.TB, r *neostore.AuditRecord) []byte {
	p := r.Principal
	b, err := json.Marshal(body{
		TraceID: clip(r.TraceID), Op: clip(r.Op), Tenant: clip(r.Tenant), Key: clip(r.Key),
		Principal: neostore.AuditPrincipal{Kind: clip(p.Kind), ID: clip(p.ID), Name: clip(p.Name),
			Issuer: clip(p.Issuer), Subject: clip(p.Subject), ClientID: clip(p.ClientID)},
		Status: r.Status, ErrorCode: clip(r.ErrorCode), ClientAddr: clip(r.ClientAddr),
		UserAgent: clip(r.UserAgent), DurationNs: int64(r.Duration),
	})
	if err != nil {
		t.Fatal(err)
	}
	return b[1 : len(b)-1]
}

func TestEncodeBody_MatchesEncodingJSON(t *testing.T) {
	nasty := []string{"", "plain", `quote " backslash \ slash /`, "<script>&amp;</script>", "tab\tnl\ncr\rbs\bff\f",
		"\x00\x01\x1f\x7f", "é 漢字 🎉", "\u2028\u2029", "bad \xff\xfe utf8 \xc3", strings.Repeat("x", maxField+10), strings.Repeat("é", maxField)}
	for i, s := range nasty {
		r := &neostore.AuditRecord{TraceID: s, Op: s, Tenant: s, Key: s, Status: 200 + i, ErrorCode: s, ClientAddr: s, UserAgent: s, Duration: time.Duration(i) * time.Millisecond,
			Principal: neostore.AuditPrincipal{Kind: s, ID: s, Name: s, Issuer: s, Subject: s, ClientID: s}}
		got, _ := encodeBody(r)
		if want := jsonBody(t, r); !bytes.Equal(got, want) {
			t.Errorf("case %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

func FuzzEncodeBody(f *testing.F) {
	f.Add("op", "tenant", "key", "ua", 200)
	f.Add("\xff<&>", "\u2028", "\x00", "\"\\", -1)
	f.Fuzz(func(t *testing.T, op, tenant, key, ua string, status int) {
		r := &neostore.AuditRecord{Op: op, Tenant: tenant, Key: key, UserAgent: ua, Status: status,
			Principal: neostore.AuditPrincipal{Kind: op, ID: key}}
		got, _ := encodeBody(r)
		if want := jsonBody(t, r); !bytes.Equal(got, want) {
			t.Fatalf("got %s\nwant %s", got, want)
		}
	})
}

func TestStamper_MatchesAppendFormat(t *testing.T) {
	var s stamper
	times := []time.Time{
		time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		time.Date(2026, 3, 1, 12, 0, 0, 7, time.UTC),
		time.Date(2026, 3, 1, 12, 0, 0, 999999999, time.UTC),
		time.Date(2026, 3, 1, 12, 0, 1, 5000, time.UTC), // the next second
		time.Date(2026, 3, 1, 13, 0, 1, 5000, time.FixedZone("CET", 3600)),
		time.Date(999, 12, 31, 23, 59, 59, 1, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 1, time.UTC),
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Now(),
	}
	for i := range 1000 {
		times = append(times, time.Unix(int64(i)*7919, int64(i)*104729))
	}
	for _, tm := range times {
		want := tm.UTC().AppendFormat(nil, timeLayout)
		if got := s.append(nil, tm); !bytes.Equal(got, want) {
			t.Errorf("stamp(%v) = %s, want %s", tm, got, want)
		}
	}
}
