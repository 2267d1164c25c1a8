package main

import (
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

func TestBufferLog(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	out, closeLog := bufferLog(w)
	if _, ok := out.(*bufferedLog); !ok {
		t.Fatalf("a file was not buffered")
	}
	out.Write([]byte("line one\n"))
	got := make(chan string, 1)
	go func() {
		b := make([]byte, 64)
		n, _ := r.Read(b)
		got <- string(b[:n])
	}()
	select {
	case s := <-got:
		if s != "line one\n" {
			t.Errorf("flushed %q", s)
		}
	case <-time.After(5 * logFlushInterval):
		t.Fatalf("a buffered line was not flushed within %v", 5*logFlushInterval)
	}
	out.Write([]byte("last line\n"))
	closeLog()
	w.Close()
	rest, _ := io.ReadAll(r)
	if !strings.Contains(string(rest), "last line") {
		t.Errorf("Close did not flush the last line: %q", rest)
	}
	if plain, _ := bufferLog(&strings.Builder{}); plain == nil {
		t.Errorf("a non-file writer was lost")
	}
}

// TestBufferLog_WriteDoesNotWaitForTheFile: a request's log line goes to
// memory, even while the file does not take writes (here a pipe nobody
// reads, full after 64 KiB), and every line arrives in order once it does.
func TestBufferLog_WriteDoesNotWaitForTheFile(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	out, closeLog := bufferLog(w)
	line := []byte(strings.Repeat("x", 99) + "\n")
	const lines = 3000 // 300 kB: past the pipe's buffer, within the backlog
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		for range lines {
			out.Write(line)
		}
	}()
	select {
	case <-wrote:
	case <-time.After(5 * time.Second):
		t.Fatal("Write blocked while the file did not take writes")
	}
	read := make(chan []byte, 1)
	go func() { b, _ := io.ReadAll(r); read <- b }()
	closeLog()
	w.Close()
	got := <-read
	if want := strings.Repeat(string(line), lines); string(got) != want {
		t.Errorf("read %d bytes, want the %d lines written (%d bytes) in order", len(got), lines, len(want))
	}
}
