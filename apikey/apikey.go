// Package apikey issues and verifies the API keys that the X-API-KEY header
// carries. A key is 256 random bits with a recognisable prefix and a checksum
// (so secret scanners can find leaked keys without false positives); only its
// SHA-256 hash is stored. Verification runs against an in-memory copy of the
// key records, so a request never waits on the disk, and every change made
// through this package (create, revoke) reaches that copy at once.
package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
	"strings"
)

// Prefix starts every API key, so that leaked keys are easy to recognise.
const Prefix = "nsk_"

const (
	secretBytes   = 32 // 256 bits of entropy
	checksumBytes = 4
	encodedLen    = len(Prefix) + (secretBytes+checksumBytes)*4/3 // base64url without padding
)

var encoding = base64.RawURLEncoding

// Generate returns a new random API key and its SHA-256 hash.
func Generate() (key string, hash [sha256.Size]byte) {
	var raw [secretBytes + checksumBytes]byte
	rand.Read(raw[:secretBytes]) // never returns an error (crypto/rand contract since Go 1.24)
	binary.BigEndian.PutUint32(raw[secretBytes:], crc32.ChecksumIEEE(raw[:secretBytes]))
	key = Prefix + encoding.EncodeToString(raw[:])
	return key, Hash(key)
}

// Hash returns the SHA-256 hash under which a key is stored. Keys carry 256
// random bits, so a fast hash is enough: there is nothing to brute-force.
func Hash(key string) [sha256.Size]byte {
	return sha256.Sum256([]byte(key))
}

// WellFormed reports whether s has the shape of a key this package issued:
// prefix, length and checksum. It lets garbage be refused before any lookup.
func WellFormed(s string) bool {
	if len(s) != encodedLen || !strings.HasPrefix(s, Prefix) {
		return false
	}
	var raw [secretBytes + checksumBytes]byte
	n, err := encoding.Decode(raw[:], []byte(s[len(Prefix):]))
	if err != nil || n != len(raw) {
		return false
	}
	return binary.BigEndian.Uint32(raw[secretBytes:]) == crc32.ChecksumIEEE(raw[:secretBytes])
}

// NewID returns a new public key identifier, such as "ak_1f2e3d4c5b6a7988".
func NewID() string {
	var b [8]byte
	rand.Read(b[:])
	return "ak_" + hex.EncodeToString(b[:])
}
