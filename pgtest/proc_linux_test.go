package pgtest

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestStart_ClusterRunsAsPostgresUnderRoot(t *testing.T) {
	if os.Getenv(EnvURL) != "" {
		t.Skip("only for the throwaway cluster")
	}
	conn := connect(t, Start(t))
	var backend int
	if err := conn.QueryRow(t.Context(), "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		t.Fatal(err)
	}
	uid := procUID(t, backend)
	want := os.Geteuid()
	if want == 0 {
		acct, err := runAsAccount()
		if err != nil {
			t.Fatal(err)
		}
		want = acct.uid
	}
	if uid != want {
		t.Errorf("backend runs as uid %d, want %d", uid, want)
	}
	if uid == 0 {
		t.Errorf("backend runs as root")
	}
}

// A test binary killed outright (SIGKILL, no cleanup) must not leave a
// server running; its directory goes with the next binary's first start.
func TestServer_DiesWithKilledTestBinary(t *testing.T) {
	if _, err := findBinDir(); err != nil {
		fail(t, err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		t.Fatalf("reading the helper: %v", err)
	}
	var pid int
	var dir string
	if _, err := fmt.Sscanf(line, "ready %d %s", &pid, &dir); err != nil {
		_ = cmd.Process.Kill()
		t.Fatalf("helper said %q", line)
	}
	if !strings.HasPrefix(filepath.Base(dir), dirPrefix) {
		t.Fatalf("helper's cluster directory %q lacks the prefix %q", dir, dirPrefix)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	deadline := time.Now().Add(15 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("postmaster %d still runs 15s after its test binary was killed", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
	sweepOrphans()
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		_ = os.RemoveAll(dir)
		t.Errorf("orphaned cluster directory %s survived the sweep (stat err %v)", dir, err)
	}
}

func alive(pid int) bool {
	// A zombie has exited; /proc still lists it until it is reaped.
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
	fields := strings.Fields(rest)
	return len(fields) > 0 && fields[0] != "Z"
}

func procUID(t *testing.T, pid int) int {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			uid, err := strconv.Atoi(strings.Fields(rest)[0])
			if err != nil {
				t.Fatal(err)
			}
			return uid
		}
	}
	t.Fatalf("no Uid in /proc/%d/status", pid)
	return 0
}
