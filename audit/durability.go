package audit

import (
	"fmt"
	"time"

	"github.com/neostore/neostore-secrets"
)

// Durability says how durable a record is when Audit returns.
type Durability int

const (
	// GroupSync, the default, returns once the record is fsync'd; the records
	// of concurrent callers share one write and one fsync. A crash loses no
	// record whose Audit returned.
	GroupSync Durability = iota
	// EverySync fsyncs after each record. Same promise as GroupSync, at one
	// fsync per record. It stays for what a failed fsync costs: GroupSync
	// refuses every record of the batch the failed fsync covered, EverySync
	// only the record in flight and those queued behind it, having released
	// each earlier one as soon as it was synced; and for sinks or disks
	// where batching is not wanted.
	EverySync
	// NoSync returns once the record is handed to the operating system. A
	// process crash loses nothing; an OS crash or power loss loses what the
	// OS had not yet written back (on Linux typically up to 30 s), except
	// that the sink is synced before every checkpoint is saved.
	NoSync
	// WriteSync returns once a record of a change (anything but a read:
	// secret.put, secret.delete, API-key and key operations) is fsync'd,
	// like GroupSync, and once a record of a read is handed to the
	// operating system; read records are fsync'd with the next change's
	// batch or within ReadSyncDelay, whichever comes first. A process crash
	// loses nothing; an OS crash or power loss can lose the records of the
	// reads of the last ReadSyncDelay, never the record of a change. Reads
	// then cost no fsync wait, which is most of a read's latency. With a
	// Config.Journal, a change's record is made durable by the store's
	// commit instead of an fsync of the sink (AuditChange, Durable).
	WriteSync
)

// ReadSyncDelay bounds how long a read's record may stay unsynced under
// WriteSync.
const ReadSyncDelay = 10 * time.Millisecond

// isRead reports whether op only reads: under WriteSync its record is not
// waited for until fsync'd.
func isRead(op string) bool {
	switch op {
	case neostore.OpSecretGet, neostore.OpSecretList, neostore.OpAPIKeyList, neostore.OpUnknownRoute:
		return true
	}
	return false
}

// String returns the name ParseDurability reads.
func (d Durability) String() string {
	switch d {
	case GroupSync:
		return "group"
	case EverySync:
		return "every"
	case NoSync:
		return "none"
	case WriteSync:
		return "writes"
	}
	return fmt.Sprintf("Durability(%d)", int(d))
}

// ParseDurability reads "group", "every", "none" or "writes" (see Durability).
func ParseDurability(s string) (Durability, error) {
	for _, d := range []Durability{GroupSync, EverySync, NoSync, WriteSync} {
		if s == d.String() {
			return d, nil
		}
	}
	return 0, fmt.Errorf("audit: unknown durability %q (want group, every, none or writes)", s)
}
