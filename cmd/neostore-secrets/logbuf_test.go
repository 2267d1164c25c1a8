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
