package envelope

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/insecurecleartextkeyset"
	"github.com/tink-crypto/tink-go/v2/keyset"
)

// AddMasterKey adds a new AES256-GCM key to the master keyset file at path,
// makes it the primary, and replaces the file atomically (see
// replaceMasterFile). It returns the new key's id. The old keys stay in the
// keyset, so everything they wrapped still opens; servers use the new
// primary once they reload the file.
func AddMasterKey(path string) (uint32, error) {
	h, err := readKeysetFile(path)
	if err != nil {
		return 0, err
	}
	mgr := keyset.NewManagerFromHandle(h)
	id, err := mgr.Add(aead.AES256GCMKeyTemplate())
	if err != nil {
		return 0, fmt.Errorf("envelope: generate master key: %w", err)
	}
	if err := mgr.SetPrimary(id); err != nil {
		return 0, fmt.Errorf("envelope: make master key primary: %w", err)
	}
	next, err := mgr.Handle()
	if err != nil {
		return 0, fmt.Errorf("envelope: generate master key: %w", err)
	}
	if err := replaceMasterFile(path, next); err != nil {
		return 0, err
	}
	return id, nil
}

// RemoveMasterKey removes key id from the master keyset file at path and
// replaces the file atomically. It refuses the primary key and an unknown
// id. It does not look at any store: check first that nothing still depends
// on the key (neostore.KeyManager.CheckMasterKeyRemoval), since whatever it
// alone wraps can never be opened again.
func RemoveMasterKey(path string, id uint32) error {
	h, err := readKeysetFile(path)
	if err != nil {
		return err
	}
	mgr := keyset.NewManagerFromHandle(h)
	p, err := h.Primary()
	if err != nil {
		return errors.New("envelope: the master keyset has no primary key")
	}
	if p.KeyID() == id {
		return fmt.Errorf("envelope: key %d is the primary key of %s; add a new primary first (keys rotate)", id, path)
	}
	if err := mgr.Delete(id); err != nil {
		return fmt.Errorf("envelope: the master keyset in %s has no key %d", path, id)
	}
	next, err := mgr.Handle()
	if err != nil {
		return fmt.Errorf("envelope: remove master key: %w", err)
	}
	return replaceMasterFile(path, next)
}

// replaceMasterFile writes h to a new file of mode 0600 beside path, syncs
// it, renames it over path and syncs the directory, so that a crash leaves
// either the old keyset or the new one, never a torn file.
func replaceMasterFile(path string, h *keyset.Handle) error {
	var buf bytes.Buffer
	if err := insecurecleartextkeyset.Write(h, keyset.NewJSONWriter(&buf)); err != nil {
		return fmt.Errorf("envelope: encode master keyset: %w", err)
	}
	defer clear(buf.Bytes())
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp") // mode 0600
	if err != nil {
		return fmt.Errorf("envelope: write master key file: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(buf.Bytes())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("envelope: write master key file: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		// The rename is durable once the directory is synced.
		err = d.Sync()
		d.Close()
		if err != nil {
			return fmt.Errorf("envelope: sync master key directory: %w", err)
		}
	}
	return nil
}
