//go:build unix

package main

import (
	"io/fs"
	"syscall"
)

// modesMeanAccess is true where permission bits and owners say who may
// read and write a file.
const modesMeanAccess = true

// fileOwner returns the uid that owns the file fi describes.
func fileOwner(fi fs.FileInfo) (uint32, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return st.Uid, true
}
