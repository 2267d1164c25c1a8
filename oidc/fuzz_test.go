package oidc_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/oidc"
)

// FuzzVerify feeds arbitrary strings to Verify: it must never panic, never
// fail with anything but EUNAUTHENTICATED, and never accept a token other
// than the one the issuer signed.
func FuzzVerify(f *testing.F) {
	c := newClock()
	s := rsaSigner(f, "rsa-1", 0)
	e := ecSigner(f, "ec-1")
	v, err := oidc.New(f.Context(), oidc.Config{Issuer: testIssuer, JWKSFile: jwksFile(f, s.public(f, nil), e.public(f, nil)), Now: c.Now})
	if err != nil {
		f.Fatal(err)
	}
	valid := []string{s.sign(f, claims(c.Now(), nil), nil), e.sign(f, claims(c.Now(), nil), nil)}
	for _, tok := range valid {
		parts := strings.Split(tok, ".")
		f.Add(tok)
		f.Add(parts[0] + "." + parts[1] + ".")
		f.Add(parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])/2])
		f.Add(parts[1] + "." + parts[0] + "." + parts[2])
	}
	f.Add("")
	f.Add("..")
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")
	f.Add(strings.Repeat("a", oidc.MaxTokenSize+1))

	f.Fuzz(func(t *testing.T, token string) {
		p, err := v.Verify(t.Context(), token)
		if err != nil {
			if p != nil {
				t.Fatalf("Verify returned a principal with error %v", err)
			}
			if code := neostore.ErrorCode(err); code != neostore.EUNAUTHENTICATED {
				t.Fatalf("ErrorCode: got %q, want %q", code, neostore.EUNAUTHENTICATED)
			}
			return
		}
		if !sameSignedToken(token, valid) {
			t.Fatalf("Verify accepted a token the issuer did not sign: %q", token)
		}
	})
}

// sameSignedToken reports whether token is one of valid, allowing only the
// base64 slack of the signature segment's final character (unused low bits),
// which decodes to the very same signature.
func sameSignedToken(token string, valid []string) bool {
	i := strings.LastIndexByte(token, '.')
	if i < 0 {
		return false
	}
	for _, v := range valid {
		j := strings.LastIndexByte(v, '.')
		if token[:i] != v[:j] {
			continue
		}
		got, err1 := base64.RawURLEncoding.DecodeString(token[i+1:])
		want, err2 := base64.RawURLEncoding.DecodeString(v[j+1:])
		if err1 == nil && err2 == nil && string(got) == string(want) {
			return true
		}
	}
	return false
}
