package httpapi

import (
	"strconv"
	"strings"
)

// mediaType is a response media type the API can produce.
type mediaType uint8

const (
	textPlain mediaType = iota
	applicationJSON
	textJSON
)

// contentType returns the Content-Type header value of m.
func (m mediaType) contentType() []string {
	switch m {
	case applicationJSON:
		return hdrAppJSON
	case textJSON:
		return hdrTextJSON
	}
	return hdrTextPlain
}

func (m mediaType) typeAndSubtype() (string, string) {
	switch m {
	case applicationJSON:
		return "application", "json"
	case textJSON:
		return "text", "json"
	}
	return "text", "plain"
}

// negotiate picks the response media type from the Accept header lines as
// ASP.NET Core MVC does with RespectBrowserAcceptHeader off and
// ReturnHttpNotAcceptable off. produces lists what the result can be
// written as, in the order of MVC's output formatters; its first entry is
// the default.
//
//   - No Accept, or */* anywhere in it (browsers, axios): the default.
//   - Otherwise the media ranges are tried by quality, then position; the
//     first one that some entry of produces falls within wins. A range
//     with q=0 is not acceptable. A range with parameters besides q
//     matches nothing, because MVC requires the formatter's own media
//     type (which has none) to carry them: "application/json;
//     charset=utf-8" is not producible.
//   - Nothing producible: the default, not 406.
//
// It does not allocate.
func negotiate(accept []string, produces []mediaType) mediaType {
	best, bestQ := produces[0], -1.0
	for _, line := range accept {
		for len(line) > 0 {
			var elem string
			elem, line = nextListElement(line)
			typ, sub, q, hasParams, ok := parseMediaRange(elem)
			if !ok {
				continue
			}
			if typ == "*" && sub == "*" {
				return produces[0]
			}
			if q <= 0 || q <= bestQ || hasParams {
				continue
			}
			for _, m := range produces {
				mt, ms := m.typeAndSubtype()
				if (typ == "*" || strings.EqualFold(typ, mt)) && (sub == "*" || strings.EqualFold(sub, ms)) {
					best, bestQ = m, q
					break
				}
			}
		}
	}
	return best
}

// nextListElement splits an HTTP list at the first comma outside a quoted
// string.
func nextListElement(s string) (elem, rest string) {
	quoted := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case c == ',' && !quoted:
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

// parseMediaRange parses one element of an Accept header: type "/" subtype
// followed by parameters, of which "q" ends the media-range parameters
// (RFC 9110 section 12.5.1). q defaults to 1.
func parseMediaRange(s string) (typ, sub string, q float64, hasParams, ok bool) {
	s = strings.Trim(s, " \t")
	if s == "" {
		return "", "", 0, false, false
	}
	params := ""
	if i := strings.IndexByte(s, ';'); i >= 0 {
		s, params = s[:i], s[i+1:]
	}
	s = strings.TrimRight(s, " \t")
	slash := strings.IndexByte(s, '/')
	if slash <= 0 || slash == len(s)-1 || !isToken(s[:slash]) || !isToken(s[slash+1:]) {
		return "", "", 0, false, false
	}
	typ, sub, q = s[:slash], s[slash+1:], 1
	for params != "" {
		var p string
		if i := strings.IndexByte(params, ';'); i >= 0 {
			p, params = params[:i], params[i+1:]
		} else {
			p, params = params, ""
		}
		p = strings.Trim(p, " \t")
		if p == "" {
			continue
		}
		name, value, _ := strings.Cut(p, "=")
		if !strings.EqualFold(strings.TrimRight(name, " \t"), "q") {
			hasParams = true
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimLeft(value, " \t"), 64)
		if err != nil || v < 0 || v > 1 {
			return "", "", 0, false, false
		}
		return typ, sub, v, hasParams, true
	}
	return typ, sub, q, hasParams, true
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTchar(s[i]) {
			return false
		}
	}
	return true
}
