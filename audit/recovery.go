package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/neostore/neostore-secrets"
)

// Recovery: where a reopened trail continues its chain. It runs in Open,
// before the writer goroutine starts, and sets the writer's chain state.

// resume sets w.seq and w.head from the sink's tail and the checkpoint in
// ck (when set), then writes back what journal holds beyond them.
func (w *writer) resume(ck CheckpointStore, journal neostore.ChangeJournal) error {
	tailer, tailFound, tailSeq, tailHash, err := w.tail()
	if err != nil {
		return err
	}
	ckFound, ckSeq, ckHash, err := loadCheckpoint(ck, w.nodeID)
	if err != nil {
		return err
	}
	switch {
	case tailFound && ckFound && ckSeq > tailSeq:
		// Records the server once wrote are gone from the sink. Continuing
		// from the checkpoint leaves the gap where it happened, for Verify
		// to report.
		w.log.Error("audit: the trail ends before its checkpoint; records are missing",
			"node", w.nodeID, "trailSeq", tailSeq, "checkpointSeq", ckSeq)
		w.seq, w.head = ckSeq, ckHash
	case tailFound && ckFound && ckSeq == tailSeq && ckHash != tailHash:
		w.log.Error("audit: the last record differs from the checkpoint; the trail was rewritten",
			"node", w.nodeID, "seq", tailSeq)
		w.seq, w.head = tailSeq, tailHash
	case tailFound:
		w.seq, w.head = tailSeq, tailHash
	case ckFound:
		if tailer {
			w.log.Error("audit: the trail holds no record of this node but a checkpoint exists; continuing from it",
				"node", w.nodeID, "checkpointSeq", ckSeq)
		}
		w.seq, w.head = ckSeq, ckHash
	}
	if journal != nil {
		return w.restoreJournal(journal)
	}
	return nil
}

// tail returns the sequence number and hash of the last record of this
// node the sink holds, when it is a Tailer that holds one; that record must
// verify with the audit key.
func (w *writer) tail() (tailer, found bool, seq uint64, hash [sha256.Size]byte, err error) {
	tl, ok := w.sink.(Tailer)
	if !ok {
		return false, false, 0, hash, nil
	}
	line, err := tl.Tail(w.nodeID)
	if err != nil {
		return true, false, 0, hash, fmt.Errorf("audit: read the end of the trail: %w", err)
	}
	if line == nil {
		return true, false, 0, hash, nil
	}
	l, err := ParseLine(line)
	if err != nil || !w.sealer.verify(line) {
		return true, false, 0, hash, errors.New("audit: the last record of this node does not verify with the audit key " +
			"(another master key, or an altered trail); run audit verify, and move the file aside to start a new chain")
	}
	return true, true, l.Seq, sha256.Sum256(line), nil
}

// loadCheckpoint returns node's saved checkpoint, when ck is set and holds one.
func loadCheckpoint(ck CheckpointStore, node string) (found bool, seq uint64, hash [sha256.Size]byte, err error) {
	if ck == nil {
		return false, 0, hash, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), checkpointTimeout)
	s, h, ok, err := ck.LoadCheckpoint(ctx, node)
	cancel()
	if err != nil {
		return false, 0, hash, fmt.Errorf("audit: load checkpoint: %w", err)
	}
	if !ok || s == 0 {
		return false, 0, hash, nil
	}
	if len(h) != sha256.Size {
		return false, 0, hash, errors.New("audit: the saved checkpoint has no SHA-256 hash")
	}
	copy(hash[:], h)
	return true, s, hash, nil
}

// restoreJournal writes back, after the chain's end, the lines of changes
// that the store journaled and the sink does not hold: records whose fsync
// had not happened when the machine went down. The records of reads written
// just before them may be lost (WriteSync does not journal reads); a
// journaled line is then written back after the gap, which is logged here
// and reported by Verify as removed records.
func (w *writer) restoreJournal(journal neostore.ChangeJournal) error {
	ctx, cancel := context.WithTimeout(context.Background(), checkpointTimeout)
	defer cancel()
	lines, err := journal.JournaledLines(ctx, w.nodeID, w.seq)
	if err != nil {
		return fmt.Errorf("audit: read the journal: %w", err)
	}
	if len(lines) == 0 {
		return nil
	}
	for _, line := range lines {
		l, err := ParseLine(line)
		if err != nil || l.Node != w.nodeID || l.Seq <= w.seq || !w.sealer.verify(line) {
			return errors.New("audit: a record in the store's journal does not verify with the audit key; refusing to continue the chain")
		}
		if l.Seq != w.seq+1 || l.Prev != hex.EncodeToString(w.head[:]) {
			w.log.Error("audit: records are missing before a journaled change record; writing it back after the gap",
				"node", w.nodeID, "missingFrom", w.seq+1, "missingTo", l.Seq-1)
		}
		if err := w.sink.Write(append(bytes.Clone(line), '\n')); err != nil {
			return fmt.Errorf("audit: write back journaled records: %w", err)
		}
		w.seq, w.head = l.Seq, sha256.Sum256(line)
	}
	if err := w.sink.Sync(); err != nil {
		return fmt.Errorf("audit: write back journaled records: %w", err)
	}
	w.log.Warn("audit: wrote back change records the trail had lost, from the store's journal",
		"node", w.nodeID, "records", len(lines), "lastSeq", w.seq)
	return nil
}
