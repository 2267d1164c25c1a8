package apikey_test

import (
	"strings"
	"testing"

	"github.com/neostore/neostore-secrets/apikey"
)

func TestGenerate(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		key, hash := apikey.Generate()
		if !strings.HasPrefix(key, apikey.Prefix) {
			t.Fatalf("key %q lacks prefix %q", key, apikey.Prefix)
		}
		if !apikey.WellFormed(key) {
			t.Fatalf("WellFormed(generated key) = false")
		}
		if hash != apikey.Hash(key) {
			t.Fatalf("returned hash differs from Hash(key)")
		}
		if seen[key] {
			t.Fatalf("Generate returned a key twice")
		}
		seen[key] = true
	}
}

func TestWellFormed(t *testing.T) {
	key, _ := apikey.Generate()
	flipped := []byte(key)
	i := len(apikey.Prefix) + 5
	if flipped[i] == 'A' {
		flipped[i] = 'B'
	} else {
		flipped[i] = 'A'
	}
	for _, tc := range []struct {
		name string
		in   string
		want bool
	}{
		{"Generated", key, true},
		{"Empty", "", false},
		{"NoPrefix", strings.TrimPrefix(key, apikey.Prefix), false},
		{"OtherPrefix", "xyz_" + key[len(apikey.Prefix):], false},
		{"Truncated", key[:len(key)-1], false},
		{"Extended", key + "A", false},
		{"ChecksumMismatch", string(flipped), false},
		{"NotBase64", apikey.Prefix + strings.Repeat("!", len(key)-len(apikey.Prefix)), false},
		{"Ceiling bench key", "bench-api-key-0123456789abcdef", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := apikey.WellFormed(tc.in); got != tc.want {
				t.Errorf("WellFormed = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNewID(t *testing.T) {
	a, b := apikey.NewID(), apikey.NewID()
	if a == b || !strings.HasPrefix(a, "ak_") || len(a) != 19 {
		t.Errorf("NewID() = %q, %q; want two distinct ak_ ids of 19 characters", a, b)
	}
}

func BenchmarkWellFormedAndHash(b *testing.B) {
	key, _ := apikey.Generate()
	b.ReportAllocs()
	for b.Loop() {
		if !apikey.WellFormed(key) {
			b.Fatal("not well formed")
		}
		apikey.Hash(key)
	}
}
