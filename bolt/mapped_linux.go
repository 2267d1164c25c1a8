package bolt

import "golang.org/x/sys/unix"

// dropResident unmaps the pages of the shared file map at [addr, addr+n)
// from the process; the page cache keeps their data.
func dropResident(addr, n uintptr) error {
	if _, _, errno := unix.Syscall(unix.SYS_MADVISE, addr, n, unix.MADV_DONTNEED); errno != 0 {
		return errno
	}
	return nil
}
