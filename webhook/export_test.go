package webhook

import "time"

// SetDueBatch makes d's due scan read n entries at a time, so that a test
// can cross a batch's end with a few secrets.
func SetDueBatch(d *Dispatcher, n int) { d.dueBatch = n }

// SetPoll makes d's Run poll every p when idle, so that a test can tell
// the passes the poll makes from those that work or Notify make.
func SetPoll(d *Dispatcher, p time.Duration) { d.poll = p }
