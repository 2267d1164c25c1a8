//go:build !unix

package main

import "io/fs"

// modesMeanAccess is false outside Unix, where permission bits do not
// describe who may read a file; protecting it is left to the operator.
const modesMeanAccess = false

func fileOwner(fs.FileInfo) (uint32, bool) { return 0, false }
