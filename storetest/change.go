package storetest

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/neostore/neostore-secrets"
)

// changeCases check what a write commits with its change (neostore.Change).
// A store whose ChangeJournal is set commits a change's audit entry in the
// change's transaction, and none of a change that fails; any other store
// refuses a change that carries records, and makes no part of it.
var changeCases = []testCase{
	{"RecordsCommitWithTheChange", func(t *testing.T, s neostore.Store) {
		j := s.ChangeJournal()
		if j == nil {
			t.Skip("the store commits no records with its changes")
		}
		put, del := changeEntry("n1", 1), changeEntry("n1", 2)
		if err := s.PutSecret(t.Context(), "tenant", "k", sealed("v"), neostore.Change{Audit: put}); err != nil {
			t.Fatalf("PutSecret: %v", err)
		}
		if err := s.DeleteSecret(t.Context(), "tenant", "k", neostore.Change{Audit: del}); err != nil {
			t.Fatalf("DeleteSecret: %v", err)
		}
		if !put.IsCommitted() || !del.IsCommitted() {
			t.Errorf("committed = %v, %v; want both", put.IsCommitted(), del.IsCommitted())
		}
		want := []string{string(put.Line), string(del.Line)}
		if got := journaledLines(t, j, "n1", 0); !slices.Equal(got, want) {
			t.Errorf("journal = %q, want %q", got, want)
		}
		if got := journaledLines(t, j, "n1", 1); !slices.Equal(got, want[1:]) {
			t.Errorf("journal after 1 = %q, want %q", got, want[1:])
		}
		if got := journaledLines(t, j, "n2", 0); len(got) != 0 {
			t.Errorf("another node's journal = %q, want empty", got)
		}
	}},
	{"RecordsAbsentWhenTheChangeFails", func(t *testing.T, s neostore.Store) {
		j := s.ChangeJournal()
		if j == nil {
			t.Skip("the store commits no records with its changes")
		}
		e := changeEntry("n1", 1)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := s.PutSecret(ctx, "tenant", "k", sealed("v"), neostore.Change{Audit: e}); err == nil {
			t.Fatal("PutSecret with a cancelled context = nil, want an error")
		}
		if e.IsCommitted() {
			t.Error("the entry of a change that failed is marked committed")
		}
		if got := journaledLines(t, j, "n1", 0); len(got) != 0 {
			t.Errorf("journal = %q, want empty", got)
		}
		if _, err := s.GetSecret(t.Context(), "tenant", "k"); neostore.ErrorCode(err) != neostore.ENOTFOUND {
			t.Errorf("GetSecret after the failed change = %v, want ENOTFOUND", err)
		}
	}},
	{"NoRecordsNothingJournaled", func(t *testing.T, s neostore.Store) {
		j := s.ChangeJournal()
		if j == nil {
			t.Skip("the store commits no records with its changes")
		}
		mustPut(t, s, "tenant", "k", sealed("v"))
		if err := s.DeleteSecret(t.Context(), "tenant", "k", neostore.Change{}); err != nil {
			t.Fatalf("DeleteSecret: %v", err)
		}
		if got := journaledLines(t, j, "n1", 0); len(got) != 0 {
			t.Errorf("journal = %q, want empty", got)
		}
	}},
	{"WithoutAJournalRecordsAreRefused", func(t *testing.T, s neostore.Store) {
		if s.ChangeJournal() != nil {
			t.Skip("the store commits records with its changes")
		}
		e := changeEntry("n1", 1)
		err := s.PutSecret(t.Context(), "tenant", "k", sealed("v"), neostore.Change{Audit: e})
		wantCode(t, "PutSecret with records", err, neostore.EINTERNAL)
		if _, err := s.GetSecret(t.Context(), "tenant", "k"); neostore.ErrorCode(err) != neostore.ENOTFOUND {
			t.Errorf("GetSecret after the refused put = %v, want ENOTFOUND", err)
		}
		mustPut(t, s, "tenant", "k", sealed("v"))
		err = s.DeleteSecret(t.Context(), "tenant", "k", neostore.Change{Audit: e})
		wantCode(t, "DeleteSecret with records", err, neostore.EINTERNAL)
		mustGet(t, s, "tenant", "k")
		if e.IsCommitted() {
			t.Error("a refused entry is marked committed")
		}
	}},
}

// changeEntry returns the entry of a change as a trail fills it in.
func changeEntry(node string, seq uint64) *neostore.AuditEntry {
	return &neostore.AuditEntry{Node: node, Seq: seq, Line: fmt.Appendf(nil, `{"node":%q,"seq":%d}`, node, seq)}
}

func sealed(ciphertext string) neostore.SealedSecret {
	return neostore.SealedSecret{Ciphertext: []byte(ciphertext)}
}

func journaledLines(t *testing.T, j neostore.ChangeJournal, node string, after uint64) []string {
	t.Helper()
	lines, err := j.JournaledLines(t.Context(), node, after)
	if err != nil {
		t.Fatalf("JournaledLines(%q, %d): %v", node, after, err)
	}
	var out []string
	for _, l := range lines {
		out = append(out, string(l))
	}
	return out
}
