//go:build unix

package envelope

import (
	"fmt"
	"io/fs"
)

// checkPrivate refuses a master key file that group or others may read or
// write: reading it decrypts every secret, writing it swaps the key.
func checkPrivate(path string, mode fs.FileMode) error {
	if perm := mode.Perm(); perm&0o077 != 0 {
		return fmt.Errorf("envelope: master key file %s has mode %#o, which lets group or others read or write it; run chmod 600 on it", path, perm)
	}
	return nil
}
