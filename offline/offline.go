// Package offline keeps the encrypted snapshot that lets `run` start an
// application while the secret store cannot be reached: the values of the
// last successful fetch, sealed with AES-256-GCM under a key derived (HKDF-
// SHA256) from the credential that fetched them, so that the file is useless
// without that credential. The associated data binds a snapshot to the
// server address and tenant it came from, and the fetch time travels inside
// the sealed part, so that neither can be changed without the credential
// (a file's mtime could be).
package offline

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"time"
)

// File layout: magic, version, salt, nonce, then the AES-GCM ciphertext of
// the JSON-encoded contents. Everything before the ciphertext is also part
// of the associated data, so a changed salt or version fails to open.
const (
	magic     = "NSRS" // Neostore run snapshot
	version1  = 1
	saltSize  = 32
	nonceSize = 12
	keySize   = 32 // AES-256
	header    = len(magic) + 1 + saltSize + nonceSize
	hkdfInfo  = "neostore-secrets run snapshot v1"
)

// Errors of Open.
var (
	// ErrNotSnapshot is returned when the data is not a snapshot file, or of
	// a version this program does not know.
	ErrNotSnapshot = errors.New("offline: not a snapshot file of a known version")
	// ErrNoOpen is returned when a snapshot does not open: it was sealed
	// with another credential, for another address or tenant, or altered.
	ErrNoOpen = errors.New("offline: the snapshot does not open with this credential, address and tenant")
)

// Binding is what a snapshot is bound to besides the credential: the server
// address and the tenant the values were read from.
type Binding struct {
	Address string
	Tenant  string
}

func (b Binding) bytes() []byte {
	// A NUL cannot appear in either (URLs and tenant ids are printable), so
	// the pair is unambiguous.
	return []byte(b.Address + "\x00" + b.Tenant)
}

// Contents is what a snapshot holds.
type Contents struct {
	FetchedAt time.Time         `json:"fetchedAt"` // when the values were read from the server
	Values    map[string][]byte `json:"values"`    // secret key → value
}

// Seal returns the snapshot file for c, sealed under a fresh random salt and
// nonce with a key derived from credential.
func Seal(credential []byte, b Binding, c Contents) ([]byte, error) {
	if len(credential) == 0 {
		return nil, errors.New("offline: no credential to seal with")
	}
	plain, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	out := make([]byte, header, header+len(plain)+16)
	copy(out, magic)
	out[len(magic)] = version1
	rand.Read(out[len(magic)+1 : header]) // salt and nonce; never fails (Go 1.24+)
	aead, err := newAEAD(credential, out[len(magic)+1:len(magic)+1+saltSize])
	if err != nil {
		return nil, err
	}
	nonce := out[header-nonceSize : header]
	return aead.Seal(out, nonce, plain, additionalData(out[:header], b)), nil
}

// Open returns the contents of a snapshot file. It returns ErrNotSnapshot
// for data that is not a snapshot and ErrNoOpen when the credential or the
// binding differ from those it was sealed with, or the file was altered.
func Open(credential []byte, b Binding, data []byte) (Contents, error) {
	if len(data) < header || !bytes.Equal(data[:len(magic)], []byte(magic)) || data[len(magic)] != version1 {
		return Contents{}, ErrNotSnapshot
	}
	if len(credential) == 0 {
		return Contents{}, ErrNoOpen
	}
	aead, err := newAEAD(credential, data[len(magic)+1:len(magic)+1+saltSize])
	if err != nil {
		return Contents{}, err
	}
	plain, err := aead.Open(nil, data[header-nonceSize:header], data[header:], additionalData(data[:header], b))
	if err != nil {
		return Contents{}, ErrNoOpen
	}
	var c Contents
	if err := json.Unmarshal(plain, &c); err != nil {
		return Contents{}, fmt.Errorf("offline: sealed contents do not decode: %w", err)
	}
	return c, nil
}

func newAEAD(credential, salt []byte) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, credential, salt, hkdfInfo, keySize)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func additionalData(hdr []byte, b Binding) []byte {
	return append(bytes.Clone(hdr), b.bytes()...)
}

// DefaultPath returns where a snapshot lives under the user's cache
// directory: one file per address, tenant and selection (the set of keys a
// command asks for), so that two commands reading different secrets from
// the same tenant do not overwrite each other's snapshot. The name is a hash
// and says nothing about what is inside.
func DefaultPath(cacheDir string, b Binding, selection string) string {
	sum := sha256.Sum256(append(b.bytes(), "\x00"+selection...))
	return filepath.Join(cacheDir, "neostore-secrets", "run", hex.EncodeToString(sum[:16])+".snapshot")
}
