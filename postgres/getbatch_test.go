package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/pgtest"
	"github.com/neostore/neostore-secrets/postgres"
)

// storeConnections counts the connections the store has open to url's
// database, by their application_name (the raw connection has none).
func storeConnections(t *testing.T, url string) int {
	t.Helper()
	var n int
	err := rawConn(t, url).QueryRow(t.Context(),
		"SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'neostore-secrets'").Scan(&n)
	if err != nil {
		t.Fatalf("count connections: %v", err)
	}
	return n
}

// Concurrent reads are answered by a few batches in flight (a quarter of
// MaxConns), each a pipeline on one connection, and every caller still
// gets its own row or its own not-found.
func TestStore_ConcurrentGetsShareConnections(t *testing.T) {
	url := pgtest.Start(t)
	s := mustOpen(t, url, postgres.Options{MaxConns: 16})
	const readers = 32
	for r := range readers {
		sec := neostore.SealedSecret{Ciphertext: []byte(fmt.Sprintf("value-%d", r))}
		if err := s.PutSecret(t.Context(), "tenant", fmt.Sprintf("key-%d", r), sec, neostore.Change{}); err != nil {
			t.Fatalf("PutSecret: %v", err)
		}
	}
	var wg sync.WaitGroup
	for r := range readers {
		wg.Go(func() {
			for i := range 100 {
				if i%10 == 9 {
					if _, err := s.GetSecret(t.Context(), "tenant", fmt.Sprintf("absent-%d", r)); neostore.ErrorCode(err) != neostore.ENOTFOUND {
						t.Errorf("GetSecret of an absent key: %v, want ENOTFOUND", err)
						return
					}
					continue
				}
				got, err := s.GetSecret(t.Context(), "tenant", fmt.Sprintf("key-%d", r))
				if want := fmt.Sprintf("value-%d", r); err != nil || string(got.Ciphertext) != want {
					t.Errorf("GetSecret(key-%d) = %q, %v; want %q", r, got.Ciphertext, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
	// At most 4 batches in flight (a quarter of MaxConns), each on one
	// connection, besides the 2 the pool keeps open and the puts' one:
	// without batching, 32 readers take all 16.
	if n := storeConnections(t, url); n > 8 {
		t.Errorf("%d readers left %d connections open, want at most 8", readers, n)
	}
}

// lockSecrets makes every read of the secrets table wait until the
// returned function is called.
func lockSecrets(t *testing.T, url string) (release func()) {
	t.Helper()
	conn := rawConn(t, url)
	tx, err := conn.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), "LOCK TABLE secrets IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			if err := tx.Rollback(context.Background()); err != nil {
				t.Errorf("release the lock: %v", err)
			}
		})
	}
	t.Cleanup(release)
	return release
}

// When the reads of batches time out on the server, every caller of every
// batch gets EUNAVAILABLE, and reads work again once the database does.
func TestStore_GetsOfATimedOutBatchAreUnavailable(t *testing.T) {
	url := pgtest.Start(t)
	s := mustOpen(t, url, postgres.Options{StatementTimeout: 300 * time.Millisecond})
	if err := s.PutSecret(t.Context(), "tenant", "k", neostore.SealedSecret{Ciphertext: []byte("v")}, neostore.Change{}); err != nil {
		t.Fatal(err)
	}
	release := lockSecrets(t, url)
	const readers = 24
	errs := make([]error, readers)
	var wg sync.WaitGroup
	start := time.Now()
	for r := range readers {
		wg.Go(func() { _, errs[r] = s.GetSecret(t.Context(), "tenant", "k") })
	}
	wg.Wait()
	elapsed := time.Since(start)
	release()
	for r, err := range errs {
		if got := neostore.ErrorCode(err); got != neostore.EUNAVAILABLE {
			t.Errorf("reader %d behind the lock: code %q (err %v), want %q", r, got, err, neostore.EUNAVAILABLE)
		}
	}
	// Queued batches wait for the ones before them, each bounded by the
	// statement timeout; the client-side bound alone would be 5.3s.
	if elapsed > 4*time.Second {
		t.Errorf("%d readers behind the lock returned after %v, want a few statement timeouts", readers, elapsed)
	}
	if got, err := s.GetSecret(t.Context(), "tenant", "k"); err != nil || string(got.Ciphertext) != "v" {
		t.Errorf("GetSecret after the lock = %q, %v; want \"v\"", got.Ciphertext, err)
	}
}

// A read whose context ends while it waits behind busy batches returns
// EUNAVAILABLE then, without waiting for them; the others are answered
// when the database answers, and later reads are not stuck behind the
// abandoned one.
func TestStore_QueuedGetHonoursItsContext(t *testing.T) {
	url := pgtest.Start(t)
	s := mustOpen(t, url, postgres.Options{MaxConns: 4}) // one batch in flight
	if err := s.PutSecret(t.Context(), "tenant", "k", neostore.SealedSecret{Ciphertext: []byte("v")}, neostore.Change{}); err != nil {
		t.Fatal(err)
	}
	release := lockSecrets(t, url)
	const blocked = 8
	errs := make(chan error, blocked)
	for range blocked {
		go func() {
			_, err := s.GetSecret(t.Context(), "tenant", "k")
			errs <- err
		}()
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.GetSecret(ctx, "tenant", "k")
	if got := neostore.ErrorCode(err); got != neostore.EUNAVAILABLE {
		t.Errorf("GetSecret with a 200ms context behind the lock: code %q (err %v), want %q", got, err, neostore.EUNAVAILABLE)
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("GetSecret with a 200ms context returned after %v", elapsed)
	}
	release()
	for range blocked {
		select {
		case err := <-errs:
			if err != nil {
				t.Errorf("GetSecret released from the lock: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a GetSecret behind the released lock did not return within 10s")
		}
	}
	for range 10 {
		if got, err := s.GetSecret(t.Context(), "tenant", "k"); err != nil || string(got.Ciphertext) != "v" {
			t.Fatalf("GetSecret after the lock = %q, %v; want \"v\"", got.Ciphertext, err)
		}
	}
}
