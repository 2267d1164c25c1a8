package metrics_test

import (
	"path/filepath"
	"testing"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/bolt"
	"github.com/neostore/neostore-secrets/metrics"
	"github.com/neostore/neostore-secrets/storetest"
)

// TestInstrumentStore_Conformance runs the store conformance suite through
// the metrics wrapper over the embedded store: instrumenting a store must
// change nothing it does, nor hide that it commits a change's records
// (neostore.Store.ChangeJournal).
func TestInstrumentStore_Conformance(t *testing.T) {
	m := metrics.New()
	storetest.Run(t, func(t *testing.T) neostore.Store {
		s, err := bolt.Open(filepath.Join(t.TempDir(), "neostore.db"), bolt.Options{})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { _ = s.Close() })
		wrapped := m.InstrumentStore(s)
		if wrapped.ChangeJournal() == nil {
			t.Fatal("the instrumented store hides the embedded store's change journal")
		}
		return wrapped
	})
}
