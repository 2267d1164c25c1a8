package postgres_test

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/pgtest"
	"github.com/neostore/neostore-secrets/postgres"
)

// faultOptions make the bound of every call 1s + 1s; faultBound adds a
// generous margin for a loaded test machine.
var faultOptions = postgres.Options{ConnectTimeout: time.Second, StatementTimeout: time.Second, PingTimeout: time.Second}

const faultBound = 5 * time.Second

// seedFaultData writes one record of each kind and returns a check that
// they are all still there, unchanged.
func seedFaultData(t *testing.T, s *postgres.Store) (check func()) {
	t.Helper()
	ctx := t.Context()
	sec := neostore.SealedSecret{Ciphertext: []byte("before the fault"), Validity: neostore.Validity{NotBefore: neostore.At(time.Date(2025, 1, 1, 0, 0, 0, 1, time.UTC))}}
	if err := s.PutSecret(ctx, "tenant", "k", sec, neostore.Change{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateTenantKey(ctx, "tenant", []byte("wrapped")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateKeyCheck(ctx, []byte("check")); err != nil {
		t.Fatal(err)
	}
	created := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := s.CreateAPIKey(ctx, neostore.APIKey{ID: "id", Tenant: "tenant", Scopes: neostore.ScopeRead, Hash: []byte("hash"), CreatedAt: created}); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		got, err := s.GetSecret(ctx, "tenant", "k")
		if err != nil || !bytes.Equal(got.Ciphertext, sec.Ciphertext) || !got.Validity.NotBefore.At.Equal(sec.Validity.NotBefore.At) {
			t.Errorf("GetSecret after recovery = %+v, %v; want %+v", got, err, sec)
		}
		if wrapped, err := s.GetTenantKey(ctx, "tenant"); err != nil || string(wrapped) != "wrapped" {
			t.Errorf("GetTenantKey after recovery = %q, %v", wrapped, err)
		}
		if rec, err := s.GetKeyCheck(ctx); err != nil || string(rec) != "check" {
			t.Errorf("GetKeyCheck after recovery = %q, %v", rec, err)
		}
		keys, err := s.ListAPIKeys(ctx, "tenant")
		if err != nil || len(keys) != 1 || keys[0].ID != "id" || !keys[0].CreatedAt.Equal(created) {
			t.Errorf("ListAPIKeys after recovery = %+v, %v", keys, err)
		}
	}
}

// checkAllUnavailable calls every method with a context without deadline
// and requires each to fail with EUNAVAILABLE, a generic client message,
// and within faultBound.
func checkAllUnavailable(t *testing.T, s *postgres.Store) {
	t.Helper()
	ops := operations(s)
	for _, name := range slices.Sorted(maps.Keys(ops)) {
		start := time.Now()
		err := ops[name](context.Background())
		elapsed := time.Since(start)
		if got := neostore.ErrorCode(err); got != neostore.EUNAVAILABLE {
			t.Errorf("%s: code %q (err %v), want %q", name, got, err, neostore.EUNAVAILABLE)
		}
		if elapsed > faultBound {
			t.Errorf("%s returned after %v, want within %v", name, elapsed, faultBound)
		}
		if msg := neostore.ErrorMessage(err); strings.Contains(msg, "127.0.0.1") || strings.Contains(msg, "postgres") {
			t.Errorf("%s: client message %q leaks connection detail", name, msg)
		}
		t.Logf("%s: %v after %v", name, neostore.ErrorCode(err), elapsed.Round(time.Millisecond))
	}
}

// waitRecovered polls Ping until the same store answers again, without
// reopening it.
func waitRecovered(t *testing.T, s *postgres.Store) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := s.Ping(t.Context())
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("store did not recover within 30s of the database's return: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func checkAllWork(t *testing.T, s *postgres.Store) {
	t.Helper()
	ops := operations(s)
	for _, name := range slices.Sorted(maps.Keys(ops)) {
		if err := ops[name](t.Context()); err != nil {
			t.Errorf("%s after recovery: %v", name, err)
		}
	}
}

func TestStore_DatabaseStopped(t *testing.T) {
	srv := pgtest.StartServer(t)
	s := mustOpen(t, srv.NewDatabase(t), faultOptions)
	intact := seedFaultData(t, s)

	srv.Stop(t)
	checkAllUnavailable(t, s)

	srv.Start(t)
	waitRecovered(t, s)
	intact()
	checkAllWork(t, s)
}

// A frozen server is the network partition case: the kernel accepts
// connections and nothing answers, so only the timeouts end the calls.
func TestStore_DatabaseUnresponsive(t *testing.T) {
	begin := time.Now()
	phase := func(name string) { t.Logf("%s at %v", name, time.Since(begin).Round(time.Millisecond)) }
	defer phase("end")
	srv := pgtest.StartServer(t)
	phase("server started")
	opts := faultOptions
	opts.MaxConns = 2
	s := mustOpen(t, srv.NewDatabase(t), opts)
	intact := seedFaultData(t, s)

	srv.Freeze(t)
	phase("frozen")
	checkAllUnavailable(t, s)
	phase("all unavailable")

	// More callers than connections: the ones queueing for the pool are
	// bounded too.
	var wg sync.WaitGroup
	start := time.Now()
	for i := range 20 {
		wg.Go(func() {
			_, err := s.GetSecret(context.Background(), "tenant", "k")
			if got := neostore.ErrorCode(err); got != neostore.EUNAVAILABLE {
				t.Errorf("concurrent GetSecret #%d: code %q (err %v), want %q", i, got, err, neostore.EUNAVAILABLE)
			}
		})
	}
	wg.Wait()
	if elapsed := time.Since(start); elapsed > faultBound {
		t.Errorf("20 concurrent calls on 2 connections took %v, want each within %v", elapsed, faultBound)
	}

	phase("concurrent done")
	srv.Thaw(t)
	waitRecovered(t, s)
	phase("recovered")
	intact()
	checkAllWork(t, s)
}

// Writers keep writing while the database stops and starts again. Every
// failure must be EUNAVAILABLE, and every acknowledged write must be there
// afterwards. A write that failed may or may not have landed: the client
// was told to retry, not that it was lost.
func TestStore_DatabaseStoppedMidLoad(t *testing.T) {
	srv := pgtest.StartServer(t)
	s := mustOpen(t, srv.NewDatabase(t), faultOptions)

	var (
		mu          sync.Mutex
		acked       = map[string]string{}
		unavailable atomic.Int64
		other       atomic.Int64
		afterReturn atomic.Int64
		returned    atomic.Bool
		stop        = make(chan struct{})
		wg          sync.WaitGroup
	)
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key, value := fmt.Sprintf("w%d-%d", w, i), fmt.Sprintf("value %d of writer %d", i, w)
				start := time.Now()
				err := s.PutSecret(context.Background(), "tenant", key, neostore.SealedSecret{Ciphertext: []byte(value)}, neostore.Change{})
				if elapsed := time.Since(start); elapsed > faultBound {
					t.Errorf("PutSecret took %v, want within %v", elapsed, faultBound)
				}
				switch code := neostore.ErrorCode(err); {
				case err == nil:
					mu.Lock()
					acked[key] = value
					mu.Unlock()
					if returned.Load() {
						afterReturn.Add(1)
					}
				case code == neostore.EUNAVAILABLE:
					unavailable.Add(1)
					time.Sleep(20 * time.Millisecond) // as a client honouring Retry-After would, briefly
				default:
					other.Add(1)
					t.Errorf("PutSecret during the fault: code %q (err %v), want %q", code, err, neostore.EUNAVAILABLE)
				}
			}
		})
	}

	time.Sleep(300 * time.Millisecond)
	srv.Stop(t)
	time.Sleep(time.Second)
	srv.Start(t)
	returned.Store(true)
	deadline := time.Now().Add(30 * time.Second)
	for afterReturn.Load() < 20 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	wg.Wait()

	if unavailable.Load() == 0 {
		t.Errorf("no write failed while the database was stopped; the test did not test the fault")
	}
	if afterReturn.Load() < 20 {
		t.Errorf("only %d writes succeeded after the database returned, want the store to recover", afterReturn.Load())
	}
	lost := 0
	for key, value := range acked {
		got, err := s.GetSecret(t.Context(), "tenant", key)
		if err != nil || string(got.Ciphertext) != value {
			lost++
			if lost <= 5 {
				t.Errorf("acknowledged write %s: GetSecret = %q, %v; want %q", key, got.Ciphertext, err, value)
			}
		}
	}
	t.Logf("writes acknowledged %d (after restart %d), answered unavailable %d, other errors %d, acknowledged but lost %d",
		len(acked), afterReturn.Load(), unavailable.Load(), other.Load(), lost)
}
