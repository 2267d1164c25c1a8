package neostore

import "context"

// Change is what must commit with a change to the store, in the change's
// own transaction, passed to the store's write methods as an argument: the
// change's audit entry and its notification event. The zero Change carries
// nothing.
type Change struct {
	// Audit, when set, is the sealed line of the change's audit record
	// (ChangeAuditor.AuditChange). A store commits it with the change and
	// calls its Committed, or refuses the change.
	Audit *AuditEntry

	// Notice, when set, asks the store to record the change's event in its
	// notification outbox in the change's transaction (see ChangeNotice).
	// Every store can: unlike Audit, it needs no ChangeJournal.
	Notice *ChangeNotice
}

// Records reports whether c carries an audit entry the store must commit
// through its ChangeJournal.
func (c Change) Records() bool { return c.Audit != nil && c.Audit.Line != nil }

// ChangeJournal reads back the audit entries a store committed with its
// changes (Change.Audit), so that the trail can write back the lines its
// sink lost (an OS crash before the sink's fsync).
type ChangeJournal interface {
	// JournaledLines returns node's journaled lines with a sequence number
	// above after, in order of sequence number.
	JournaledLines(ctx context.Context, node string, after uint64) ([][]byte, error)
}

// ErrChangeRecords is returned by the write methods of a store that cannot
// commit a change's records in the change's own transaction (its
// ChangeJournal is nil) when it is given a Change that carries some. The
// change is not made.
var ErrChangeRecords = Errorf(EINTERNAL, "Internal error.")
