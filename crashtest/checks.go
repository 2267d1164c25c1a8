package main

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	bolt "go.etcd.io/bbolt"
)

// checkBolt opens the bbolt file read-only, as the kill left it, and runs
// bbolt's own consistency check over every page (Tx.Check).
func checkBolt(path string) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("open %s read-only: %w", path, err)
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
}

// verifyResult classifies what `audit verify` said about the trail.
type verifyResult int

const (
	verifyOK     verifyResult = iota // every chain intact and reaching its checkpoint
	verifyTorn                       // intact but for a partial last line: a write the kill cut short
	verifyFailed                     // anything else: a record altered, removed, inserted, reordered, or the command failed
)

func (r verifyResult) String() string { return [...]string{"ok", "torn", "failed"}[r] }

// tornTail matches what `audit verify` says about a partial last line:
// "the last line is incomplete (a write cut short)", or a report that names
// the torn tail itself.
var tornTail = regexp.MustCompile(`(?i)\btorn\b|last line is incomplete|partial last line`)

// classifyVerify turns the exit code and output of `audit verify` into a
// result. Exit code 1 is the command's "does not verify"; any other failure
// (a usage or configuration error, a crash) is a failed verification too. A
// torn tail counts as such whether verify reports it as a failure or, once
// it tells an unacknowledged torn tail apart, as a success with a note.
func classifyVerify(exitCode int, output string) verifyResult {
	switch {
	case (exitCode == 0 || exitCode == 1) && tornTail.MatchString(output):
		return verifyTorn
	case exitCode == 0:
		return verifyOK
	default:
		return verifyFailed
	}
}
