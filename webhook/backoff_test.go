package webhook

import (
	"testing"
	"time"

	"github.com/neostore/neostore-secrets"
)

func ceilingJitter(d time.Duration) time.Duration { return d }
func zeroJitter(time.Duration) time.Duration      { return 0 }

func TestBackoff_ScheduleAndCap(t *testing.T) {
	want := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second,
		160 * time.Second, 320 * time.Second, 640 * time.Second, 1280 * time.Second, 2560 * time.Second, time.Hour, time.Hour}
	for i, w := range want {
		if got := backoff(i+1, 0, ceilingJitter); got != w {
			t.Errorf("attempt %d: ceiling %v, want %v", i+1, got, w)
		}
	}
	if got := backoff(1000, 0, ceilingJitter); got != time.Hour {
		t.Errorf("attempt 1000: %v, want the 1h cap", got)
	}
	if got := backoff(3, 0, zeroJitter); got != 0 {
		t.Errorf("zero jitter: %v, want 0", got)
	}
	// A jitter source that misbehaves is held inside [0, ceiling].
	if got := backoff(1, 0, func(time.Duration) time.Duration { return time.Hour * 5 }); got != 5*time.Second {
		t.Errorf("oversized jitter: %v, want 5s", got)
	}
}

func TestBackoff_FullJitterRange(t *testing.T) {
	seen := map[bool]bool{}
	for range 2000 {
		got := backoff(3, 0, fullJitter)
		if got < 0 || got > 20*time.Second {
			t.Fatalf("backoff(3) = %v, outside [0, 20s]", got)
		}
		seen[got < 10*time.Second] = true
	}
	if !seen[true] || !seen[false] {
		t.Fatal("full jitter does not spread over the range")
	}
}

func TestBackoff_RetryAfterIsAMinimum(t *testing.T) {
	if got := backoff(1, 2*time.Minute, ceilingJitter); got != 2*time.Minute {
		t.Errorf("Retry-After 2m over a 5s ceiling: %v", got)
	}
	if got := backoff(10, time.Minute, ceilingJitter); got != 2560*time.Second {
		t.Errorf("Retry-After below the drawn wait: %v, want the wait", got)
	}
	if got := backoff(1, 5*time.Hour, zeroJitter); got != time.Hour {
		t.Errorf("Retry-After 5h: %v, want the 1h cap", got)
	}
}

func TestSettle(t *testing.T) {
	created := date("2099-01-01T00:00:00Z")
	pending := neostore.Delivery{ID: "dlv_x", State: neostore.DeliveryPending, CreatedAt: created, NextAttemptAt: created, Attempts: 1}
	t.Run("RetryScheduled", func(t *testing.T) {
		now := created.Add(time.Minute)
		got, r := settle(pending, Outcome{Result: Retry, Status: 503, Error: "retryable status", RetryAfter: 30 * time.Second}, now, 24*time.Hour, zeroJitter)
		if r != Retry || got.State != neostore.DeliveryPending || !got.NextAttemptAt.Equal(now.Add(30*time.Second)) || got.FinishedAt.Set {
			t.Fatalf("got %v %+v, want pending at now+30s (Retry-After)", r, got)
		}
	})
	t.Run("RetryForCutOff", func(t *testing.T) {
		now := created.Add(24*time.Hour - time.Minute)
		d := pending
		d.Attempts = 20
		got, r := settle(d, Outcome{Result: Retry, Error: "timeout"}, now, 24*time.Hour, ceilingJitter)
		if r != Failed || got.State != neostore.DeliveryFailed || got.LastError != "out of retries: timeout" || got.FinishedAt != neostore.At(now) {
			t.Fatalf("got %v %+v, want failed, out of retries", r, got)
		}
		// Inside the window it stays pending.
		got, r = settle(d, Outcome{Result: Retry, Error: "timeout"}, now, 24*time.Hour, zeroJitter)
		if r != Retry || got.State != neostore.DeliveryPending {
			t.Fatalf("a retry due before the cut-off: %v %+v", r, got)
		}
	})
	for _, tt := range []struct {
		o     Outcome
		state neostore.DeliveryState
	}{
		{Outcome{Result: Delivered, Status: 200}, neostore.DeliveryDelivered},
		{Outcome{Result: Failed, Status: 400, Error: "final status"}, neostore.DeliveryFailed},
		{Outcome{Result: Disabled, Status: 410, Error: "endpoint gone"}, neostore.DeliveryFailed},
	} {
		now := created.Add(time.Second)
		got, r := settle(pending, tt.o, now, 24*time.Hour, zeroJitter)
		if r != tt.o.Result || got.State != tt.state || got.FinishedAt != neostore.At(now) || got.LastError != tt.o.Error {
			t.Errorf("%v: got %v %+v, want %s, finished", tt.o, r, got, tt.state)
		}
	}
}
