package httpapi

import "unicode/utf8"

// Header values written on every response. Assigning a shared slice to a
// header saves an allocation per header per request; net/http and
// httptest copy header maps before they change them, and nothing here
// modifies one in place.
var (
	hdrNoStore      = []string{"no-store"}
	hdrNoSniff      = []string{"nosniff"}
	hdrClose        = []string{"close"}
	hdrProblemJSON  = []string{"application/problem+json; charset=utf-8"}
	hdrTextPlain    = []string{"text/plain; charset=utf-8"}
	hdrAppJSON      = []string{"application/json; charset=utf-8"}
	hdrTextJSON     = []string{"text/json; charset=utf-8"}
	hdrBearerAPIKey = []string{challengeBearer, challengeAPIKey}

	hdrAPIKeyChallenge      = []string{challengeAPIKey}
	hdrInvalidToken         = []string{challengeInvalidToken}
	hdrInvalidRequest       = []string{challengeInvalidRequest}
	hdrInvalidRequestAPIKey = []string{challengeInvalidRequest, challengeAPIKey}
)

const hexUpper = "0123456789ABCDEF"

// appendJSONString appends s as a JSON string escaped the way
// System.Text.Json's default encoder (JavaScriptEncoder.Default) escapes
// it, so that values and problem details match the ASP.NET Core service
// byte for byte: every non-ASCII character as \uXXXX (surrogate pairs
// beyond the BMP), the HTML-sensitive " ' & < > + and ` as \uXXXX, \ as
// \\, \b \f \n \r \t in short form, other control characters (DEL
// included) as \u00XX, hex digits in upper case. Bytes that are not UTF-8
// become \uFFFD. It works on strings and byte slices without converting
// either, so a secret value is never copied into a string.
func appendJSONString[S ~string | ~[]byte](dst []byte, s S) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if jsonSafe(c) {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '\\':
				dst = append(dst, '\\', '\\')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = appendUTF16Escape(dst, rune(c))
			}
			i++
			start = i
			continue
		}
		dst = append(dst, s[start:i]...)
		r, size := decodeRune(s, i)
		if r >= 0x10000 {
			r -= 0x10000
			dst = appendUTF16Escape(dst, 0xD800+(r>>10)&0x3FF)
			dst = appendUTF16Escape(dst, 0xDC00+r&0x3FF)
		} else {
			dst = appendUTF16Escape(dst, r)
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// jsonSafe reports whether an ASCII byte is written as itself.
func jsonSafe(c byte) bool {
	if c < 0x20 || c >= 0x7F {
		return false
	}
	switch c {
	case '"', '\\', '\'', '&', '<', '>', '+', '`':
		return false
	}
	return true
}

func appendUTF16Escape(dst []byte, r rune) []byte {
	return append(dst, '\\', 'u',
		hexUpper[r>>12&0xF], hexUpper[r>>8&0xF], hexUpper[r>>4&0xF], hexUpper[r&0xF])
}

// decodeRune decodes the UTF-8 sequence at s[i:] like utf8.DecodeRune, for
// strings and byte slices alike: an invalid sequence is (RuneError, 1).
func decodeRune[S ~string | ~[]byte](s S, i int) (rune, int) {
	n := len(s) - i
	c0 := s[i]
	switch {
	case c0 < 0x80:
		return rune(c0), 1
	case c0 < 0xC2:
		return utf8.RuneError, 1
	case c0 < 0xE0:
		if n < 2 || !continuation(s[i+1]) {
			return utf8.RuneError, 1
		}
		return rune(c0&0x1F)<<6 | rune(s[i+1]&0x3F), 2
	case c0 < 0xF0:
		if n < 3 || !continuation(s[i+1]) || !continuation(s[i+2]) {
			return utf8.RuneError, 1
		}
		r := rune(c0&0x0F)<<12 | rune(s[i+1]&0x3F)<<6 | rune(s[i+2]&0x3F)
		if r < 0x800 || (0xD800 <= r && r <= 0xDFFF) {
			return utf8.RuneError, 1
		}
		return r, 3
	case c0 < 0xF5:
		if n < 4 || !continuation(s[i+1]) || !continuation(s[i+2]) || !continuation(s[i+3]) {
			return utf8.RuneError, 1
		}
		r := rune(c0&0x07)<<18 | rune(s[i+1]&0x3F)<<12 | rune(s[i+2]&0x3F)<<6 | rune(s[i+3]&0x3F)
		if r < 0x10000 || r > utf8.MaxRune {
			return utf8.RuneError, 1
		}
		return r, 4
	}
	return utf8.RuneError, 1
}

func continuation(c byte) bool { return c&0xC0 == 0x80 }

// appendJSONStringArray appends names as a JSON array of strings.
func appendJSONStringArray(dst []byte, names []string) []byte {
	dst = append(dst, '[')
	for i, n := range names {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, n)
	}
	return append(dst, ']')
}
