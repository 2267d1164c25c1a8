package metrics

import (
	"context"
	"time"

	"github.com/neostore/neostore-secrets"
)

// The dispatcher's store operations that run on every pass. A conflict is
// their normal outcome when several nodes share the work (a lease lost, a
// scan another node made), so it is timed but not counted as an error.

func (s *instrumented) observeShared(op string, start time.Time, err error) {
	if neostore.ErrorCode(err) == neostore.ECONFLICT {
		err = nil
	}
	s.observe(op, start, err)
}

func (s *instrumented) FanOut(ctx context.Context, seqs []uint64, ds []neostore.Delivery) error {
	start := time.Now()
	err := s.Store.FanOut(ctx, seqs, ds)
	s.observeShared("webhook_fan_out", start, err)
	return err
}

func (s *instrumented) AdvanceDueCursor(ctx context.Context, old neostore.Bound, upTo time.Time, ds []neostore.Delivery) error {
	start := time.Now()
	err := s.Store.AdvanceDueCursor(ctx, old, upTo, ds)
	s.observeShared("webhook_advance_due_cursor", start, err)
	return err
}

func (s *instrumented) LeaseDeliveries(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]neostore.Delivery, error) {
	start := time.Now()
	ds, err := s.Store.LeaseDeliveries(ctx, owner, now, lease, limit)
	s.observeShared("webhook_lease_deliveries", start, err)
	return ds, err
}

func (s *instrumented) CompleteAttempt(ctx context.Context, owner string, d neostore.Delivery) error {
	start := time.Now()
	err := s.Store.CompleteAttempt(ctx, owner, d)
	s.observeShared("webhook_complete_attempt", start, err)
	return err
}
