package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// ProblemKind classifies what Verify found wrong with a trail.
type ProblemKind string

// The problems Verify reports.
const (
	// Altered: a line that is not a record sealed with the key (a changed
	// byte, a forged record, a chain recomputed with another key).
	Altered ProblemKind = "altered"
	// Removed: records missing from the middle of a chain.
	Removed ProblemKind = "removed"
	// Inserted: a line that does not belong where it is: a forged line
	// between records that chain to each other, a copy of a record, or a
	// record from another history of the same chain.
	Inserted ProblemKind = "inserted"
	// Reordered: records present but out of order.
	Reordered ProblemKind = "reordered"
	// Truncated: the trail ends before where its checkpoint says it reached,
	// or differs from the checkpoint at that point. A trail that merely ends
	// in a partial line is not a problem but a Report.TornTail.
	Truncated ProblemKind = "truncated"
)

// Problem is the first thing wrong with a trail. Line is 1-based; for a
// chain that ends too early it is the last line of the last file.
type Problem struct {
	Kind   ProblemKind
	File   string
	Line   int
	Node   string // empty when the line is not readable as a record
	Seq    uint64 // the record's sequence number, when readable
	Detail string
}

// Error describes the problem; it quotes no record content.
func (p *Problem) Error() string {
	return fmt.Sprintf("%s:%d: %s: %s", p.File, p.Line, p.Kind, p.Detail)
}

// Report summarizes a verified trail.
type Report struct {
	Records int     // records read before Verify stopped
	Chains  []Chain // one per node, in order of first appearance

	// TornTail, when set, is a last line cut short with no newline, after
	// records that all verify: a write interrupted by a crash. Its record
	// was never acknowledged (a Trail releases a caller only once the whole
	// line is written), or, journaled by the embedded store, is written back
	// at the next start; FileSink cuts it then. A complete line that fails
	// its mac is a Problem (Altered) instead, and so is a torn tail that
	// stops short of a checkpoint (Truncated): cutting records that a
	// checkpoint covers is not a crash.
	TornTail *TornTail
}

// TornTail locates a partial last line.
type TornTail struct {
	File  string
	Line  int // 1-based
	Bytes int // its length, without a newline
}

// Chain is the part of one node's chain that Verify read.
type Chain struct {
	Node        string
	First, Last uint64 // sequence numbers; First > 1 when older files are gone
	LastHash    []byte // SHA-256 of the line of Last
}

// Verify checks the audit files at paths, read in that order as one stream
// (for a rotated file use RotatedFiles: oldest first), against key and the
// checkpoints (at most one per node; may be nil). It returns a *Problem
// error describing the first record that was altered, removed, inserted or
// reordered, or a cut tail; any other error is a failure to read. A chain
// may start past seq 1 (its older files rotated away); records of several
// nodes may be interleaved (merged logs), each node's chain checked alone.
func Verify(paths []string, key []byte, checkpoints []Checkpoint) (Report, error) {
	v, err := newVerifier(key, checkpoints)
	if err != nil {
		return Report{}, err
	}
	for i, path := range paths {
		f, err := os.Open(path)
		if err != nil {
			return v.report(), fmt.Errorf("audit: open file: %w", err)
		}
		err = v.read(f, path, i == len(paths)-1)
		f.Close()
		if err != nil || v.stop {
			return v.finish(err)
		}
	}
	return v.finish(nil)
}

// VerifyReader is Verify over one stream, named name in problems.
func VerifyReader(r io.Reader, name string, key []byte, checkpoints []Checkpoint) (Report, error) {
	v, err := newVerifier(key, checkpoints)
	if err != nil {
		return Report{}, err
	}
	return v.finish(v.read(r, name, true))
}

type chainState struct {
	Chain
	hash [sha256.Size]byte
	line int // where Last was read, for messages
	file string
}

// suspect is a problem whose kind depends on what follows it.
type suspect struct {
	Problem
	kind     int    // suspectMAC or suspectGap
	from, to uint64 // suspectGap: the missing sequence numbers
}

const (
	suspectMAC = iota // a line that fails its mac: inserted if the next record chains past it
	suspectGap        // a seq jump: reordered if a missing record turns up later
)

type verifier struct {
	sealer  *sealer
	chains  map[string]*chainState
	order   []string
	ckpts   map[string]Checkpoint
	records int
	problem *Problem
	pending *suspect
	stop    bool
	torn    *TornTail
	lastLen int // bytes of the line being checked
	buf     []byte
	last    struct {
		file string
		line int
	}
}

func newVerifier(key []byte, checkpoints []Checkpoint) (*verifier, error) {
	if len(key) == 0 {
		return nil, errors.New("audit: no key")
	}
	v := &verifier{sealer: newSealer(key), chains: map[string]*chainState{}, ckpts: map[string]Checkpoint{}}
	for _, c := range checkpoints {
		if len(c.Hash) != sha256.Size {
			return nil, fmt.Errorf("audit: checkpoint of node %q has no SHA-256 hash", c.Node)
		}
		if _, dup := v.ckpts[c.Node]; dup {
			return nil, fmt.Errorf("audit: two checkpoints for node %q", c.Node)
		}
		v.ckpts[c.Node] = c
	}
	return v, nil
}

// read checks every line of r; last says whether r ends the trail.
func (v *verifier) read(r io.Reader, name string, last bool) error {
	br := bufio.NewReaderSize(r, 64<<10)
	v.last.file, v.last.line = name, 0
	for n := 1; !v.stop; n++ {
		line, terminated, tooLong, err := readLine(br, v.buf)
		if err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("audit: read %s: %w", name, err)
		}
		v.buf = line[:0]
		v.last.file, v.last.line = name, n
		torn := last && !terminated
		v.lastLen = len(line)
		if tooLong {
			line = nil // not a record; let it fail as one
		}
		v.check(line, name, n, torn)
	}
	return nil
}

// readLine returns the next line of br without its newline, reusing buf.
// A line longer than maxLine is consumed and reported as tooLong.
func readLine(br *bufio.Reader, buf []byte) (line []byte, terminated, tooLong bool, err error) {
	buf = buf[:0]
	for {
		frag, err := br.ReadSlice('\n')
		if len(buf)+len(frag) <= maxLine {
			buf = append(buf, frag...)
		} else {
			tooLong = true
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF:
			if len(buf) == 0 && !tooLong {
				return buf, false, false, io.EOF
			}
			return buf, false, tooLong, nil
		case err != nil:
			return buf, false, tooLong, err
		}
		if !tooLong {
			buf = buf[:len(buf)-1]
		}
		return buf, true, tooLong, nil
	}
}

// check verifies one line.
// recordStart is how every line a Trail writes begins. A write cut short by
// a crash leaves a prefix of such a line; a last fragment that does not
// begin so was not torn from a record, and is checked as a line.
const recordStart = `{"time":"`

// tornRecord reports whether a partial last line can be what is left of a
// record the Trail was writing.
func tornRecord(line []byte) bool {
	n := min(len(line), len(recordStart))
	return n > 0 && string(line[:n]) == recordStart[:n]
}

func (v *verifier) check(line []byte, file string, n int, torn bool) {
	at := Problem{File: file, Line: n}
	l, perr := ParseLine(line)
	if perr == nil {
		at.Node, at.Seq = l.Node, l.Seq
	}
	macOK := perr == nil && v.sealer.verify(line)

	if v.pending != nil {
		v.resolve(&l, macOK)
		return
	}
	if !macOK {
		if torn && tornRecord(line) {
			v.torn, v.stop = &TornTail{File: file, Line: n, Bytes: v.lastLen}, true
			return
		}
		s := &suspect{Problem: at, kind: suspectMAC}
		if perr != nil {
			s.Detail = "the line is not a record"
		} else {
			s.Detail = "the mac does not verify"
		}
		v.pending = s
		return
	}

	v.records++
	hash := sha256.Sum256(line)
	c := v.chains[l.Node]
	switch {
	case c == nil:
		c = &chainState{Chain: Chain{Node: l.Node, First: l.Seq}}
		v.chains[l.Node] = c
		v.order = append(v.order, l.Node)
	case l.Seq == c.Last+1 && l.prevHash() == c.hash:
	case l.Seq == c.Last+1:
		at.Kind = Inserted
		at.Detail = fmt.Sprintf("seq %d does not chain to seq %d at %s:%d (another history of the chain)", l.Seq, c.Last, c.file, c.line)
		v.problem, v.stop = &at, true
		return
	case l.Seq > c.Last+1:
		at.Detail = fmt.Sprintf("seq %d follows seq %d", l.Seq, c.Last)
		v.pending = &suspect{Problem: at, kind: suspectGap, from: c.Last + 1, to: l.Seq - 1}
		return
	default:
		at.Kind = Inserted
		if l.Seq == c.Last && hash == c.hash {
			at.Detail = fmt.Sprintf("a copy of the record at %s:%d", c.file, c.line)
		} else {
			at.Detail = fmt.Sprintf("seq %d again, after seq %d", l.Seq, c.Last)
		}
		v.problem, v.stop = &at, true
		return
	}
	if ck, ok := v.ckpts[l.Node]; ok && ck.Seq == l.Seq && !bytes.Equal(ck.Hash, hash[:]) {
		at.Kind = Truncated
		at.Detail = fmt.Sprintf("seq %d differs from the checkpoint: the trail was cut at or before it and written again", l.Seq)
		v.problem, v.stop = &at, true
		return
	}
	c.Last, c.hash, c.file, c.line = l.Seq, hash, file, n
}

// resolve decides the kind of the pending problem from a later line.
func (v *verifier) resolve(l *Line, macOK bool) {
	p := v.pending
	switch p.kind {
	case suspectMAC:
		// The line after the bad one decides: if it chains to the record
		// before the bad one, the bad line was put in between; otherwise the
		// bad line stands where a genuine record was.
		p.Kind = Altered
		if macOK && (p.Node == "" || p.Node == l.Node) {
			c := v.chains[l.Node]
			if c != nil && l.Seq == c.Last+1 && l.prevHash() == c.hash {
				p.Kind = Inserted
				p.Detail += "; the records around it chain to each other"
			}
		}
		v.problem, v.stop, v.pending = &p.Problem, true, nil
	case suspectGap:
		// Keep reading: if a missing record turns up later, the records were
		// moved, not removed.
		if macOK && l.Node == p.Node && l.Seq >= p.from && l.Seq <= p.to {
			p.Kind = Reordered
			p.Detail += fmt.Sprintf("; seq %d comes later, at %s:%d", l.Seq, v.last.file, v.last.line)
			v.problem, v.stop, v.pending = &p.Problem, true, nil
		}
	}
}

// finish settles a pending problem and checks the checkpoints.
func (v *verifier) finish(err error) (Report, error) {
	if err != nil {
		return v.report(), err
	}
	if p := v.pending; p != nil {
		switch p.kind {
		case suspectMAC:
			p.Kind = Altered
		case suspectGap:
			p.Kind = Removed
			if p.from == p.to {
				p.Detail = fmt.Sprintf("record %d of node %s is missing before seq %d", p.from, p.Node, p.Seq)
			} else {
				p.Detail = fmt.Sprintf("records %d to %d of node %s are missing before seq %d", p.from, p.to, p.Node, p.Seq)
			}
		}
		v.problem, v.pending = &p.Problem, nil
	}
	if v.problem == nil {
		for _, ck := range sortedCheckpoints(v.ckpts) {
			c := v.chains[ck.Node]
			at := &Problem{Kind: Truncated, File: v.last.file, Line: v.last.line, Node: ck.Node}
			switch {
			case c == nil:
				at.Detail = fmt.Sprintf("no record of node %s, but its checkpoint is at seq %d", ck.Node, ck.Seq)
			case c.Last < ck.Seq:
				at.Seq = c.Last
				at.Detail = fmt.Sprintf("node %s ends at seq %d, but its checkpoint is at seq %d", ck.Node, c.Last, ck.Seq)
			default:
				continue // reached: its hash was compared on the way
			}
			v.problem = at
			break
		}
	}
	if v.problem != nil {
		return v.report(), v.problem
	}
	return v.report(), nil
}

func (v *verifier) report() Report {
	r := Report{Records: v.records, TornTail: v.torn}
	for _, n := range v.order {
		c := v.chains[n]
		ch := c.Chain
		ch.LastHash = bytes.Clone(c.hash[:])
		r.Chains = append(r.Chains, ch)
	}
	return r
}

func sortedCheckpoints(m map[string]Checkpoint) []Checkpoint {
	out := make([]Checkpoint, 0, len(m))
	for _, c := range m {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Checkpoint) int { return strings.Compare(a.Node, b.Node) })
	return out
}
