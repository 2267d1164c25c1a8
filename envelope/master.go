// Package envelope seals secret values with envelope encryption built on
// Google Tink. A master keyset (the key-encryption key) wraps one data keyset
// per tenant; each tenant's data keyset seals that tenant's secret values.
// The master keyset is Tink's cleartext JSON keyset, kept by the operator in a
// file of mode 0600 or in an environment variable; being a keyset rather than
// a single key, it can gain a new primary key while older keys still decrypt.
package envelope

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/neostore/neostore-secrets"
	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/insecurecleartextkeyset"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// ErrWrongMasterKey is returned by CheckKey when the store's key-check record
// does not open under the master keyset, that is when the store was created
// with another master key; the server must refuse to start.
var ErrWrongMasterKey = errors.New("envelope: the master key does not match this store (key-check record does not open)")

// maxMasterFileSize bounds what ReadMasterFile reads. A keyset of a hundred
// AES-256 keys is about 20 KiB; anything near this limit is not a keyset.
const maxMasterFileSize = 1 << 20

// Associated-data labels. Each use of a key gets its own label so that a
// ciphertext made for one purpose never opens as another.
const (
	labelSecret    = "neostore/secret/v1"
	labelTenantKey = "neostore/tenantkey/v1"
	labelKeyCheck  = "neostore/keycheck/v1"
)

// keyCheckPlaintext is the known value sealed into the key-check record.
var keyCheckPlaintext = []byte("neostore key check v1")

// Master is the master keyset: the key-encryption key that wraps tenant data
// keys. It is safe for concurrent use.
type Master struct {
	// handle is kept, not just its primitive, so that rotation can add a
	// primary key and write the keyset back.
	handle *keyset.Handle
	aead   tink.AEAD
}

// NewMasterKeyset returns a fresh master keyset in Tink's JSON keyset format,
// holding one AES256-GCM key. The result is key material: write it only to a
// protected place (see WriteMasterFile).
func NewMasterKeyset() ([]byte, error) {
	h, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	if err != nil {
		return nil, fmt.Errorf("envelope: generate master keyset: %w", err)
	}
	var buf bytes.Buffer
	if err := insecurecleartextkeyset.Write(h, keyset.NewJSONWriter(&buf)); err != nil {
		return nil, fmt.Errorf("envelope: encode master keyset: %w", err)
	}
	return buf.Bytes(), nil
}

// ParseMaster reads a master keyset in Tink's cleartext JSON format. It fails
// when keysetJSON is not a keyset or not an AEAD keyset; the error never
// quotes keysetJSON, because it is key material.
func ParseMaster(keysetJSON []byte) (*Master, error) {
	// Tink's and protojson's errors can quote the input, so none is wrapped.
	h, err := insecurecleartextkeyset.Read(keyset.NewJSONReader(bytes.NewReader(keysetJSON)))
	if err != nil {
		return nil, errors.New("envelope: the master key is not a valid Tink JSON keyset")
	}
	a, err := aead.New(h)
	if err != nil {
		return nil, errors.New("envelope: the master keyset is not an AEAD keyset (want AES256-GCM keys)")
	}
	return &Master{handle: h, aead: a}, nil
}

// ReadMasterFile reads a master keyset from the JSON keyset file at path. On
// Unix it refuses a file that group or others may read or write, since
// anyone who reads it can decrypt every secret.
func ReadMasterFile(path string) (*Master, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("envelope: open master key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("envelope: stat master key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("envelope: master key file %s is not a regular file", path)
	}
	if err := checkPrivate(path, fi.Mode()); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, maxMasterFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("envelope: read master key file: %w", err)
	}
	defer clear(b)
	if len(b) > maxMasterFileSize {
		return nil, fmt.Errorf("envelope: master key file %s is larger than %d bytes: not a keyset", path, maxMasterFileSize)
	}
	m, err := ParseMaster(b)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return m, nil
}

// WriteMasterFile writes keysetJSON, which must parse as a master keyset, to
// a new file at path with mode 0600. It never replaces a file: when path
// exists it fails, so an existing master key cannot be lost by mistake.
func WriteMasterFile(path string, keysetJSON []byte) error {
	if _, err := ParseMaster(keysetJSON); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("envelope: master key file %s already exists; refusing to overwrite it", path)
	} else if err != nil {
		return fmt.Errorf("envelope: create master key file: %w", err)
	}
	_, err = f.Write(keysetJSON)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		// A partial key file would be refused or, worse, half-trusted later.
		os.Remove(path)
		return fmt.Errorf("envelope: write master key file: %w", err)
	}
	return nil
}

// String describes m without its key material, so that a Master printed by
// mistake reveals nothing.
func (m *Master) String() string {
	return fmt.Sprintf("envelope.Master(%d keys)", m.handle.Len())
}

// CheckKey verifies that m is the master key the store was created with. On a
// new store (no key-check record) it seals a known value with m and stores
// it; otherwise the stored record must open to that value under m, else it
// returns ErrWrongMasterKey. Other errors come from the store.
func (m *Master) CheckKey(ctx context.Context, store neostore.KeyCheckStore) error {
	record, err := store.GetKeyCheck(ctx)
	if neostore.ErrorCode(err) == neostore.ENOTFOUND {
		sealed, err := m.aead.Encrypt(keyCheckPlaintext, []byte(labelKeyCheck))
		if err != nil {
			return fmt.Errorf("envelope: seal key-check record: %w", err)
		}
		// Another node may have created the record meanwhile: check the one
		// that was stored, which may not be ours.
		if record, err = store.CreateKeyCheck(ctx, sealed); err != nil {
			return fmt.Errorf("envelope: store key-check record: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("envelope: read key-check record: %w", err)
	}
	pt, err := m.aead.Decrypt(record, []byte(labelKeyCheck))
	if err != nil || !bytes.Equal(pt, keyCheckPlaintext) {
		return ErrWrongMasterKey
	}
	return nil
}
