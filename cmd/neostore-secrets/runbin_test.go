package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// The program built once for the tests that must run it as a real process
// (run, whose signals and exit status are the process's own).
var builtBinary struct {
	once sync.Once
	dir  string
	path string
	err  error
	out  []byte
}

// programBinary returns the path of neostore-secrets built from this
// package (with -race when the tests run with it), building it on first use.
func programBinary(t testing.TB) string {
	t.Helper()
	b := &builtBinary
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", "neostore-run-test-"); b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, "neostore-secrets")
		args := []string{"build", "-o", b.path}
		if raceEnabled {
			args = append(args, "-race")
		}
		b.out, b.err = exec.Command("go", append(args, ".")...).CombinedOutput()
	})
	if b.err != nil {
		t.Fatalf("go build: %v\n%s", b.err, b.out)
	}
	return b.path
}

// removeProgramBinary deletes what programBinary built; TestMain calls it.
func removeProgramBinary() {
	if builtBinary.dir != "" {
		os.RemoveAll(builtBinary.dir)
	}
}
