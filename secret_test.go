package neostore_test

import (
	"strings"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets"
)

func TestValidKeyName(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"db-password", true},
		{"Db-Password", true},
		{"a", true},
		{strings.Repeat("k", 127), true},
		{strings.Repeat("k", 128), false},
		{"", false},
		{"a_b", false},
		{"a.b", false},
		{"a/b", false},
		{"..", false},
		{"a\x00b", false},
		{"café", false},
		{"a b", false},
	} {
		if got := neostore.ValidKeyName(tc.in); got != tc.want {
			t.Errorf("ValidKeyName(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestValidTenantID(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"acme", true},
		{"acme_prod-1", true},
		{strings.Repeat("t", 128), true},
		{strings.Repeat("t", 129), false},
		{"", false},
		{"a/b", false},
		{"a.b", false},
		{"%2F", false},
	} {
		if got := neostore.ValidTenantID(tc.in); got != tc.want {
			t.Errorf("ValidTenantID(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestValidity(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	w := neostore.Validity{NotBefore: neostore.At(t0), ExpiresOn: neostore.At(t0.Add(time.Hour))}
	for _, tc := range []struct {
		name string
		at   time.Time
		want bool
	}{
		{"BeforeNotBefore", t0.Add(-time.Nanosecond), false},
		{"AtNotBefore", t0, true},
		{"Inside", t0.Add(time.Minute), true},
		{"JustBeforeExpiry", t0.Add(time.Hour - time.Nanosecond), true},
		{"AtExpiry", t0.Add(time.Hour), false},
	} {
		if got := w.Contains(tc.at); got != tc.want {
			t.Errorf("%s: Contains = %v, want %v", tc.name, got, tc.want)
		}
	}
	if !(neostore.Validity{}).Contains(t0) {
		t.Errorf("an open window does not contain now")
	}
	yearOne := neostore.Validity{ExpiresOn: neostore.At(time.Time{})}
	if yearOne.Contains(t0) {
		t.Errorf("a window expiring at 0001-01-01 contains 2026: year one was taken for 'no expiry'")
	}
	if err := (neostore.Validity{NotBefore: neostore.At(t0), ExpiresOn: neostore.At(t0)}).Validate(); neostore.ErrorCode(err) != neostore.EINVALID {
		t.Errorf("Validate of an empty window = %v, want EINVALID", err)
	}
}

func BenchmarkValidKeyAndTenant(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if !neostore.ValidTenantID("acme-production") || !neostore.ValidKeyName("database-password-primary") {
			b.Fatal("invalid")
		}
	}
}
