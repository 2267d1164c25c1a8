//go:build !linux

package bolt

// dropResident does nothing where MADV_DONTNEED's meaning for shared file
// maps is not the Linux one.
func dropResident(addr, n uintptr) error { return nil }
