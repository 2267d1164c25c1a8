package audit

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/neostore/neostore-secrets"
)

// A record line is one JSON object, its fields always in this order:
//
//	{"time":…,"node":…,"seq":…,<the AuditRecord fields>,"prev":…,"mac":…}
//
// The mac is HMAC-SHA256 under the audit key over the line as it would read
// without its mac field: everything before `,"mac":` followed by `}`. It is
// computed over those exact bytes, not over a re-encoding, so verification
// does not depend on how a JSON encoder escapes. prev is SHA-256 of the whole
// previous line of the same node (mac included, newline excluded).

// timeLayout is RFC 3339 with all nine fractional digits, so that the times
// of a file sort as text.
const timeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// maxField bounds every free-text field of a record (a user agent, a key
// name refused as invalid), so that one request cannot make a record huge.
const maxField = 1024

// maxLine bounds a line that Verify and Search read; records are far shorter.
const maxLine = 1 << 20

const (
	macPrefix    = `,"mac":"`
	macSuffixLen = len(macPrefix) + 2*sha256.Size + len(`"}`)
)

// body is the part of a line that comes from the AuditRecord. Its field
// order is the order on disk.
type body struct {
	TraceID    string                  `json:"traceId,omitempty"`
	Op         string                  `json:"op"`
	Tenant     string                  `json:"tenant,omitempty"`
	Key        string                  `json:"key,omitempty"`
	Principal  neostore.AuditPrincipal `json:"principal"`
	Status     int                     `json:"status"`
	ErrorCode  string                  `json:"errorCode,omitempty"`
	ClientAddr string                  `json:"clientAddr,omitempty"`
	UserAgent  string                  `json:"userAgent,omitempty"`
	DurationNs int64                   `json:"durationNs"`
}

// wire is a whole line, for decoding.
type wire struct {
	Time string `json:"time"`
	Node string `json:"node"`
	Seq  uint64 `json:"seq"`
	body
	Prev string `json:"prev"`
	MAC  string `json:"mac"`
}

// encodeBody returns the AuditRecord fields of r as JSON members, without
// the enclosing braces. Callers run it on their own goroutine, so the single
// writer only splices bytes.
func encodeBody(r *neostore.AuditRecord) ([]byte, error) {
	return appendBody(make([]byte, 0, 256+len(r.UserAgent)), r), nil
}

// appendBody appends what encodeBody returns to b, so that a caller can
// reuse a buffer.
func appendBody(b []byte, r *neostore.AuditRecord) []byte {
	// Hand-written: encoding/json's reflection was a tenth of the audit
	// trail's cost on the request path. TestEncodeBody_MatchesEncodingJSON
	// holds the output byte-identical to json.Marshal of body.
	p := &r.Principal
	var sep byte // none before an object's first member
	field := func(name, v string, omitEmpty bool) {
		v = clip(v) // before the empty test: a clipped value can be empty
		if omitEmpty && v == "" {
			return
		}
		if sep != 0 {
			b = append(b, sep)
		}
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, '"', ':')
		b = appendJSONString(b, v)
		sep = ','
	}
	field("traceId", r.TraceID, true)
	field("op", r.Op, false)
	field("tenant", r.Tenant, true)
	field("key", r.Key, true)
	b = append(b, `,"principal":{`...)
	sep = 0
	field("kind", p.Kind, false)
	field("id", p.ID, true)
	field("name", p.Name, true)
	field("issuer", p.Issuer, true)
	field("sub", p.Subject, true)
	field("clientId", p.ClientID, true)
	b = append(b, '}')
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(r.Status), 10)
	sep = ','
	field("errorCode", r.ErrorCode, true)
	field("clientAddr", r.ClientAddr, true)
	field("userAgent", r.UserAgent, true)
	b = append(b, `,"durationNs":`...)
	b = strconv.AppendInt(b, int64(r.Duration), 10)
	return b // without braces, as the line builder expects
}

// stamper formats record times as timeLayout in UTC. The date and second
// are formatted once per second and reused: time.AppendFormat was 2.5% of
// a GET's CPU. Safe for concurrent use.
type stamper struct{ last atomic.Pointer[stampedSecond] }

type stampedSecond struct {
	unix int64
	text []byte // "2006-01-02T15:04:05."
}

func (s *stamper) append(dst []byte, t time.Time) []byte {
	t = t.UTC()
	if y := t.Year(); y < 1000 || y > 9999 {
		return t.AppendFormat(dst, timeLayout) // not the fixed width the cache assumes
	}
	sec := t.Unix()
	p := s.last.Load()
	if p == nil || p.unix != sec {
		p = &stampedSecond{unix: sec, text: t.AppendFormat(nil, "2006-01-02T15:04:05.")}
		s.last.Store(p)
	}
	dst = append(dst, p.text...)
	var digits [9]byte
	ns := t.Nanosecond()
	for i := len(digits) - 1; i >= 0; i-- {
		digits[i] = byte('0' + ns%10)
		ns /= 10
	}
	dst = append(dst, digits[:]...)
	return append(dst, 'Z')
}

// appendJSONString appends s as encoding/json writes a string: HTML-safe
// escapes for <, > and &, \u2028 and \u2029 escaped, invalid UTF-8 as
// U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// clip cuts s to at most maxField bytes on a rune boundary.
func clip(s string) string {
	if len(s) <= maxField {
		return s
	}
	i := maxField
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

// sealer builds and checks lines with the audit key. It is not safe for
// concurrent use.
type sealer struct {
	mac hash.Hash
	sum [sha256.Size]byte
}

func newSealer(key []byte) *sealer {
	return &sealer{mac: hmac.New(sha256.New, key)}
}

// seal appends to dst the line of the record with the given time, node (a
// JSON string), seq and body, chained to prev, with its newline.
func (s *sealer) seal(dst []byte, ts []byte, node []byte, seq uint64, b []byte, prev *[sha256.Size]byte) []byte {
	dst = append(dst, `{"time":"`...)
	dst = append(dst, ts...)
	dst = append(dst, `","node":`...)
	dst = append(dst, node...)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, ',')
	dst = append(dst, b...)
	dst = append(dst, `,"prev":"`...)
	dst = hex.AppendEncode(dst, prev[:])
	dst = append(dst, `"}`...)
	s.mac.Reset()
	s.mac.Write(dst)
	mac := s.mac.Sum(s.sum[:0])
	dst = dst[:len(dst)-1]
	dst = append(dst, macPrefix...)
	dst = hex.AppendEncode(dst, mac)
	dst = append(dst, `"}`...)
	return append(dst, '\n')
}

// verify reports whether line (without newline) carries a valid mac.
func (s *sealer) verify(line []byte) bool {
	if len(line) < macSuffixLen+2 {
		return false
	}
	signed, suffix := line[:len(line)-macSuffixLen], line[len(line)-macSuffixLen:]
	if !bytes.HasPrefix(suffix, []byte(macPrefix)) || !bytes.HasSuffix(suffix, []byte(`"}`)) {
		return false
	}
	hexMAC := suffix[len(macPrefix) : len(suffix)-2]
	if !isLowerHex(hexMAC) {
		return false // the writer emits lowercase; another spelling is an edit
	}
	var want [sha256.Size]byte
	if _, err := hex.Decode(want[:], hexMAC); err != nil {
		return false
	}
	s.mac.Reset()
	s.mac.Write(signed)
	s.mac.Write([]byte{'}'})
	return hmac.Equal(s.mac.Sum(s.sum[:0]), want[:])
}

func isLowerHex(b []byte) bool {
	for _, c := range b {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Line is one record of the trail as read back from a sink.
type Line struct {
	Node   string
	Seq    uint64
	Record neostore.AuditRecord // Time is in UTC
	Prev   string               // hex SHA-256 of the previous line of Node
	MAC    string               // hex HMAC-SHA256 over the line without its mac
	Raw    []byte               // the exact line, without its newline
	File   string               // where it was read, when read from a file
	LineNo int                  // 1-based line number within File
}

// ParseLine decodes one record line (without its newline). It checks the
// shape of the record, not its mac: that takes the key (see Verify).
func ParseLine(b []byte) (Line, error) {
	var w wire
	if err := json.Unmarshal(b, &w); err != nil {
		return Line{}, errors.New("audit: not a JSON record")
	}
	t, err := time.Parse(time.RFC3339Nano, w.Time)
	switch {
	case err != nil:
		return Line{}, errors.New("audit: record time is not RFC 3339")
	case w.Node == "":
		return Line{}, errors.New("audit: record has no node")
	case w.Seq == 0:
		return Line{}, errors.New("audit: record has no seq")
	case len(w.Prev) != 2*sha256.Size || !isLowerHex([]byte(w.Prev)):
		return Line{}, errors.New("audit: record prev is not a SHA-256 in hex")
	case len(w.MAC) != 2*sha256.Size || !isLowerHex([]byte(w.MAC)):
		return Line{}, errors.New("audit: record mac is not a SHA-256 in hex")
	}
	return Line{
		Node: w.Node,
		Seq:  w.Seq,
		Record: neostore.AuditRecord{
			Time:       t.UTC(),
			TraceID:    w.TraceID,
			Op:         w.Op,
			Tenant:     w.Tenant,
			Key:        w.Key,
			Principal:  w.Principal,
			Status:     w.Status,
			ErrorCode:  w.ErrorCode,
			ClientAddr: w.ClientAddr,
			UserAgent:  w.UserAgent,
			Duration:   time.Duration(w.DurationNs),
		},
		Prev: w.Prev,
		MAC:  w.MAC,
		Raw:  b,
	}, nil
}

// prevHash decodes l.Prev; ParseLine has checked its shape.
func (l *Line) prevHash() (h [sha256.Size]byte) {
	hex.Decode(h[:], []byte(l.Prev))
	return h
}

// quoteJSON returns s as a JSON string.
func quoteJSON(s string) []byte {
	b, _ := json.Marshal(s) // a string always marshals
	return b
}
