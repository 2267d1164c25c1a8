package webhook

// SetDueBatch makes d's due scan read n entries at a time, so that a test
// can cross a batch's end with a few secrets.
func SetDueBatch(d *Dispatcher, n int) { d.dueBatch = n }
