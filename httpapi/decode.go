package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/neostore/neostore-secrets"
)

// bodyLimits bounds what a PUT may send.
type bodyLimits struct {
	maxBody  int64 // request body, in bytes as sent
	maxValue int   // secret value, in UTF-8 bytes after JSON unescaping
}

// setRequest is the body of a PUT: {"value": "...", "options":
// {"expiresOn": ..., "notBefore": ...}}.
type setRequest struct {
	value    []byte
	validity neostore.Validity
}

// decode reads and checks the body of a PUT. It returns EUNSUPPORTEDMEDIA
// for a Content-Type other than application/json, text/json or
// application/*+json in UTF-8; ETOOLARGE for a body or value over its
// limit (a declared Content-Length over the limit is refused unread); and
// EINVALID naming the JSON path of the offending field for anything else.
// The validity window and the value's size are checked after it, by
// neostore.NewSecretPut and checkValueSize.
func decode(w http.ResponseWriter, r *http.Request, limits bodyLimits) (setRequest, error) {
	if !jsonContentType(r.Header["Content-Type"]) {
		return setRequest{}, neostore.Errorf(neostore.EUNSUPPORTEDMEDIA, "The request body must be application/json, text/json or application/*+json in UTF-8.")
	}
	tooLarge := neostore.Errorf(neostore.ETOOLARGE, "The request body is larger than %d bytes.", limits.maxBody)
	if r.ContentLength > limits.maxBody {
		return setRequest{}, tooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limits.maxBody))
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return setRequest{}, tooLarge
	} else if err != nil {
		// The client went away or sent a broken chunked body.
		return setRequest{}, neostore.FieldError("$", "The request body could not be read.")
	}
	return decodeSetRequest(body)
}

// checkValueSize returns ETOOLARGE for a value over its limit. The handler
// calls it after neostore.NewSecretPut, so that an empty window is reported
// before a value too large, as when decode checked both.
func checkValueSize(value []byte, limits bodyLimits) error {
	if len(value) > limits.maxValue {
		return neostore.Errorf(neostore.ETOOLARGE, "The value is larger than %d bytes.", limits.maxValue)
	}
	return nil
}

// jsonContentType reports whether the Content-Type header is one that
// ASP.NET Core's JSON input formatter reads: application/json, text/json
// or application/*+json, with no charset or a UTF-8 one.
func jsonContentType(values []string) bool {
	if len(values) != 1 {
		return false
	}
	mt, params, err := mime.ParseMediaType(values[0])
	if err != nil {
		return false
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return false
	}
	// ParseMediaType lower-cases the media type.
	switch {
	case mt == "application/json", mt == "text/json":
		return true
	case strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"):
		return len(mt) > len("application/")+len("+json")
	}
	return false
}

// Messages of decoding errors. They never quote the client's input, but
// for the name of an unknown property (see unknownProperty).
const (
	msgNotUTF8        = "The request body is not valid UTF-8."
	msgEmptyBody      = "A non-empty request body is required."
	msgNotObject      = "The request body must be a JSON object."
	msgSyntax         = "The request body is not valid JSON."
	msgTrailing       = "The request body contains data after the JSON object."
	msgDuplicate      = "The property is given more than once."
	msgValueRequired  = "The value field is required."
	msgValueString    = "The value field must be a string."
	msgSurrogate      = "The string contains an unpaired UTF-16 surrogate escape."
	msgOptionsObject  = "The options field must be an object or null."
	msgDateTimeFormat = "The field must be null or an RFC 3339 date-time with an explicit offset, such as 2025-01-31T23:59:59Z."
)

// decodeSetRequest parses a PUT body strictly, as System.Text.Json with
// ASP.NET Core's web defaults would and stricter where it would silently
// change data: property names match case-insensitively (ASCII only);
// unknown and duplicate properties, wrong types, comments, trailing commas,
// trailing data, invalid UTF-8 and unpaired surrogate escapes are refused.
// It stops at the first problem.
func decodeSetRequest(body []byte) (setRequest, error) {
	var req setRequest
	if !utf8.Valid(body) {
		return req, neostore.FieldError("$", msgNotUTF8)
	}
	// System.Text.Json skips a UTF-8 byte order mark at the start.
	d := scanner{data: body}
	if len(body) >= 3 && body[0] == 0xEF && body[1] == 0xBB && body[2] == 0xBF {
		d.pos = 3
	}
	d.skipSpace()
	switch {
	case d.pos == len(d.data):
		return req, neostore.FieldError("$", msgEmptyBody)
	case d.peek() != '{':
		return req, neostore.FieldError("$", msgNotObject)
	}
	d.pos++

	var seenValue, seenOptions, valueSet bool
	var name [16]byte
	err := d.members(name[:0], func(prop []byte) error {
		switch {
		case asciiEqualFold(prop, "value"):
			if seenValue {
				return neostore.FieldError("value", msgDuplicate)
			}
			seenValue = true
			switch d.peek() {
			case '"':
				v, err := d.str(nil, "value")
				if err != nil {
					return err
				}
				req.value, valueSet = v, true
			case 'n':
				if !d.literal("null") {
					return neostore.FieldError("$", msgSyntax)
				}
			default:
				return neostore.FieldError("value", msgValueString)
			}
		case asciiEqualFold(prop, "options"):
			if seenOptions {
				return neostore.FieldError("options", msgDuplicate)
			}
			seenOptions = true
			v, err := d.options()
			if err != nil {
				return err
			}
			req.validity = v
		default:
			return unknownProperty("$", prop, "SetRequest")
		}
		return nil
	})
	if err != nil {
		return setRequest{}, err
	}
	d.skipSpace()
	if d.pos != len(d.data) {
		return setRequest{}, neostore.FieldError("$", msgTrailing)
	}
	if !valueSet || len(req.value) == 0 {
		return setRequest{}, neostore.FieldError("value", msgValueRequired)
	}
	return req, nil // the window is checked by neostore.NewSecretPut
}

// options parses the value of "options": null or an object with the
// optional members expiresOn and notBefore, each null or a date-time.
func (d *scanner) options() (neostore.Validity, error) {
	var v neostore.Validity
	switch d.peek() {
	case 'n':
		if !d.literal("null") {
			return v, neostore.FieldError("$", msgSyntax)
		}
		return v, nil
	case '{':
		d.pos++
	default:
		return v, neostore.FieldError("options", msgOptionsObject)
	}
	var seenExpires, seenNotBefore bool
	var name [16]byte
	err := d.members(name[:0], func(prop []byte) error {
		var field string
		var bound *neostore.Bound
		switch {
		case asciiEqualFold(prop, "expiresOn"):
			if seenExpires {
				return neostore.FieldError("options.expiresOn", msgDuplicate)
			}
			seenExpires, field, bound = true, "options.expiresOn", &v.ExpiresOn
		case asciiEqualFold(prop, "notBefore"):
			if seenNotBefore {
				return neostore.FieldError("options.notBefore", msgDuplicate)
			}
			seenNotBefore, field, bound = true, "options.notBefore", &v.NotBefore
		default:
			return unknownProperty("$.options", prop, "OptionsRequest")
		}
		switch d.peek() {
		case 'n':
			if !d.literal("null") {
				return neostore.FieldError("$", msgSyntax)
			}
		case '"':
			var buf [40]byte
			s, err := d.str(buf[:0], field)
			if err != nil {
				return err
			}
			t, ok := parseDateTime(s)
			if !ok {
				return neostore.FieldError(field, msgDateTimeFormat)
			}
			*bound = neostore.At(t)
		default:
			return neostore.FieldError(field, msgDateTimeFormat)
		}
		return nil
	})
	return v, err
}

// maxPropertyName is how much of an unknown property's name an error quotes.
const maxPropertyName = 64

// unknownProperty names an unknown property as ASP.NET Core does with
// System.Text.Json's JsonUnmappedMemberHandling.Disallow: keyed by its JSON
// path, with the serializer's message (the type is the schema's name). The
// name is the client's own input, so it is clipped to maxPropertyName runes
// and its control and other unprintable characters are written as \uXXXX:
// a client that logs the message gets no escape sequences or line breaks.
func unknownProperty(parent string, name []byte, typ string) error {
	shown := displayProperty(name)
	path := parent + "." + shown
	if bytes.ContainsAny(name, jsonPathSpecial) {
		path = parent + "['" + strings.ReplaceAll(shown, "'", `\'`) + "']"
	}
	return neostore.FieldError(path, "The JSON property '"+shown+"' could not be mapped to any .NET member contained in type '"+typ+"'.")
}

// jsonPathSpecial are the characters for which System.Text.Json writes a
// property in bracket notation in a JSON path.
const jsonPathSpecial = ".'/\"[]()\t\n\r\f\b\\\u0085\u2028\u2029 "

// displayProperty clips and escapes a property name for an error message.
func displayProperty(name []byte) string {
	var b strings.Builder
	n := 0
	for _, r := range string(name) {
		if n == maxPropertyName {
			b.WriteString("…")
			break
		}
		n++
		if unicode.IsPrint(r) {
			b.WriteRune(r)
		} else if r > 0xFFFF {
			fmt.Fprintf(&b, `\U%08X`, r)
		} else {
			fmt.Fprintf(&b, `\u%04X`, r)
		}
	}
	return b.String()
}

// scanner reads the few JSON forms a PUT body may contain.
type scanner struct {
	data []byte
	pos  int
}

// peek returns the byte at the scanner, or 0 at the end of the input, which
// no caller mistakes for a valid byte: outside strings NUL is never valid
// JSON, and the end is checked by position.
func (d *scanner) peek() byte {
	if d.pos < len(d.data) {
		return d.data[d.pos]
	}
	return 0
}

func (d *scanner) skipSpace() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *scanner) literal(lit string) bool {
	if !bytes.HasPrefix(d.data[d.pos:], []byte(lit)) {
		return false
	}
	d.pos += len(lit)
	return true
}

// members reads the members of an object whose '{' was consumed, through
// its '}'. For each it decodes the name into nameBuf, consumes the ':' and
// calls member with the scanner at the value, which member must consume.
func (d *scanner) members(nameBuf []byte, member func(name []byte) error) error {
	d.skipSpace()
	if d.peek() == '}' {
		d.pos++
		return nil
	}
	for {
		if d.peek() != '"' {
			return neostore.FieldError("$", msgSyntax)
		}
		name, err := d.str(nameBuf[:0], "$")
		if err != nil {
			return err
		}
		d.skipSpace()
		if d.peek() != ':' {
			return neostore.FieldError("$", msgSyntax)
		}
		d.pos++
		d.skipSpace()
		if err := member(name); err != nil {
			return err
		}
		d.skipSpace()
		switch d.peek() {
		case ',':
			d.pos++
			d.skipSpace()
		case '}':
			d.pos++
			return nil
		default:
			return neostore.FieldError("$", msgSyntax)
		}
	}
}

// str decodes the JSON string at the scanner (its opening quote) and
// appends it to dst. A syntax error is reported on "$"; an unpaired
// surrogate escape, which encoding/json and System.Text.Json would turn
// into U+FFFD or refuse, is reported on field.
func (d *scanner) str(dst []byte, field string) ([]byte, error) {
	d.pos++ // opening quote
	start := d.pos
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		switch {
		case c == '"':
			dst = append(dst, d.data[start:d.pos]...)
			d.pos++
			return dst, nil
		case c < 0x20:
			return nil, neostore.FieldError("$", msgSyntax)
		case c != '\\':
			d.pos++
			continue
		}
		dst = append(dst, d.data[start:d.pos]...)
		d.pos++
		if d.pos >= len(d.data) {
			return nil, neostore.FieldError("$", msgSyntax)
		}
		switch e := d.data[d.pos]; e {
		case '"', '\\', '/':
			dst = append(dst, e)
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := d.hex4(d.pos + 1)
			if !ok {
				return nil, neostore.FieldError("$", msgSyntax)
			}
			d.pos += 4
			switch {
			case 0xD800 <= r && r < 0xDC00:
				lo, ok := d.hex4(d.pos + 3)
				if !ok || d.data[d.pos+1] != '\\' || d.data[d.pos+2] != 'u' || lo < 0xDC00 || lo > 0xDFFF {
					return nil, neostore.FieldError(field, msgSurrogate)
				}
				d.pos += 6
				r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
			case 0xDC00 <= r && r <= 0xDFFF:
				return nil, neostore.FieldError(field, msgSurrogate)
			}
			dst = utf8.AppendRune(dst, r)
		default:
			return nil, neostore.FieldError("$", msgSyntax)
		}
		d.pos++
		start = d.pos
	}
	return nil, neostore.FieldError("$", msgSyntax)
}

// hex4 decodes the four hex digits at data[i:], if there are four.
func (d *scanner) hex4(i int) (rune, bool) {
	if i < 0 || i+4 > len(d.data) {
		return 0, false
	}
	var r rune
	for _, c := range d.data[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// asciiEqualFold reports whether b equals s ignoring ASCII case. Non-ASCII
// look-alikes (ſ, K) do not match: they are unknown properties.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// parseDateTime parses an RFC 3339 date-time with an explicit offset:
// YYYY-MM-DDTHH:MM:SS[.fraction](Z|+hh:mm|-hh:mm). The T and Z must be
// upper case (as System.Text.Json requires; RFC 3339 would allow lower
// case); hours are at most 23 in the time and the offset, minutes and
// seconds at most 59 (no leap second), the day must exist in its month,
// the year lie in 0001-9999, and the instant in UTC too, as .NET's
// DateTimeOffset requires. Fraction digits beyond nanoseconds are
// truncated. The result is in UTC.
func parseDateTime(b []byte) (time.Time, bool) {
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' {
		return time.Time{}, false
	}
	year, ok1 := digits(b[0:4])
	month, ok2 := digits(b[5:7])
	day, ok3 := digits(b[8:10])
	hour, ok4 := digits(b[11:13])
	minute, ok5 := digits(b[14:16])
	sec, ok6 := digits(b[17:19])
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 ||
		year < 1 || month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	rest := b[19:]
	nsec := 0
	if rest[0] == '.' {
		n := 1
		for n < len(rest) && '0' <= rest[n] && rest[n] <= '9' {
			if n <= 9 {
				nsec = nsec*10 + int(rest[n]-'0')
			}
			n++
		}
		if n == 1 {
			return time.Time{}, false
		}
		for i := n; i <= 9; i++ {
			nsec *= 10
		}
		rest = rest[n:]
	}
	offset := 0
	switch {
	case len(rest) == 1 && rest[0] == 'Z':
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, ok1 := digits(rest[1:3])
		om, ok2 := digits(rest[4:6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return time.Time{}, false
		}
		offset = (oh*60 + om) * 60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC).Add(-time.Duration(offset) * time.Second)
	if y := t.Year(); y < 1 || y > 9999 {
		return time.Time{}, false
	}
	return t, true
}

// digits parses a fixed-width run of ASCII digits.
func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
