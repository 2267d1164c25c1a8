package postgres_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/audit"
	"github.com/neostore/neostore-secrets/pgtest"
	"github.com/neostore/neostore-secrets/postgres"
)

var auditKey = bytes.Repeat([]byte{3}, 32)

func openTrail(t *testing.T, s *postgres.Store, node string) *audit.Trail {
	t.Helper()
	trail, err := audit.Open(audit.Config{NodeID: node, Key: auditKey, Sink: s.NewAuditSink()})
	if err != nil {
		t.Fatal(err)
	}
	return trail
}

// dbLines returns every audit line in the database as one stream.
func dbLines(t *testing.T, s *postgres.Store) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := s.AuditLines(t.Context(), "", func(l []byte) error { buf.Write(l); buf.WriteByte('\n'); return nil }); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestAuditSink_ChainsOfTwoNodesInOneTable(t *testing.T) {
	url := pgtest.Start(t)
	a, b := mustOpen(t, url, postgres.Options{}), mustOpen(t, url, postgres.Options{})
	trails := []*audit.Trail{openTrail(t, a, "node-a"), openTrail(t, b, "node-b")}
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			rec := &neostore.AuditRecord{Op: neostore.OpSecretGet, Tenant: fmt.Sprintf("t%d", i%3), Key: "k", Status: 200,
				Principal: neostore.AuditPrincipal{Kind: neostore.PrincipalAPIKey, ID: "ak_1"}}
			if err := trails[i%2].Audit(context.Background(), rec); err != nil {
				t.Errorf("Audit: %v", err)
			}
		})
	}
	wg.Wait()
	for _, tr := range trails {
		tr.Close()
	}
	rep, err := audit.VerifyReader(bytes.NewReader(dbLines(t, a)), "audit_log", auditKey, nil)
	if err != nil {
		t.Fatalf("Verify over the table: %v", err)
	}
	if rep.Records != 32 || len(rep.Chains) != 2 {
		t.Errorf("report = %+v, want 32 records in 2 chains", rep)
	}

	// A restarted node continues its chain from the table.
	tr := openTrail(t, a, "node-a")
	if err := tr.Audit(context.Background(), &neostore.AuditRecord{Op: neostore.OpSecretList, Status: 200}); err != nil {
		t.Fatal(err)
	}
	tr.Close()
	if _, err := audit.VerifyReader(bytes.NewReader(dbLines(t, a)), "audit_log", auditKey, nil); err != nil {
		t.Errorf("Verify after a restart: %v", err)
	}
	var tenantLines int
	a.AuditLines(t.Context(), "t1", func([]byte) error { tenantLines++; return nil })
	if tenantLines == 0 || tenantLines >= 32 {
		t.Errorf("AuditLines(t1) returned %d lines, want only t1's", tenantLines)
	}
}

func TestAuditSink_DatabaseDownRefusesRecords(t *testing.T) {
	db := pgtest.StartServer(t)
	s := mustOpen(t, db.NewDatabase(t), postgres.Options{ConnectTimeout: 1e9, StatementTimeout: 1e9})
	tr := openTrail(t, s, "node-a")
	defer tr.Close()
	if err := tr.Audit(context.Background(), &neostore.AuditRecord{Op: neostore.OpSecretGet, Status: 200}); err != nil {
		t.Fatal(err)
	}
	db.Stop(t)
	if err := tr.Audit(context.Background(), &neostore.AuditRecord{Op: neostore.OpSecretGet, Status: 200}); neostore.ErrorCode(err) != neostore.EUNAVAILABLE {
		t.Errorf("Audit with the database down: err = %v, want EUNAVAILABLE", err)
	}
}
