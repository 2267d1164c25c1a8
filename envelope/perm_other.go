//go:build !unix

package envelope

import "io/fs"

// checkPrivate accepts any file: outside Unix, permission bits do not
// describe who may read a file, so protecting it is left to the operator.
func checkPrivate(path string, mode fs.FileMode) error { return nil }
