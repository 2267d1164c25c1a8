package storetest

import (
	"bytes"
	"sync"
	"testing"

	"github.com/neostore/neostore-secrets"
)

// The cases of the audit key and the audit checkpoints.

var auditStateCases = []testCase{
	{"AuditKeyCreateKeepsFirst", func(t *testing.T, s neostore.Store) {
		_, err := s.GetAuditKey(t.Context())
		wantCode(t, "GetAuditKey on a new store", err, neostore.ENOTFOUND)
		for _, k := range []string{"first", "second"} {
			stored, err := s.CreateAuditKey(t.Context(), []byte(k))
			if err != nil || string(stored) != "first" {
				t.Errorf("CreateAuditKey(%q) = %q, %v; want the first key", k, stored, err)
			}
		}
		if got, err := s.GetAuditKey(t.Context()); err != nil || string(got) != "first" {
			t.Errorf("GetAuditKey = %q, %v; want %q", got, err, "first")
		}
	}},
	{"AuditKeyConcurrentCreateOneWinner", func(t *testing.T, s neostore.Store) {
		var wg sync.WaitGroup
		results := make([][]byte, 16)
		for i := range results {
			wg.Go(func() {
				stored, err := s.CreateAuditKey(t.Context(), []byte{byte(i)})
				if err != nil {
					t.Errorf("CreateAuditKey: %v", err)
				}
				results[i] = stored
			})
		}
		wg.Wait()
		for i, r := range results {
			if !bytes.Equal(r, results[0]) {
				t.Errorf("writer %d got %x, writer 0 got %x: two winners", i, r, results[0])
			}
		}
	}},
	{"CheckpointsPerNodeNeverBackwards", func(t *testing.T, s neostore.Store) {
		ctx := t.Context()
		if _, _, found, err := s.LoadAuditCheckpoint(ctx, "node-a"); err != nil || found {
			t.Fatalf("LoadAuditCheckpoint on a new store: found=%v err=%v", found, err)
		}
		steps := []struct {
			node string
			seq  uint64
			hash string
		}{{"node-a", 10, "h10"}, {"node-b", 3, "b3"}, {"node-a", 12, "h12"}, {"node-a", 11, "h11"}}
		for _, st := range steps {
			if err := s.SaveAuditCheckpoint(ctx, st.node, st.seq, []byte(st.hash)); err != nil {
				t.Fatalf("SaveAuditCheckpoint: %v", err)
			}
		}
		seq, hash, found, err := s.LoadAuditCheckpoint(ctx, "node-a")
		if err != nil || !found || seq != 12 || string(hash) != "h12" {
			t.Errorf("node-a checkpoint = %d %q %v %v; want 12 h12 (an older save must not move it back)", seq, hash, found, err)
		}
		cps, err := s.ListAuditCheckpoints(ctx)
		if err != nil || len(cps) != 2 || cps[0].Node != "node-a" || cps[1].Node != "node-b" || cps[1].Seq != 3 || string(cps[1].Hash) != "b3" {
			t.Errorf("ListAuditCheckpoints = %+v, %v; want node-a@12 and node-b@3", cps, err)
		}
	}},
}
