package webhook_test

import (
	"context"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets/pgtest"
	"github.com/neostore/neostore-secrets/postgres"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// openPostgres opens a store on a fresh database of the test's own.
func openPostgres(t *testing.T) store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := postgres.Open(ctx, pgtest.Start(t), postgres.Options{})
	if err != nil {
		t.Fatalf("postgres.Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestDispatcher_Clock_Postgres(t *testing.T) {
	clockTests(t, openPostgres)
}

func TestDispatcher_FinalStates_Postgres(t *testing.T) {
	finalStateTests(t, openPostgres)
}

func TestDispatcher_More_Postgres(t *testing.T) {
	moreTests(t, openPostgres)
}
