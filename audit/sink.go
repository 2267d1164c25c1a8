package audit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Sink is where a Trail writes its record lines. A Trail calls it from one
// goroutine at a time, so implementations need no locking.
type Sink interface {
	// Write appends one whole record: a JSON object and a newline. It must
	// keep a record whole (never split it, never leave part of it behind on
	// error) and must not retain p.
	Write(p []byte) error
	// Sync returns once every record written so far is durable. When it
	// fails, the records written since the last successful Sync must either
	// be gone (a transactional sink rolls them back) or the sink must refuse
	// every later call: the Trail reuses their sequence numbers.
	Sync() error
	// Close releases the sink. The Trail that was given a sink closes it.
	Close() error
}

// Tailer is implemented by sinks that can read back what they hold, so that
// a restarted Trail continues its node's chain where it ended.
type Tailer interface {
	// Tail returns the last record line of node (without its newline), or
	// nil when the sink holds no record of node.
	Tail(node string) ([]byte, error)
}

// BackgroundSyncer is implemented by sinks whose records can be fsync'd
// while later ones are written. A Trail under WriteSync fsyncs reads'
// records that way, so that the write of the next record, and the request
// behind it, never waits for that fsync.
type BackgroundSyncer interface {
	// SyncWritten returns a function that makes every record written
	// before SyncWritten durable. The Trail calls SyncWritten like Write,
	// and the function it returns from another goroutine, at the same time
	// as Write and WriteLines (never as Close, nor as another such
	// function). When the function fails, the sink refuses every later
	// call, Sync included, as after a failed Sync.
	SyncWritten() func() error
}

// FileSink writes JSON lines to a file and rotates it by size. It is not
// safe for concurrent use, except for the function SyncWritten returns; a
// Trail serializes the other calls.
type FileSink struct {
	path     string
	maxBytes int64
	keep     int
	f        *os.File // replaced by rotate under syncMu
	size     int64
	cut      int64 // bytes of a partial last line cut at open

	// syncMu serializes fsyncs, rotation and Close with the function of
	// SyncWritten, so that a failed fsync breaks the sink before any other
	// fsync could report success without the pages it lost.
	syncMu sync.Mutex
	mu     sync.Mutex
	broken error // sticky: the file is in a state we cannot vouch for; under mu
}

// err returns the sticky error of a broken sink.
func (s *FileSink) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.broken
}

// breakWith makes err sticky and returns it.
func (s *FileSink) breakWith(err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken == nil {
		s.broken = err
	}
	return s.broken
}

// OpenFile opens (creating with mode 0600) the audit file at path for
// appending. When a record would take the file past maxBytes, the file is
// renamed path.1 (older ones shift to path.2, ...), and a new file is
// started; maxBytes <= 0 never rotates. keep is how many rotated files to
// keep, deleting the oldest beyond it; keep <= 0 keeps them all, since audit
// records are evidence and deleting them should be a decision.
//
// A file that ends in a partial line (a write cut short by a crash) is cut
// back to its last whole line: that record was never acknowledged, because
// a Trail releases a caller only after the whole line was written.
func OpenFile(path string, maxBytes int64, keep int) (*FileSink, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: open file: %w", err)
	}
	s := &FileSink{path: path, maxBytes: maxBytes, keep: keep, f: f}
	if err := s.repair(); err != nil {
		f.Close()
		return nil, err
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

// repair cuts a torn last line and sets s.size.
func (s *FileSink) repair() error {
	fi, err := s.f.Stat()
	if err != nil {
		return fmt.Errorf("audit: stat file: %w", err)
	}
	s.size = fi.Size()
	if s.size == 0 {
		return nil
	}
	var last [1]byte
	if _, err := s.f.ReadAt(last[:], s.size-1); err != nil {
		return fmt.Errorf("audit: read file: %w", err)
	}
	if last[0] == '\n' {
		return nil
	}
	end, err := lastNewline(s.f, s.size)
	if err != nil {
		return err
	}
	if err := s.f.Truncate(end); err != nil {
		return fmt.Errorf("audit: cut a partial last line: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("audit: sync file: %w", err)
	}
	s.cut, s.size = s.size-end, end
	return nil
}

// CutAtOpen returns how many bytes of a partial last line OpenFile cut, 0
// when the file ended in a whole line. The caller logs it: a cut is a sign
// of a crash, and whoever reads the file later should not find it silent.
func (s *FileSink) CutAtOpen() int64 { return s.cut }

// lastNewline returns the offset just past the last '\n' in the first size
// bytes of r, or 0 when there is none.
func lastNewline(r io.ReaderAt, size int64) (int64, error) {
	buf := make([]byte, 64<<10)
	for end := size; end > 0; {
		n := min(int64(len(buf)), end)
		start := end - n
		if _, err := r.ReadAt(buf[:n], start); err != nil {
			return 0, fmt.Errorf("audit: read file: %w", err)
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return start + int64(i) + 1, nil
		}
		end = start
	}
	return 0, nil
}

// Write appends p, first rotating the file if p would take it past
// maxBytes. A failed write is cut back out of the file, so the file never
// holds part of a record.
func (s *FileSink) Write(p []byte) error {
	if err := s.err(); err != nil {
		return err
	}
	if s.maxBytes > 0 && s.size > 0 && s.size+int64(len(p)) > s.maxBytes {
		s.syncMu.Lock()
		err := s.rotate()
		s.syncMu.Unlock()
		if err != nil {
			return s.breakWith(err)
		}
	}
	n, err := s.f.Write(p)
	if err == nil {
		s.size += int64(n)
		return nil
	}
	if n > 0 {
		if terr := s.f.Truncate(s.size); terr != nil {
			s.breakWith(fmt.Errorf("audit: cut a partial record after a failed write: %w", terr))
		}
	}
	return fmt.Errorf("audit: write file: %w", err)
}

// Sync fsyncs the file. A failed fsync breaks the sink for good: the kernel
// may have dropped the pages it could not write and a later fsync can then
// succeed without them, so nothing written since the last good sync can be
// vouched for until the file is reopened.
func (s *FileSink) Sync() error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	return s.syncFile(s.f)
}

// syncFile fsyncs f, breaking the sink when it fails; the caller holds
// syncMu.
func (s *FileSink) syncFile(f *os.File) error {
	if err := s.err(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return s.breakWith(fmt.Errorf("audit: sync file: %w", err))
	}
	return nil
}

// SyncWritten returns a function that fsyncs the file written so far,
// safe to call while later records are written (BackgroundSyncer).
func (s *FileSink) SyncWritten() func() error {
	f := s.f
	return func() error {
		s.syncMu.Lock()
		defer s.syncMu.Unlock()
		if f != s.f {
			return s.err() // rotated: rotate synced f before closing it
		}
		return s.syncFile(f)
	}
}

// Close closes the file.
func (s *FileSink) Close() error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	return s.f.Close()
}

// rotate syncs and closes the current file, shifts the rotated ones, and
// starts an empty file at s.path.
func (s *FileSink) rotate() error {
	// The old file may hold records of the current batch that the Trail has
	// not synced yet; once renamed, the Trail's Sync no longer reaches them.
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("audit: sync file before rotation: %w", err)
	}
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("audit: close file before rotation: %w", err)
	}
	rotated, err := rotatedIndexes(s.path)
	if err != nil {
		return err
	}
	for _, i := range slices.Backward(rotated) {
		from := rotatedName(s.path, i)
		if s.keep > 0 && i >= s.keep {
			if err := os.Remove(from); err != nil {
				return fmt.Errorf("audit: remove oldest rotated file: %w", err)
			}
			continue
		}
		if err := os.Rename(from, rotatedName(s.path, i+1)); err != nil {
			return fmt.Errorf("audit: shift rotated file: %w", err)
		}
	}
	if err := os.Rename(s.path, rotatedName(s.path, 1)); err != nil {
		return fmt.Errorf("audit: rotate file: %w", err)
	}
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("audit: open file after rotation: %w", err)
	}
	s.f, s.size = f, 0
	return syncDir(filepath.Dir(s.path))
}

// Tail returns the last record line of node, looking in the current file
// and then in the rotated ones, newest first.
func (s *FileSink) Tail(node string) ([]byte, error) {
	match := func(line []byte) bool {
		l, err := ParseLine(line)
		return err == nil && l.Node == node
	}
	if line, err := lastMatching(s.f, s.size, match); line != nil || err != nil {
		return line, err
	}
	rotated, err := rotatedIndexes(s.path)
	if err != nil {
		return nil, err
	}
	for _, i := range rotated {
		line, err := tailOfFile(rotatedName(s.path, i), match)
		if line != nil || err != nil {
			return line, err
		}
	}
	return nil, nil
}

func tailOfFile(path string, match func([]byte) bool) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audit: open rotated file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("audit: stat rotated file: %w", err)
	}
	return lastMatching(f, fi.Size(), match)
}

// lastMatching returns a copy of the last whole line in the first size bytes
// of r for which match is true, reading backwards in chunks, or nil.
func lastMatching(r io.ReaderAt, size int64, match func([]byte) bool) ([]byte, error) {
	const chunk = 64 << 10
	var carry []byte // the start of the file up to the lines already looked at
	for end := size; end > 0; {
		n := min(chunk, end)
		start := end - n
		buf := make([]byte, int(n)+len(carry))
		if _, err := r.ReadAt(buf[:n], start); err != nil {
			return nil, fmt.Errorf("audit: read file: %w", err)
		}
		copy(buf[n:], carry)
		for {
			i := bytes.LastIndexByte(buf, '\n')
			if i < 0 {
				break
			}
			if line := buf[i+1:]; len(line) > 0 && match(line) {
				return bytes.Clone(line), nil
			}
			buf = buf[:i]
		}
		carry = buf
		if len(carry) > maxLine {
			carry = nil // a line this long is no record; skip it
		}
		end = start
	}
	if len(carry) > 0 && match(carry) {
		return bytes.Clone(carry), nil
	}
	return nil, nil
}

// RotatedFiles returns the audit files of path in chain order: the rotated
// ones oldest first (path.N, ..., path.1), then path itself. Files that do
// not exist are left out.
func RotatedFiles(path string) ([]string, error) {
	rotated, err := rotatedIndexes(path)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, i := range slices.Backward(rotated) {
		files = append(files, rotatedName(path, i))
	}
	if _, err := os.Stat(path); err == nil {
		files = append(files, path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("audit: stat file: %w", err)
	}
	return files, nil
}

// rotatedIndexes returns the N of every existing path.N, ascending.
func rotatedIndexes(path string) ([]int, error) {
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("audit: list rotated files: %w", err)
	}
	prefix := filepath.Base(path) + "."
	var idx []int
	for _, e := range entries {
		suffix, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || e.IsDir() {
			continue
		}
		if i, err := strconv.Atoi(suffix); err == nil && i > 0 && strconv.Itoa(i) == suffix {
			idx = append(idx, i)
		}
	}
	slices.Sort(idx)
	return idx, nil
}

func rotatedName(path string, i int) string { return path + "." + strconv.Itoa(i) }

// syncDir makes a file's creation or rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("audit: open directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("audit: sync directory: %w", err)
	}
	return nil
}

// WriterSink writes JSON lines to an io.Writer such as standard output, for
// log shippers. It cannot read records back, so a Trail over it resumes its
// chain from the checkpoint store alone.
type WriterSink struct {
	w      io.Writer
	broken error
}

// NewWriterSink returns a sink that writes to w. Closing the sink does not
// close w.
func NewWriterSink(w io.Writer) *WriterSink { return &WriterSink{w: w} }

// Write writes p in one call to the underlying writer. A short write leaves
// a partial record in the stream, after which the sink refuses further
// records rather than glue them onto it.
func (s *WriterSink) Write(p []byte) error {
	if s.broken != nil {
		return s.broken
	}
	n, err := s.w.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		err = fmt.Errorf("audit: write: %w", err)
		if n > 0 {
			s.broken = err
		}
	}
	return err
}

// Sync fsyncs the writer when it is a file. Pipes, terminals and sockets
// cannot be fsync'd; for them Sync does nothing.
func (s *WriterSink) Sync() error {
	if s.broken != nil {
		return s.broken
	}
	f, ok := s.w.(interface{ Sync() error })
	if !ok {
		return nil
	}
	if err := f.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTSUP) {
		s.broken = fmt.Errorf("audit: sync: %w", err)
		return s.broken
	}
	return nil
}

// Close does nothing: the writer belongs to the caller.
func (s *WriterSink) Close() error { return nil }

// WriteLines appends the lines of several whole records at once; on a
// failed write nothing of them stays in the file.
func (s *FileSink) WriteLines(p []byte) error { return s.Write(p) }

// LinesWriter is implemented by sinks that take the lines of several whole
// records in one call (one system call for a batch instead of one per
// record). Like Write, it keeps all of p or nothing.
type LinesWriter interface {
	WriteLines(p []byte) error
}
