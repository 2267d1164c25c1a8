package audit_test

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/neostore/neostore-secrets/audit"
)

func TestVerify(t *testing.T) {
	// Each case edits an intact trail of 10 records as an attacker with write
	// access to the file, but not the key, could.
	tests := []struct {
		name     string
		edit     func(lines []string) []string
		useCkpt  bool
		wantKind audit.ProblemKind
		wantLine int
	}{
		{"EditedByte", func(l []string) []string {
			l[4] = strings.Replace(l[4], `"status":200`, `"status":201`, 1)
			return l
		}, false, audit.Altered, 5},
		{"DeletedLine", func(l []string) []string {
			return append(l[:3:3], l[4:]...)
		}, false, audit.Removed, 4},
		{"SwappedLines", func(l []string) []string {
			l[5], l[6] = l[6], l[5]
			return l
		}, false, audit.Reordered, 6},
		{"RecordMovedFarBack", func(l []string) []string {
			moved := l[2]
			l = append(l[:2:2], l[3:]...)
			return append(l, moved)
		}, false, audit.Reordered, 3},
		{"InsertedForgedLine", func(l []string) []string {
			// A plausible record: next seq after line 3, correct prev, made-up mac.
			forged := forgeAfter(t, l[2], l[3])
			return append(l[:3:3], append([]string{forged}, l[3:]...)...)
		}, false, audit.Inserted, 4},
		{"InsertedJunk", func(l []string) []string {
			return append(l[:3:3], append([]string{"hello"}, l[3:]...)...)
		}, false, audit.Inserted, 4},
		{"DuplicatedLine", func(l []string) []string {
			return append(l[:3:3], append([]string{l[2]}, l[3:]...)...)
		}, false, audit.Inserted, 4},
		{"CutTailAgainstCheckpoint", func(l []string) []string {
			return l[:7]
		}, true, audit.Truncated, 7},
		{"ForgedChainWithAnotherKey", func(l []string) []string {
			return resealed(t, l, otherKey)
		}, false, audit.Altered, 1},
		{"EmptiedFileAgainstCheckpoint", func(l []string) []string {
			return nil
		}, true, audit.Truncated, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tempPath(t)
			ck := writeTrail(t, path, "node-a", testKey, 10)
			lines := tt.edit(readLines(t, path))
			if lines == nil {
				must(t, os.WriteFile(path, nil, 0o600))
			} else {
				writeLines(t, path, lines)
			}
			var cks []audit.Checkpoint
			if tt.useCkpt {
				cks = []audit.Checkpoint{ck}
			}
			_, err := audit.Verify([]string{path}, testKey, cks)
			p := problemOf(t, err)
			if p.Kind != tt.wantKind || p.Line != tt.wantLine || p.File != path {
				t.Errorf("problem = %+v, want %s at %s:%d", p, tt.wantKind, path, tt.wantLine)
			}
			t.Log(p)
		})
	}

	t.Run("IntactTrailVerifiesAgainstItsCheckpoint", func(t *testing.T) {
		path := tempPath(t)
		ck := writeTrail(t, path, "node-a", testKey, 10)
		r := mustVerify(t, []string{path}, ck)
		if r.Records != 10 || !bytes.Equal(r.Chains[0].LastHash, ck.Hash) {
			t.Errorf("report = %+v, want 10 records ending at the checkpoint's hash", r)
		}
	})

	t.Run("CutTailGoesUnnoticedWithoutACheckpoint", func(t *testing.T) {
		// Documented limit: the chain alone cannot tell a cut tail from the
		// end; that is what the checkpoint is for.
		path := tempPath(t)
		writeTrail(t, path, "node-a", testKey, 10)
		writeLines(t, path, readLines(t, path)[:7])
		mustVerify(t, []string{path})
	})

	t.Run("CheckpointOfAnotherHistory", func(t *testing.T) {
		path := tempPath(t)
		writeTrail(t, path, "node-a", testKey, 5)
		lines := readLines(t, path)
		writeLines(t, path, lines[:3])
		writeTrail(t, path, "node-a", testKey, 2) // seqs 4 and 5 written again
		sum := sha256.Sum256([]byte(lines[4]))
		_, err := audit.Verify([]string{path}, testKey, []audit.Checkpoint{{Node: "node-a", Seq: 5, Hash: sum[:]}})
		if p := problemOf(t, err); p.Kind != audit.Truncated || p.Line != 5 {
			t.Errorf("problem = %+v, want truncated at line 5", p)
		}
	})

	t.Run("TornTail", func(t *testing.T) {
		// A crash cut the last write short: every record before verifies,
		// against the checkpoint too, and the fragment is reported as a torn
		// tail, not as a problem.
		path := tempPath(t)
		writeTrail(t, path, "node-a", testKey, 10)
		lines := readLines(t, path)
		ck := checkpointOf("node-a", 9, lines[8])
		torn := lines[9][:len(lines[9])/2]
		must(t, os.WriteFile(path, []byte(strings.Join(lines[:9], "\n")+"\n"+torn), 0o600))
		r := mustVerify(t, []string{path}, ck)
		if r.Records != 9 || r.TornTail == nil || *r.TornTail != (audit.TornTail{File: path, Line: 10, Bytes: len(torn)}) {
			t.Errorf("report = %+v, torn tail %+v; want 9 records and a torn line 10 of %d bytes", r, r.TornTail, len(torn))
		}
	})

	t.Run("TornTailShortOfTheCheckpointIsTruncated", func(t *testing.T) {
		// Records the checkpoint covers were cut: not a crash.
		path := tempPath(t)
		ck := writeTrail(t, path, "node-a", testKey, 10)
		lines := readLines(t, path)
		must(t, os.WriteFile(path, []byte(strings.Join(lines[:9], "\n")+"\n"+lines[9][:20]), 0o600))
		_, err := audit.Verify([]string{path}, testKey, []audit.Checkpoint{ck})
		if p := problemOf(t, err); p.Kind != audit.Truncated {
			t.Errorf("problem = %+v, want truncated", p)
		}
	})

	t.Run("AlteredWholeLastLineIsNotATornTail", func(t *testing.T) {
		// A complete line, newline and all, that fails its mac was changed.
		path := tempPath(t)
		writeTrail(t, path, "node-a", testKey, 10)
		lines := readLines(t, path)
		lines[9] = lines[9][:len(lines[9])/2]
		writeLines(t, path, lines)
		r, err := audit.Verify([]string{path}, testKey, nil)
		if p := problemOf(t, err); p.Kind != audit.Altered || p.Line != 10 || r.TornTail != nil {
			t.Errorf("problem = %+v, torn tail %+v; want altered at line 10 and no torn tail", p, r.TornTail)
		}
	})

	t.Run("InterleavedNodes", func(t *testing.T) {
		dir := t.TempDir()
		a, b := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
		writeTrail(t, a, "node-a", testKey, 5)
		writeTrail(t, b, "node-b", testKey, 5)
		la, lb := readLines(t, a), readLines(t, b)
		var merged []string
		for i := range 5 {
			merged = append(merged, la[i], lb[i])
		}
		path := filepath.Join(dir, "merged.log")
		writeLines(t, path, merged)
		if r := mustVerify(t, []string{path}); len(r.Chains) != 2 || r.Records != 10 {
			t.Errorf("report = %+v, want two chains of 5", r)
		}

		writeLines(t, path, append(merged[:5:5], merged[6:]...)) // node-b's seq 3 removed
		_, err := audit.Verify([]string{path}, testKey, nil)
		if p := problemOf(t, err); p.Kind != audit.Removed || p.Node != "node-b" || p.Seq != 4 {
			t.Errorf("problem = %+v, want node-b records removed before seq 4", p)
		}
	})

	t.Run("LinesFromAnotherNodeCannotBeRelabelled", func(t *testing.T) {
		path := tempPath(t)
		writeTrail(t, path, "node-a", testKey, 3)
		lines := readLines(t, path)
		lines[1] = strings.Replace(lines[1], `"node":"node-a"`, `"node":"node-b"`, 1)
		writeLines(t, path, lines)
		_, err := audit.Verify([]string{path}, testKey, nil)
		if p := problemOf(t, err); p.Line != 2 {
			t.Errorf("problem = %+v, want line 2", p)
		}
	})
}

// forgeAfter returns a record line that claims to follow prevLine: the seq
// and prev are right, the content is copied from like, the mac is made up.
func forgeAfter(t *testing.T, prevLine, like string) string {
	t.Helper()
	l, err := audit.ParseLine([]byte(like))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(prevLine))
	forged := strings.Replace(like, l.Prev, hexOf(sum[:]), 1)
	forged = strings.Replace(forged, `"key":"`, `"key":"x`, 1)
	return strings.Replace(forged, l.MAC, strings.Repeat("ab", 32), 1)
}

// resealed returns lines rewritten as a trail sealed with key: what an
// attacker who recomputes the chain, but holds the wrong key, produces.
func resealed(t *testing.T, lines []string, key []byte) []string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	writeLines(t, src, lines)
	var recs []audit.Line
	must(t, audit.Search([]string{src}, audit.Filter{}, func(l audit.Line) error {
		recs = append(recs, l)
		return nil
	}))
	dst := filepath.Join(dir, "dst")
	writeTrailOf(t, dst, "node-a", key, recs)
	return readLines(t, dst)
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func FuzzVerify(f *testing.F) {
	dir := f.TempDir()
	path := filepath.Join(dir, "seed.log")
	writeTrail(f, path, "node-a", testKey, 4)
	seed, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add(seed[:len(seed)/2])
	f.Add(bytes.ReplaceAll(seed, []byte(`"seq":2`), []byte(`"seq":9`)))
	f.Add([]byte("{}\n\n{\"mac\":\"\"}"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		report, err := audit.VerifyReader(bytes.NewReader(data), "fuzz", testKey, nil)
		if err != nil {
			return
		}
		// Without the key, only runs of genuine lines can verify, followed at
		// most by a torn tail that is reported and is what is left of a record.
		genuine := data
		if report.TornTail != nil {
			cut := bytes.LastIndexByte(data, '\n') + 1
			tail := data[cut:]
			genuine = data[:cut]
			const start = `{"time":"`
			if !bytes.HasPrefix(tail, []byte(start)) && !bytes.HasPrefix([]byte(start), tail) {
				t.Errorf("a torn tail that is no prefix of a record verified: %q", data)
			}
		}
		if !bytes.Contains(seed, bytes.TrimSuffix(genuine, []byte("\n"))) {
			t.Errorf("a trail that is no run of genuine lines verified: %q", data)
		}
	})
}

// checkpointOf returns a checkpoint of node at seq, whose line is line.
func checkpointOf(node string, seq uint64, line string) audit.Checkpoint {
	sum := sha256.Sum256([]byte(line))
	return audit.Checkpoint{Node: node, Seq: seq, Hash: sum[:]}
}
