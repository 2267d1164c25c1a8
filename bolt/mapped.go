package bolt

// bbolt reads the file through a shared, read-only memory map, and every
// page a transaction reads stays mapped into the process until the map is
// remapped (when the file grows past it). Writers read the path to every
// leaf they change, so after a bulk load most of the file is resident and
// counts in the process's RSS, though no reader needs it: writing 1,000,000
// secrets left 95 MB of a 200 MB file mapped (kit, SECRETS_FOR_RSS). Those
// pages are clean page cache the kernel may reclaim at any time, but an
// operator sizing a container sees them as the server's memory.
//
// So once writers have written releaseAfterWrites pages since the last
// release, the map's pages are unmapped from the process (madvise
// MADV_DONTNEED). Their data stays in the page cache: bbolt writes with
// pwrite, never through the map, so a shared read-only page has nothing to
// lose, and the next read of it is a minor fault, not a disk read. Readers
// keep their working set; what the writers alone touched goes.

// releaseAfterWrites is how many page writes (about 4 KiB each) pass
// between releases: at most about 32 MiB of pages touched only by writers
// stay mapped, and a lone writer (3-5 pages a commit) releases about every
// 2,000 commits, which costs it one madvise of a mostly empty map.
const releaseAfterWrites = 8192

// releaseMapped unmaps the resident pages of the map once enough pages were
// written since the last time. It holds a read transaction meanwhile, which
// keeps bbolt from remapping (and so the range from being reused) until the
// madvise is done.
func (s *Store) releaseMapped() {
	st := s.db.Stats()
	written := st.TxStats.GetWrite()
	last := s.released.Load()
	if written-last < s.releaseAfter || !s.released.CompareAndSwap(last, written) {
		return
	}
	tx, err := s.db.Begin(false)
	if err != nil {
		return
	}
	defer func() { _ = tx.Rollback() }()
	// tx.Size is the size of the database as of tx, which the map covers.
	_ = dropResident(s.db.Info().Data, uintptr(tx.Size()))
}
