package main

import (
	"io"
	"os"
	"sync"
	"time"
)

const (
	// logFlushInterval bounds how long a log line waits in the buffer.
	logFlushInterval = 100 * time.Millisecond
	// logFlushSize wakes the flusher before the interval ends.
	logFlushSize = 32 << 10
	// logMaxBacklog bounds the lines held while the flusher is stuck (a
	// terminal or pipe nobody reads): beyond it a line waits for the file,
	// so lines are never dropped and memory stays bounded.
	logMaxBacklog = 4 << 20
	// logKeepBuffer is the largest buffer kept for reuse after a flush.
	logKeepBuffer = 256 << 10
)

// bufferedLog batches the lines written to a log file, so that the access
// log's line per request does not cost a write system call per request
// (about 7% of a GET's CPU in the profile). Lines are flushed every 100 ms,
// when 32 KiB are waiting, and on Close; a process crash can lose the last
// 100 ms of log lines, never an audit record (the audit trail has its own
// writer). A request only appends its line to memory: the write to the
// file happens on the flusher's goroutine from a second buffer, so that
// no request waits for it (a flush under the lock that requests take, or
// a full buffer flushed by the request that filled it, put a 64 KiB
// write(2) into a lone client's p99).
type bufferedLog struct {
	out   io.Writer
	mu    sync.Mutex // guards buf
	buf   []byte     // lines not yet taken by a flush
	fmu   sync.Mutex // serializes flushes, and guards spare
	spare []byte
	wake  chan struct{}
	stop  chan struct{}
	done  chan struct{}
}

// bufferLog wraps w when it is a file (a terminal, a pipe to journald);
// other writers, such as the buffers of tests, are returned as they are.
func bufferLog(w io.Writer) (io.Writer, func()) {
	f, ok := w.(*os.File)
	if !ok {
		return w, func() {}
	}
	b := &bufferedLog{out: f, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go b.run()
	return b, b.close
}

func (b *bufferedLog) Write(p []byte) (int, error) {
	b.mu.Lock()
	b.buf = append(b.buf, p...)
	n := len(b.buf)
	b.mu.Unlock()
	if n >= logFlushSize {
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
	if n >= logMaxBacklog {
		b.flush()
	}
	return len(p), nil
}

// flush writes every line buffered so far, holding mu only to swap buffers.
func (b *bufferedLog) flush() {
	b.fmu.Lock()
	defer b.fmu.Unlock()
	b.mu.Lock()
	data := b.buf
	b.buf = b.spare[:0]
	b.mu.Unlock()
	if len(data) > 0 {
		_, _ = b.out.Write(data) // nowhere left to report a failing log
	}
	if cap(data) <= logKeepBuffer {
		b.spare = data[:0]
	} else {
		b.spare = nil
	}
}

func (b *bufferedLog) run() {
	defer close(b.done)
	t := time.NewTicker(logFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			b.flush()
			return
		case <-t.C:
			b.flush()
		case <-b.wake:
			b.flush()
		}
	}
}

func (b *bufferedLog) close() {
	close(b.stop)
	<-b.done
}
