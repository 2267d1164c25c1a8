package audit_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/audit"
)

func TestSearch(t *testing.T) {
	path := tempPath(t)
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	records := []neostore.AuditRecord{
		{TraceID: "1", Time: t0, Op: neostore.OpSecretGet, Tenant: "acme", Key: "db",
			Principal: neostore.AuditPrincipal{Kind: neostore.PrincipalAPIKey, ID: "ak_1", Name: "ci"}, Status: 200},
		{TraceID: "2", Time: t0.Add(time.Hour), Op: neostore.OpSecretPut, Tenant: "acme", Key: "db",
			Principal: neostore.AuditPrincipal{Kind: neostore.PrincipalToken, ID: "alice", Subject: "alice", ClientID: "portal"}, Status: 204},
		{TraceID: "3", Time: t0.Add(2 * time.Hour), Op: neostore.OpSecretGet, Tenant: "globex", Key: "db",
			Principal: neostore.AuditPrincipal{Kind: neostore.PrincipalAPIKey, ID: "ak_2"}, Status: 403, ErrorCode: neostore.EFORBIDDEN},
		{TraceID: "4", Time: t0.Add(3 * time.Hour), Op: neostore.OpSecretList, Tenant: "acme",
			Principal: neostore.AuditPrincipal{Kind: "anonymous"}, Status: 401, ErrorCode: neostore.EUNAUTHENTICATED},
	}
	tr := openTrail(t, audit.Config{Sink: openFileSink(t, path, 0, 0)})
	for i := range records {
		must(t, tr.Audit(context.Background(), &records[i]))
	}
	must(t, tr.Close())

	tests := []struct {
		name   string
		filter audit.Filter
		want   []string // trace ids
	}{
		{"All", audit.Filter{}, []string{"1", "2", "3", "4"}},
		{"Tenant", audit.Filter{Tenant: "acme"}, []string{"1", "2", "4"}},
		{"TenantAndKey", audit.Filter{Tenant: "acme", Key: "db"}, []string{"1", "2"}},
		{"PrincipalByID", audit.Filter{Principal: "ak_2"}, []string{"3"}},
		{"PrincipalBySub", audit.Filter{Principal: "alice"}, []string{"2"}},
		{"PrincipalByClientID", audit.Filter{Principal: "portal"}, []string{"2"}},
		{"Op", audit.Filter{Op: neostore.OpSecretGet}, []string{"1", "3"}},
		{"SinceIsInclusive", audit.Filter{Since: t0.Add(2 * time.Hour)}, []string{"3", "4"}},
		{"UntilIsExclusive", audit.Filter{Until: t0.Add(2 * time.Hour)}, []string{"1", "2"}},
		{"NoMatch", audit.Filter{Tenant: "initech"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			must(t, audit.Search([]string{path}, tt.filter, func(l audit.Line) error {
				got = append(got, l.Record.TraceID)
				if l.File != path || l.LineNo < 1 || len(l.Raw) == 0 {
					t.Errorf("line position = %s:%d raw %d bytes, want file, line number and raw line", l.File, l.LineNo, len(l.Raw))
				}
				return nil
			}))
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}

	t.Run("StopsAtTheCallbacksError", func(t *testing.T) {
		stop := errors.New("enough")
		n := 0
		err := audit.Search([]string{path}, audit.Filter{}, func(audit.Line) error { n++; return stop })
		if !errors.Is(err, stop) || n != 1 {
			t.Errorf("err = %v after %d calls, want the callback's error after 1", err, n)
		}
	})
}

func TestWriteTable(t *testing.T) {
	lines := []audit.Line{{
		Node: "node-a", Seq: 7,
		Record: neostore.AuditRecord{
			Time: time.Date(2026, 3, 1, 0, 0, 0, 5, time.UTC), Op: neostore.OpSecretGet, Tenant: "acme",
			Key:       "evil\x1b[2J\u202egnp.exe",
			Principal: neostore.AuditPrincipal{Kind: neostore.PrincipalToken, Subject: "alice", Name: "Alice"},
			Status:    403, ErrorCode: neostore.EFORBIDDEN, Duration: 1500 * time.Microsecond,
		},
	}}
	var out strings.Builder
	must(t, audit.WriteTable(&out, lines))
	got := out.String()
	for _, want := range []string{"TIME", "PRINCIPAL", "2026-03-01T00:00:00.000000005Z", "node-a", "7", "secret.get",
		"acme", "token:alice (Alice)", "403 forbidden", "1.5ms", "evil?[2J?gnp.exe"} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
	if strings.ContainsAny(got, "\x1b\u202e") {
		t.Errorf("table passes terminal control characters through:\n%q", got)
	}
}
