package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestServe_EmbeddedStoreJournalsChanges: serve wires the embedded store's
// change journal into the trail under the default durability, through the
// metrics wrapper it passes everywhere, and not under a durability that
// does not use it.
func TestServe_EmbeddedStoreJournalsChanges(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra []string
		want  string
	}{
		{"Default", nil, "journal=true"},
		{"Group", []string{"--audit-durability", "group"}, "journal=false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), "data")
			srv := startServer(t, dataDir, newMasterKey(t), tc.extra...)
			if err := srv.stop(); err != nil {
				t.Fatal(err)
			}
			var line string
			for l := range strings.SplitSeq(srv.stderr.String(), "\n") {
				if strings.Contains(l, `msg="audit trail"`) {
					line = l
				}
			}
			if !strings.Contains(line, tc.want) {
				t.Errorf("audit trail log line %q lacks %s", line, tc.want)
			}
		})
	}
}
