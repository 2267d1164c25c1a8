package httpapi

import (
	"bytes"
	"testing"
)

// TestAppendLogfmt_ASCIIPathMatchesRunes: the byte loop quotes exactly what
// the rune loop (slog's rules, kept for non-ASCII values) quotes, for every
// byte at the start, middle and end of a value (the empty value is
// quoted before either loop).
func TestAppendLogfmt_ASCIIPathMatchesRunes(t *testing.T) {
	inputs := []string{"GET", "GET /api/{tenantId}/secrets/{key}", "apikey:ak_0123", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "café", "日本", "bad\xffutf8"}
	for c := range 256 {
		b := string([]byte{byte(c)})
		inputs = append(inputs, b, "a"+b, b+"z", "a"+b+"z")
	}
	for _, s := range inputs {
		if got, want := appendLogfmt(nil, s), appendLogfmtRunes(nil, s); !bytes.Equal(got, want) {
			t.Errorf("appendLogfmt(%q) = %s, want %s", s, got, want)
		}
	}
}

// BenchmarkAppendLogfmt compares the byte loop with the rune loop it
// replaced on an access line's values.
func BenchmarkAppendLogfmt(b *testing.B) {
	values := []string{"GET /api/{tenantId}/secrets/{key}", "apikey:ak_e7882d07b2149b11", "00-2ef46b5c933586568b000ecee7b750cd-48bfd2e80d35b24f-00"}
	for _, f := range []struct {
		name string
		fn   func([]byte, string) []byte
	}{{"bytes", appendLogfmt}, {"runes", appendLogfmtRunes}} {
		b.Run(f.name, func(b *testing.B) {
			buf := make([]byte, 0, 256)
			for b.Loop() {
				buf = buf[:0]
				for _, v := range values {
					buf = f.fn(buf, v)
				}
			}
		})
	}
}
