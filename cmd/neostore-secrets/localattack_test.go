package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets/admin"
)

// nobody is the uid (and gid) of the other local user in these tests.
const nobody = 65534

// TestFakeAdminHelper is not a test: it is the helper process of
// TestAPIKeyRevoke_RefusesAPlantedSocket. It drops to uid nobody and serves,
// at NEOSTORE_FAKE_ADMIN_SOCKET, an admin look-alike that answers "done" to
// everything.
func TestFakeAdminHelper(t *testing.T) {
	path := os.Getenv("NEOSTORE_FAKE_ADMIN_SOCKET")
	if path == "" {
		t.Skip("the helper process of TestAPIKeyRevoke_RefusesAPlantedSocket")
	}
	err := syscall.Setgroups(nil)
	if err == nil {
		err = syscall.Setgid(nobody)
	}
	if err == nil {
		err = syscall.Setuid(nobody)
	}
	if err != nil {
		fmt.Println("helper: drop privileges:", err)
		os.Exit(1)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		fmt.Println("helper: listen:", err)
		os.Exit(1)
	}
	os.Chmod(path, 0o666)
	fmt.Println("helper: listening")
	http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	os.Exit(0)
}

// requireRoot skips a test that switches users unless it runs as root; in
// CI, which runs as root, it fails instead of skipping silently.
func requireRoot(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("peer credentials are checked on Linux only")
	}
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("this test runs a helper process as another user and needs root; CI runs as root")
		}
		t.Skip("needs root to run a helper process as another user (uid 65534)")
	}
}

// The attack of issue 11: a local user who could write the data directory
// replaced the admin socket, and `apikey revoke` said "revoked" with exit 0
// while the key kept working.
func TestAPIKeyRevoke_RefusesAPlantedSocket(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFakeAdminHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), "NEOSTORE_FAKE_ADMIN_SOCKET="+filepath.Join(dir, admin.SocketName))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	word := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			if l, ok := strings.CutPrefix(s.Text(), "helper: "); ok {
				word <- l
				return
			}
		}
		close(word)
	}()
	select {
	case l := <-word:
		if l != "listening" {
			t.Fatalf("helper: %q", l)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the helper did not listen within 20s")
	}

	stdout, stderr, err := cli(t, "apikey", "revoke", "--data", dir, "nsk-id-of-a-live-key")
	if err == nil {
		t.Fatalf("apikey revoke through a socket served by uid %d succeeded (stderr %q)", nobody, stderr)
	}
	t.Logf("apikey revoke refused: %v", err)
	if exitCode(err) == 0 || strings.Contains(stdout+stderr, "revoked") {
		t.Errorf("apikey revoke: exit %d, output %q, want a failure that does not say revoked", exitCode(err), stdout+stderr)
	}
	if !strings.Contains(err.Error(), "uid 65534") {
		t.Errorf("the error %q does not name the socket's user", err)
	}
}
