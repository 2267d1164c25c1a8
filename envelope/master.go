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
	"sync"
	"sync/atomic"

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
// keys. A Master read from a file can be reloaded in place (see
// Rotator.ReloadMaster), so that every Sealer holding it wraps new tenant
// keys with the new primary at once. It is safe for concurrent use.
type Master struct {
	path string // the file it was read from, or "" when parsed from memory

	reloadMu sync.Mutex // serializes reloads
	keys     atomic.Pointer[masterKeys]
}

// masterKeys is one version of the master keyset. It is never modified;
// a reload stores a new one.
type masterKeys struct {
	// handle is kept, not just its primitive, so that key ids and subsets
	// of the keyset can be taken from it.
	handle *keyset.Handle
	aead   tink.AEAD // every enabled key; encrypts with the primary

	primaryID   uint32
	primaryOnly tink.AEAD // opens only what the primary sealed
}

func newMasterKeys(h *keyset.Handle) (*masterKeys, error) {
	a, err := aead.New(h)
	if err != nil {
		return nil, errors.New("envelope: the master keyset is not an AEAD keyset (want AES256-GCM keys)")
	}
	p, err := h.Primary()
	if err != nil {
		return nil, errors.New("envelope: the master keyset has no primary key")
	}
	only, err := subsetAEAD(h, func(id uint32) bool { return id == p.KeyID() })
	if err != nil {
		return nil, err
	}
	return &masterKeys{handle: h, aead: a, primaryID: p.KeyID(), primaryOnly: only}, nil
}

// current returns the keyset in use.
func (m *Master) current() *masterKeys { return m.keys.Load() }

// subsetAEAD returns the AEAD of the keys of h for which keep is true. keep
// must keep the primary.
func subsetAEAD(h *keyset.Handle, keep func(id uint32) bool) (tink.AEAD, error) {
	mgr := keyset.NewManagerFromHandle(h)
	for i := range h.Len() {
		e, err := h.Entry(i)
		if err != nil {
			return nil, fmt.Errorf("envelope: keyset entry: %w", err)
		}
		if !keep(e.KeyID()) {
			if err := mgr.Delete(e.KeyID()); err != nil {
				return nil, fmt.Errorf("envelope: subset of keyset: %w", err)
			}
		}
	}
	sub, err := mgr.Handle()
	if err != nil {
		return nil, fmt.Errorf("envelope: subset of keyset: %w", err)
	}
	a, err := aead.New(sub)
	if err != nil {
		return nil, fmt.Errorf("envelope: subset of keyset: %w", err)
	}
	return a, nil
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
	k, err := parseMasterKeys(keysetJSON)
	if err != nil {
		return nil, err
	}
	m := &Master{}
	m.keys.Store(k)
	return m, nil
}

func parseMasterKeys(keysetJSON []byte) (*masterKeys, error) {
	h, err := parseKeysetJSON(keysetJSON)
	if err != nil {
		return nil, err
	}
	return newMasterKeys(h)
}

// parseKeysetJSON reads a cleartext JSON keyset. Tink's and protojson's
// errors can quote the input, which is key material, so none is wrapped.
func parseKeysetJSON(keysetJSON []byte) (*keyset.Handle, error) {
	h, err := insecurecleartextkeyset.Read(keyset.NewJSONReader(bytes.NewReader(keysetJSON)))
	if err != nil {
		return nil, errors.New("envelope: the master key is not a valid Tink JSON keyset")
	}
	return h, nil
}

// ReadMasterFile reads a master keyset from the JSON keyset file at path. On
// Unix it refuses a file that group or others may read or write, since
// anyone who reads it can decrypt every secret.
func ReadMasterFile(path string) (*Master, error) {
	k, err := readMasterKeys(path)
	if err != nil {
		return nil, err
	}
	m := &Master{path: path}
	m.keys.Store(k)
	return m, nil
}

func readMasterKeys(path string) (*masterKeys, error) {
	h, err := readKeysetFile(path)
	if err != nil {
		return nil, err
	}
	k, err := newMasterKeys(h)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return k, nil
}

// readKeysetFile reads the JSON keyset file at path, refusing one that
// group or others may read or write.
func readKeysetFile(path string) (*keyset.Handle, error) {
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
	h, err := parseKeysetJSON(b)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return h, nil
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
	return fmt.Sprintf("envelope.Master(%d keys)", m.current().handle.Len())
}

// Path returns the file the master keyset was read from, or "" when it was
// parsed from memory (NEOSTORE_MASTER_KEY, dev) and cannot be reloaded.
func (m *Master) Path() string { return m.path }

// Keys describes the keys of the keyset in use, in keyset order, without
// their material and without usage counts.
func (m *Master) Keys() []neostore.MasterKey { return m.current().describe() }

func (k *masterKeys) describe() []neostore.MasterKey {
	keys := make([]neostore.MasterKey, 0, k.handle.Len())
	for i := range k.handle.Len() {
		e, err := k.handle.Entry(i)
		if err != nil {
			continue
		}
		keys = append(keys, neostore.MasterKey{ID: e.KeyID(), Status: statusName(e.KeyStatus()), Primary: e.IsPrimary()})
	}
	return keys
}

// has reports whether the keyset holds a key with id.
func (k *masterKeys) has(id uint32) bool {
	for i := range k.handle.Len() {
		if e, err := k.handle.Entry(i); err == nil && e.KeyID() == id {
			return true
		}
	}
	return false
}

func statusName(s keyset.KeyStatus) string {
	switch s {
	case keyset.Enabled:
		return neostore.KeyEnabled
	case keyset.Disabled:
		return neostore.KeyDisabled
	case keyset.Destroyed:
		return neostore.KeyDestroyed
	}
	return "unknown"
}

// CheckKey verifies that m is the master key the store was created with. On a
// new store (no key-check record) it seals a known value with m and stores
// it; otherwise the stored record must open to that value under m, else it
// returns ErrWrongMasterKey. Other errors come from the store.
func (m *Master) CheckKey(ctx context.Context, store neostore.KeyCheckStore) error {
	record, err := store.GetKeyCheck(ctx)
	if neostore.ErrorCode(err) == neostore.ENOTFOUND {
		sealed, err := m.current().aead.Encrypt(keyCheckPlaintext, []byte(labelKeyCheck))
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
	if !m.current().opensKeyCheck(record) {
		return ErrWrongMasterKey
	}
	return nil
}

// opensKeyCheck reports whether record is a key-check record sealed under
// a key of k.
func (k *masterKeys) opensKeyCheck(record []byte) bool {
	pt, err := k.aead.Decrypt(record, []byte(labelKeyCheck))
	return err == nil && bytes.Equal(pt, keyCheckPlaintext)
}
