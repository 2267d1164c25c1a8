package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// replay applies ops to a fresh model of key k: "put" and "del" are
// acknowledged, "put?" and "del?" were sent and never answered.
func replay(t *testing.T, ops string) *keyModel {
	t.Helper()
	m := &keyModel{name: "k"}
	for op := range strings.FieldsSeq(ops) {
		kind, unanswered := strings.CutSuffix(op, "?")
		switch kind {
		case "put":
			m.send(m.nextVersion())
		case "del":
			m.send(absent)
		default:
			t.Fatalf("bad op %q", op)
		}
		if !unanswered {
			m.ack()
		}
	}
	return m
}

func TestKeyModel_Judge(t *testing.T) {
	tests := []struct {
		ops      string
		observed int64 // absent, a version, or -1 for a value the driver never wrote
		want     verdict
	}{
		{"", absent, verdictOK},
		{"", 1, verdictCorrupt},
		{"put", 1, verdictOK},
		{"put", absent, verdictLost},
		{"put", -1, verdictCorrupt},
		{"put", 2, verdictCorrupt},
		{"put put", 2, verdictOK},
		{"put put", 1, verdictLost},
		{"put del", absent, verdictOK},
		{"put del", 1, verdictRevived},
		{"del", absent, verdictOK},
		// An unanswered PUT may or may not have happened.
		{"put put?", 1, verdictOK},
		{"put put?", 2, verdictOK},
		{"put put?", absent, verdictLost},
		{"put del put?", absent, verdictOK},
		{"put del put?", 2, verdictOK},
		{"put del put?", 1, verdictRevived},
		// So may an unanswered DELETE.
		{"put del?", 1, verdictOK},
		{"put del?", absent, verdictOK},
		// Several unanswered ones after the last acknowledged: any of them.
		{"put put? del? put?", 1, verdictOK},
		{"put put? del? put?", 2, verdictOK},
		{"put put? del? put?", absent, verdictOK},
		{"put put? del? put?", 3, verdictOK},
		{"del put? put?", 1, verdictOK},
		{"del put? put?", 2, verdictOK},
		// An acknowledged operation settles everything sent before it.
		{"put? put", 1, verdictLost},
		{"put? put", 2, verdictOK},
		{"put? del", 1, verdictRevived},
		{"put del? put", absent, verdictLost},
		{"put put? del", 2, verdictRevived},
	}
	for _, tt := range tests {
		m := replay(t, tt.ops)
		if got := m.judge(tt.observed); got != tt.want {
			t.Errorf("after %q, holding %s: got %s, want %s", tt.ops, describe(tt.observed), got, tt.want)
		}
	}
}

// TestKeyModel_Settle checks that the next cycle is judged against what the
// store held after the last restart, so one fault is counted once.
func TestKeyModel_Settle(t *testing.T) {
	m := replay(t, "put put put?")
	if v := m.judge(1); v != verdictLost {
		t.Fatalf("holding v1 after v2 was acknowledged: got %s, want lost", v)
	}
	m.settle(1)
	if v := m.judge(1); v != verdictOK {
		t.Errorf("settled on v1, holding v1: got %s, want ok", v)
	}
	if v := m.judge(3); v != verdictLost {
		t.Errorf("settled on v1, the unanswered v3 is no longer acceptable: got %s, want lost", v)
	}
	m.send(m.nextVersion()) // v4, unanswered
	if v := m.judge(4); v != verdictOK {
		t.Errorf("unanswered v4 after settling: got %s, want ok", v)
	}
	m.settle(-1) // a corrupt value counts as nothing from then on
	if v := m.judge(absent); v != verdictOK {
		t.Errorf("settled on a corrupt value, holding nothing: got %s, want ok", v)
	}
}

func TestValue_RoundTrip(t *testing.T) {
	large := 0
	for ver := int64(1); ver <= 200; ver++ {
		v := value("k-0001", ver)
		if got := parseValue("k-0001", v); got != ver {
			t.Fatalf("parseValue(value(k-0001, %d)) = %d", ver, got)
		}
		if len(v) > 4096 {
			large++
		}
		if len(v) > 1 {
			if got := parseValue("k-0001", v[:len(v)-1]); got != -1 {
				t.Errorf("v%d cut short by one byte parsed as %d, want -1", ver, got)
			}
		}
		if got := parseValue("k-0002", v); got != -1 {
			t.Errorf("k-0001's v%d read as k-0002's v%d, want -1", ver, got)
		}
	}
	if large == 0 {
		t.Error("no value larger than a bbolt page in 200 versions")
	}
	for _, bad := range []string{"", "k-0001", "k-0001:", "k-0001:x:", "k-0001:0:", "k-0001:-1:", "k-0001:3:zzz"} {
		if got := parseValue("k-0001", bad); got != -1 {
			t.Errorf("parseValue(%q) = %d, want -1", bad, got)
		}
	}
}

func TestClassifyVerify(t *testing.T) {
	tests := []struct {
		code   int
		output string
		want   verifyResult
	}{
		{0, "node crashtest records 1..20 intact\nOK: 20 records verified; every chain reaches its checkpoint\n", verifyOK},
		{1, `FAILED: truncated at audit.log line 21 (node "crashtest", seq 21): the last line is incomplete (a write cut short)`, verifyTorn},
		// Since verify tells a torn tail apart (branch i11-nodes), it warns and exits 0.
		{0, "node crashtest             records 1..20 intact\nWARNING: torn tail: an unacknowledged record was cut short at audit.log line 21 (17 bytes, no newline); the next start cuts it\nOK: 20 records verified; every chain reaches its checkpoint\n", verifyTorn},
		{1, `FAILED: altered at audit.log line 7 (node "crashtest", seq 7): the HMAC does not match`, verifyFailed},
		{1, `FAILED: truncated at audit.log line 20 (node "crashtest", seq 20): the chain ends before its checkpoint`, verifyFailed},
		{1, `FAILED: removed at audit.log line 9 (node "crashtest", seq 10): records are missing`, verifyFailed},
		{78, "the audit key does not open with this master key; the last line is incomplete", verifyFailed},
		{-1, "signal: killed", verifyFailed},
	}
	for _, tt := range tests {
		if got := classifyVerify(tt.code, tt.output); got != tt.want {
			t.Errorf("exit %d, %q: got %s, want %s", tt.code, tt.output, got, tt.want)
		}
	}
}

func TestCheckBolt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secrets.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("secrets"))
		if err != nil {
			return err
		}
		for i := range 500 {
			if err := b.Put(fmt.Appendf(nil, "k-%04d", i), []byte(value("k", int64(i+1)))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := checkBolt(path); err != nil {
		t.Errorf("a sound file: %v", err)
	}
	if err := checkBolt(filepath.Join(t.TempDir(), "missing.db")); err == nil {
		t.Error("a missing file checked out")
	}
}

// TestBinary_Run checks that exit codes come back as the driver reads them.
func TestBinary_Run(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	b := binary{path: sh}
	if out, _, code := b.run(t.Context(), "-c", "echo hi; exit 1"); code != 1 || out != "hi\n" {
		t.Errorf("got %q, exit %d; want \"hi\\n\", exit 1", out, code)
	}
	if _, _, code := b.run(t.Context(), "-c", "kill -9 $$"); code != -1 {
		t.Errorf("killed: exit %d, want -1", code)
	}
}
