package bolt

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	bbolt "go.etcd.io/bbolt"

	"github.com/neostore/neostore-secrets"
)

// mappedKiB returns how many KiB of the file at path are resident in this
// process's maps (the Rss lines of /proc/self/smaps for that file).
func mappedKiB(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	defer f.Close()
	total, in := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if fields := strings.Fields(line); len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			in = len(fields) >= 6 && fields[5] == path
			continue
		}
		if rest, ok := strings.CutPrefix(line, "Rss:"); ok && in {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err != nil {
				t.Fatalf("smaps line %q: %v", line, err)
			}
			total += n
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return total
}

func TestStore_ReleasesWhatWritersMapped(t *testing.T) {
	s := openCommitTest(t)
	s.releaseAfter = 1 << 62 // not yet
	const n = 512
	value := bytes.Repeat([]byte{0x5a}, 4000)
	if err := s.batch(t.Context(), func(tx *bbolt.Tx) error {
		for i := range n {
			if err := putSecret(tx, "t", fmt.Sprintf("k%04d", i), encodeSecret(neostore.SealedSecret{Ciphertext: value}), 0); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("bulk write: %v", err)
	}
	for i := range n { // read every page, as writers' and readers' lookups do
		if _, err := s.GetSecret(t.Context(), "t", fmt.Sprintf("k%04d", i)); err != nil {
			t.Fatalf("GetSecret: %v", err)
		}
	}
	loaded := mappedKiB(t, s.Path())
	if loaded < n*4000/1024/2 {
		t.Fatalf("after reading %d 4 KB secrets, %d KiB of the file are mapped: the test cannot see a release", n, loaded)
	}

	s.releaseAfter = 1 // the next commit has written enough
	mustPut(t, s, "one-more")
	released := mappedKiB(t, s.Path())
	if released > loaded/8 {
		t.Errorf("after enough writes %d KiB of the file stay mapped (%d before): want the writers' pages released", released, loaded)
	}
	for i := range n { // the data is all still there, read back from the page cache
		got, err := s.GetSecret(t.Context(), "t", fmt.Sprintf("k%04d", i))
		if err != nil || !bytes.Equal(got.Ciphertext, value) {
			t.Fatalf("GetSecret after the release: err %v, %d bytes", err, len(got.Ciphertext))
		}
	}
}

func mustPut(t *testing.T, s *Store, key string) {
	t.Helper()
	if err := s.PutSecret(t.Context(), "t", key, neostore.SealedSecret{Ciphertext: []byte("v")}, neostore.Change{}); err != nil {
		t.Fatalf("PutSecret: %v", err)
	}
}
