package main

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
)

// absent is the version of a key that holds no value: never written, or
// deleted. Written values have versions 1, 2, ... per key.
const absent = 0

// keyModel is what the driver knows about one key. One writer owns a key and
// sends its operations one after another, so their order is the order they
// were sent in. An operation whose answer never came (the kill cut it off)
// may or may not have happened; so may every such operation sent after the
// last acknowledged one, and the key may hold the outcome of any of them.
type keyModel struct {
	tenant   string
	name     string
	acked    int64   // outcome of the last acknowledged operation: a version, or absent
	inFlight []int64 // outcomes of operations sent after it and not acknowledged, in order
	issued   int64   // highest version ever sent for this key
	// ops is every operation ever sent for the key, in order, for the
	// webhook check (webhook.go): unlike inFlight, settle keeps it.
	ops []sentOp
}

// sentOp is one operation sent for a key: a PUT or a DELETE, answered 204
// or not.
type sentOp struct {
	del   bool
	acked bool
}

// nextVersion returns the version the next PUT of the key writes.
func (m *keyModel) nextVersion() int64 {
	m.issued++
	return m.issued
}

// send records that an operation with this outcome (a version for a PUT,
// absent for a DELETE) is about to be sent.
func (m *keyModel) send(outcome int64) {
	m.inFlight = append(m.inFlight, outcome)
	m.ops = append(m.ops, sentOp{del: outcome == absent})
}

// ack records that the operation sent last was acknowledged: everything
// sent before it is settled by it.
func (m *keyModel) ack() {
	m.acked = m.inFlight[len(m.inFlight)-1]
	m.inFlight = m.inFlight[:0]
	m.ops[len(m.ops)-1].acked = true
}

// verdict is the checker's judgement of what a key holds after a restart.
type verdict int

const (
	verdictOK      verdict = iota // the last acknowledged outcome, or one of the unanswered ones after it
	verdictLost                   // an acknowledged PUT's value is gone: the key is empty or holds an older version
	verdictRevived                // an acknowledged DELETE's key holds a value again, with no later PUT to explain it
	verdictCorrupt                // the key holds a value the driver never sent for it
)

func (v verdict) String() string {
	return [...]string{"ok", "lost", "revived", "corrupt"}[v]
}

// judge says whether observed, the version the key holds after a restart
// (absent when it holds none, -1 when its value is not one the driver
// writes), is a state the acknowledged and unanswered operations allow.
func (m *keyModel) judge(observed int64) verdict {
	switch {
	case observed == m.acked || slices.Contains(m.inFlight, observed):
		return verdictOK
	case observed < 0 || observed > m.issued:
		return verdictCorrupt
	case m.acked == absent:
		return verdictRevived
	default:
		return verdictLost
	}
}

// settle makes observed the key's known state, after judge: the next cycle
// is judged against what the store holds, so one fault is counted once.
func (m *keyModel) settle(observed int64) {
	m.acked = max(observed, absent)
	m.inFlight = m.inFlight[:0]
}

// value is the value a PUT of version ver of key writes: the key and the
// version, so the checker can tell what it reads back, and padding whose
// length and letter follow from both, so that a value cut short or mixed
// with another shows. About one value in eight is larger than a bbolt page.
func value(key string, ver int64) string {
	h := fnv.New32a()
	fmt.Fprintf(h, "%s:%d", key, ver)
	n := int(h.Sum32() % 2000)
	if h.Sum32()%8 == 0 {
		n += 5000
	}
	return key + ":" + strconv.FormatInt(ver, 10) + ":" + strings.Repeat(string(rune('a'+ver%26)), n)
}

// parseValue returns the version a value read back for key encodes, or -1
// when it is not a value the driver wrote for that key.
func parseValue(key, v string) int64 {
	rest, ok := strings.CutPrefix(v, key+":")
	if !ok {
		return -1
	}
	num, _, ok := strings.Cut(rest, ":")
	if !ok {
		return -1
	}
	ver, err := strconv.ParseInt(num, 10, 64)
	if err != nil || ver <= 0 || value(key, ver) != v {
		return -1
	}
	return ver
}
