package webhook

import (
	"math/rand/v2"
	"time"
)

// The retry schedule: full jitter over an exponential ceiling that starts
// at baseBackoff and doubles per attempt up to maxBackoff.
const (
	baseBackoff = 5 * time.Second
	maxBackoff  = time.Hour
)

// DefaultRetryFor is how long after its creation a delivery is retried
// before it is kept as failed.
const DefaultRetryFor = 24 * time.Hour

// backoff returns the wait before the next attempt of a delivery that has
// failed attempts times (1 for the first): a random wait in [0, ceiling]
// drawn by jitter, where the ceiling is baseBackoff doubled per attempt and
// capped at maxBackoff, and at least retryAfter (itself capped).
func backoff(attempts int, retryAfter time.Duration, jitter func(time.Duration) time.Duration) time.Duration {
	ceiling := baseBackoff
	for i := 1; i < attempts && ceiling < maxBackoff; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, maxBackoff)
	d := min(max(jitter(ceiling), 0), ceiling)
	return max(d, min(retryAfter, maxBackoff))
}

// fullJitter is the default jitter: uniform in [0, d].
func fullJitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d + 1)
}
