package audit_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/neostore/neostore-secrets/audit"
)

func TestFileSink_Rotation(t *testing.T) {
	t.Run("ChainContinuesAcrossFiles", func(t *testing.T) {
		path := tempPath(t)
		tr := openTrail(t, audit.Config{Sink: openFileSink(t, path, 2000, 0)})
		for i := range 40 {
			must(t, tr.Audit(context.Background(), rec(i)))
		}
		must(t, tr.Close())

		files, err := audit.RotatedFiles(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(files) < 3 {
			t.Fatalf("got files %v, want several after rotation", files)
		}
		for _, f := range files {
			fi, err := os.Stat(f)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Size() > 2000 {
				t.Errorf("%s is %d bytes, want at most maxBytes 2000", filepath.Base(f), fi.Size())
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s has mode %v, want 0600", filepath.Base(f), fi.Mode().Perm())
			}
		}
		// The first record of each file chains to the last of the one before.
		for i := 1; i < len(files); i++ {
			before, after := readLines(t, files[i-1]), readLines(t, files[i])
			first, _ := audit.ParseLine([]byte(after[0]))
			sum := sha256.Sum256([]byte(before[len(before)-1]))
			if first.Prev != hex.EncodeToString(sum[:]) {
				t.Errorf("%s starts with prev %s, want the hash of the last line of %s", filepath.Base(files[i]), first.Prev, filepath.Base(files[i-1]))
			}
		}
		if r := mustVerify(t, files); r.Records != 40 || r.Chains[0].First != 1 {
			t.Errorf("report = %+v, want 40 records from seq 1", r)
		}
	})

	t.Run("ConcurrentWritersAcrossRotations", func(t *testing.T) {
		path := tempPath(t)
		tr := openTrail(t, audit.Config{Sink: openFileSink(t, path, 3000, 0)})
		var wg sync.WaitGroup
		for g := range 16 {
			wg.Go(func() {
				for i := range 25 {
					if err := tr.Audit(context.Background(), rec(g*25+i)); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		must(t, tr.Close())
		files, _ := audit.RotatedFiles(path)
		if r := mustVerify(t, files); r.Records != 400 || r.Chains[0].Last != 400 {
			t.Errorf("report = %+v over %d files, want 400 records", r, len(files))
		}
	})

	t.Run("KeepDeletesTheOldestAndTheRestVerifies", func(t *testing.T) {
		path := tempPath(t)
		tr := openTrail(t, audit.Config{Sink: openFileSink(t, path, 1000, 2)})
		for i := range 40 {
			must(t, tr.Audit(context.Background(), rec(i)))
		}
		must(t, tr.Close())
		files, _ := audit.RotatedFiles(path)
		want := []string{path + ".2", path + ".1", path}
		if len(files) != len(want) || files[0] != want[0] || files[1] != want[1] || files[2] != want[2] {
			t.Fatalf("files = %v, want %v", files, want)
		}
		r := mustVerify(t, files)
		if r.Chains[0].First == 1 || r.Chains[0].Last != 40 {
			t.Errorf("report = %+v, want a chain starting past 1 and ending at 40", r)
		}
	})

	t.Run("RestartAfterRotationContinuesTheChain", func(t *testing.T) {
		path := tempPath(t)
		for range 3 {
			tr := openTrail(t, audit.Config{Sink: openFileSink(t, path, 1500, 0)})
			for i := range 10 {
				must(t, tr.Audit(context.Background(), rec(i)))
			}
			must(t, tr.Close())
		}
		files, _ := audit.RotatedFiles(path)
		if r := mustVerify(t, files); r.Records != 30 || r.Chains[0].Last != 30 {
			t.Errorf("report = %+v, want 30 records", r)
		}
	})
}

func TestFileSink_OpenFile(t *testing.T) {
	t.Run("CutsAPartialLastLine", func(t *testing.T) {
		path := tempPath(t)
		writeTrail(t, path, "node-a", testKey, 3)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(`{"time":"2026-03-01T12:00`) // a write cut short by a crash
		f.Close()
		r := mustVerify(t, []string{path})
		if r.Records != 3 || r.TornTail == nil || r.TornTail.Line != 4 || r.TornTail.Bytes != 25 {
			t.Errorf("before repair: report = %+v, torn tail %+v; want 3 records and a torn line 4 of 25 bytes", r, r.TornTail)
		}
		s := openFileSink(t, path, 0, 0)
		if got := s.CutAtOpen(); got != 25 {
			t.Errorf("CutAtOpen = %d, want the 25 bytes of the partial line", got)
		}
		must(t, s.Close())
		writeTrail(t, path, "node-a", testKey, 2)
		if r := mustVerify(t, []string{path}); r.Records != 5 {
			t.Errorf("after repair: Records = %d, want 5", r.Records)
		}
	})

	t.Run("CreatesTheFileWithMode0600", func(t *testing.T) {
		path := tempPath(t)
		s := openFileSink(t, path, 0, 0)
		defer s.Close()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
		}
	})
}

func TestWriterSink_Sync(t *testing.T) {
	t.Run("PipeIsNotAnError", func(t *testing.T) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		defer w.Close()
		s := audit.NewWriterSink(w)
		go func() { buf := make([]byte, 1024); r.Read(buf) }()
		must(t, s.Write([]byte("{}\n")))
		if err := s.Sync(); err != nil {
			t.Errorf("Sync on a pipe = %v, want nil", err)
		}
	})
}
