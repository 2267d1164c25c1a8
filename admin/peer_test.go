package admin_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/admin"
)

// nobody is the uid (and gid) the helper process drops to: another local user.
const nobody = 65534

// TestPeerHelper is not a test: it is the helper process of the peer
// credential tests, which run this binary again with NEOSTORE_PEER_HELPER
// set. It drops to uid nobody and then, at NEOSTORE_PEER_SOCKET, either
// serves an admin look-alike that answers every request with success
// ("serve") or sends a revoke request and reports what came back ("dial").
func TestPeerHelper(t *testing.T) {
	mode := os.Getenv("NEOSTORE_PEER_HELPER")
	if mode == "" {
		t.Skip("the helper process of TestAdminSocket_PeerCredentials")
	}
	path := os.Getenv("NEOSTORE_PEER_SOCKET")
	if err := dropToNobody(); err != nil {
		fmt.Println("helper: drop privileges:", err)
		os.Exit(1)
	}
	switch mode {
	case "serve":
		ln, err := net.Listen("unix", path)
		if err != nil {
			fmt.Println("helper: listen:", err)
			os.Exit(1)
		}
		os.Chmod(path, 0o666)
		fmt.Println("helper: listening")
		http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusNoContent) // "revoked"
		}))
	case "dial":
		conn, err := net.Dial("unix", path)
		if err != nil {
			fmt.Println("helper: dial:", err)
			os.Exit(1)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprint(conn, "POST /apikeys/k1/revoke HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\n\r\n")
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil {
			fmt.Println("helper: closed:", err)
		} else {
			fmt.Println("helper: answered:", strings.TrimSpace(line))
		}
	}
	os.Exit(0)
}

func dropToNobody() error {
	if err := syscall.Setgroups(nil); err != nil {
		return err
	}
	if err := syscall.Setgid(nobody); err != nil {
		return err
	}
	return syscall.Setuid(nobody)
}

// requireRoot skips a test that must switch users, except in CI, where
// the suite runs as root and the test must not be skipped silently.
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

// sharedDir returns a directory that uid nobody may reach and create files
// in: the loosened data directory of the attack.
func sharedDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	return dir
}

// startHelper runs TestPeerHelper in mode as uid nobody on socket and
// returns its stdout lines as they come.
func startHelper(t *testing.T, mode, socket string) <-chan string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestPeerHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), "NEOSTORE_PEER_HELPER="+mode, "NEOSTORE_PEER_SOCKET="+socket)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		s := bufio.NewScanner(out)
		for s.Scan() {
			if l, ok := strings.CutPrefix(s.Text(), "helper: "); ok {
				lines <- l
			}
		}
	}()
	return lines
}

func nextLine(t *testing.T, lines <-chan string) string {
	t.Helper()
	select {
	case l, ok := <-lines:
		if !ok {
			t.Fatal("the helper process exited without a word")
		}
		return l
	case <-time.After(20 * time.Second):
		t.Fatal("no word from the helper process in 20s")
	}
	return ""
}

// revocations is an APIKeyIssuer that records the keys it is asked to revoke.
type revocations struct {
	mu  sync.Mutex
	ids []string
}

func (r *revocations) Create(context.Context, neostore.NewAPIKey) (string, neostore.APIKey, error) {
	return "", neostore.APIKey{}, neostore.Errorf(neostore.EINVALID, "not here")
}
func (r *revocations) List(context.Context, string) ([]neostore.APIKey, error) { return nil, nil }
func (r *revocations) Revoke(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ids = append(r.ids, id)
	return nil
}
func (r *revocations) revoked() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ids...)
}

// syncLog is a log destination the server writes while the test reads.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *syncLog) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func TestAdminSocket_PeerCredentials(t *testing.T) {
	requireRoot(t)

	t.Run("ClientRefusesAServerOfAnotherUser", func(t *testing.T) {
		// Another user who could write the data directory planted a socket.
		dir := sharedDir(t)
		lines := startHelper(t, "serve", filepath.Join(dir, admin.SocketName))
		if l := nextLine(t, lines); l != "listening" {
			t.Fatalf("helper: %s", l)
		}
		c, err := admin.Dial(dir)
		if err == nil {
			err = c.Revoke(t.Context(), "k1")
			t.Fatalf("Dial accepted a socket served by uid %d; Revoke = %v", nobody, err)
		}
		if !strings.Contains(err.Error(), "uid 65534") || !strings.Contains(err.Error(), "refusing") {
			t.Errorf("Dial error %q does not say it refuses uid 65534", err)
		}
	})

	t.Run("ServerRefusesAClientOfAnotherUser", func(t *testing.T) {
		dir := sharedDir(t)
		logs := &syncLog{}
		ln, err := admin.Listen(dir, slog.New(slog.NewTextHandler(logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		issuer := &revocations{}
		srv := &http.Server{Handler: admin.NewHandler(issuer, nil, nil, nil, slog.New(slog.DiscardHandler)), ErrorLog: slog.NewLogLogger(slog.DiscardHandler, slog.LevelError)}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		// The socket's mode 0600 would keep nobody out; loosen it, as a
		// mistaken chmod might, to reach the check behind it.
		if err := os.Chmod(filepath.Join(dir, admin.SocketName), 0o666); err != nil {
			t.Fatal(err)
		}

		got := nextLine(t, startHelper(t, "dial", filepath.Join(dir, admin.SocketName)))
		if !strings.HasPrefix(got, "closed") {
			t.Errorf("a client running as uid %d got %q, want the connection closed unanswered", nobody, got)
		}
		if ids := issuer.revoked(); len(ids) != 0 {
			t.Errorf("the server revoked %v for uid %d", ids, nobody)
		}
		if !strings.Contains(logs.String(), "refused a connection") || !strings.Contains(logs.String(), "uid 65534") {
			t.Errorf("the refusal was not logged with the uid:\n%s", logs)
		}

		// The server's own user (root here) is still served.
		c, err := admin.Dial(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Revoke(t.Context(), "k2"); err != nil {
			t.Fatal(err)
		}
		if ids := issuer.revoked(); len(ids) != 1 || ids[0] != "k2" {
			t.Errorf("revoked %v, want [k2]", ids)
		}
	})
}
