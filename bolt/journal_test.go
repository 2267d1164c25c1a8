package bolt_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/audit"
)

// journaled returns node's journaled lines after seq, as strings.
func journaled(t *testing.T, s interface {
	JournaledLines(context.Context, string, uint64) ([][]byte, error)
}, node string, after uint64) []string {
	t.Helper()
	lines, err := s.JournaledLines(t.Context(), node, after)
	if err != nil {
		t.Fatalf("JournaledLines: %v", err)
	}
	var out []string
	for _, l := range lines {
		out = append(out, string(l))
	}
	return out
}

func TestStore_AuditJournal(t *testing.T) {
	s := mustOpen(t)
	entry := func(node string, seq uint64) *neostore.AuditEntry {
		return &neostore.AuditEntry{Node: node, Seq: seq, Line: fmt.Appendf(nil, `{"node":%q,"seq":%d}`, node, seq)}
	}
	sec := neostore.SealedSecret{Ciphertext: []byte("c")}

	t.Run("AChangeCommitsItsEntry", func(t *testing.T) {
		e1, e2 := entry("n1", 1), entry("n1", 2)
		mustDo(t, s.PutSecret(t.Context(), "t", "k", sec, neostore.Change{Audit: e1}))
		mustDo(t, s.DeleteSecret(t.Context(), "t", "k", neostore.Change{Audit: e2}))
		if !e1.IsCommitted() || !e2.IsCommitted() {
			t.Errorf("committed = %v, %v; want both", e1.IsCommitted(), e2.IsCommitted())
		}
		want := []string{string(e1.Line), string(e2.Line)}
		if got := journaled(t, s, "n1", 0); !slices.Equal(got, want) {
			t.Errorf("journal = %q, want %q", got, want)
		}
		if got := journaled(t, s, "n1", 1); !slices.Equal(got, want[1:]) {
			t.Errorf("journal after 1 = %q, want %q", got, want[1:])
		}
		if got := journaled(t, s, "other", 0); len(got) != 0 {
			t.Errorf("another node's journal = %q, want empty", got)
		}
	})

	t.Run("AFailedChangeCommitsNothing", func(t *testing.T) {
		e := entry("n2", 1)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := s.PutSecret(ctx, "t", "k", sec, neostore.Change{Audit: e}); err == nil {
			t.Fatal("PutSecret with a cancelled context succeeded")
		}
		if e.IsCommitted() {
			t.Error("the entry of a change that failed is marked committed")
		}
		if got := journaled(t, s, "n2", 0); len(got) != 0 {
			t.Errorf("journal = %q, want empty", got)
		}
	})

	t.Run("ACheckpointDropsWhatItCovers", func(t *testing.T) {
		for seq := uint64(3); seq <= 6; seq++ {
			mustDo(t, s.PutSecret(t.Context(), "t", "k", sec, neostore.Change{Audit: entry("n1", seq)}))
		}
		mustDo(t, s.SaveAuditCheckpoint(t.Context(), "n1", 4, make([]byte, 32)))
		want := []string{string(entry("n1", 5).Line), string(entry("n1", 6).Line)}
		if got := journaled(t, s, "n1", 0); !slices.Equal(got, want) {
			t.Errorf("journal after checkpoint 4 = %q, want %q", got, want)
		}
		// An older checkpoint is ignored, and drops nothing more.
		mustDo(t, s.SaveAuditCheckpoint(t.Context(), "n1", 2, make([]byte, 32)))
		if got := journaled(t, s, "n1", 0); !slices.Equal(got, want) {
			t.Errorf("journal after an older checkpoint = %q, want %q", got, want)
		}
	})

	t.Run("WithoutAnEntryNothingIsJournaled", func(t *testing.T) {
		mustDo(t, s.PutSecret(t.Context(), "t", "plain", sec, neostore.Change{}))
		if got := journaled(t, s, "n1", 6); len(got) != 0 {
			t.Errorf("journal = %q, want empty", got)
		}
	})
}

// TestStore_AuditJournalRestoresTheTrail runs a real trail over the store's
// journal: a change's record committed with the change survives the loss of
// the audit file's unsynced tail, and the chain verifies after the restart.
func TestStore_AuditJournalRestoresTheTrail(t *testing.T) {
	s := mustOpen(t)
	path := filepath.Join(t.TempDir(), "audit.log")
	key := bytes.Repeat([]byte{7}, 32)
	open := func() *audit.Trail {
		sink, err := audit.OpenFile(path, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := audit.Open(audit.Config{NodeID: "n1", Key: key, Sink: sink, Durability: audit.WriteSync, Journal: s.ChangeJournal()})
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	ctx := t.Context()
	tr := open()
	mustDo(t, tr.Audit(ctx, &neostore.AuditRecord{Op: neostore.OpSecretGet, Status: 200}))
	e, err := tr.AuditChange(ctx, &neostore.AuditRecord{Op: neostore.OpSecretPut, Tenant: "t", Key: "k", Status: 204})
	mustDo(t, err)
	mustDo(t, s.PutSecret(ctx, "t", "k", neostore.SealedSecret{Ciphertext: []byte("c")}, neostore.Change{Audit: e}))
	if !e.IsCommitted() {
		t.Fatal("the store did not commit the record with the change")
	}
	mustDo(t, tr.Durable(ctx, e))
	mustDo(t, tr.Close()) // no checkpoint store: the journal is kept, as after a crash

	whole, err := os.ReadFile(path)
	mustDo(t, err)
	lines := strings.SplitAfter(string(whole), "\n")
	mustDo(t, os.WriteFile(path, []byte(lines[0]), 0o600)) // the OS lost the change's line

	tr = open()
	mustDo(t, tr.Close())
	restored, err := os.ReadFile(path)
	mustDo(t, err)
	if !bytes.Equal(restored, whole) {
		t.Errorf("after the restart the file reads\n%s\nwant\n%s", restored, whole)
	}
	if _, err := audit.Verify([]string{path}, key, nil); err != nil {
		t.Errorf("Verify: %v", err)
	}
}
