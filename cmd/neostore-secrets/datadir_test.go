package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serveBriefly runs serve and returns its error: at once when it refuses to
// start, nil after 10 s when it started (and was then stopped).
func serveBriefly(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	err := run(ctx, append([]string{"neostore-secrets", "serve", "--listen", freeAddr(t), "--metrics-listen", "off"}, args...), env(nil), strings.NewReader(""), &bytes.Buffer{}, &stderr)
	return stderr.String(), err
}

// A local user must not be able to change the server's files: the data
// directory and everything the server keeps in it are checked at start as
// strictly as the master key (issue 11: a 0777 directory and a 0666
// audit.log were accepted without a word).
func TestServe_RefusesUnsafeDataFiles(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	masterKey := newMasterKey(t)
	srv := startServer(t, dataDir, masterKey)
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dataDir, databaseFile)
	auditLog := filepath.Join(dataDir, "audit.log")
	for _, f := range []string{db, auditLog} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("the first start left no %s: %v", f, err)
		}
	}
	chmod := func(path string, mode os.FileMode) func() {
		old, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		return func() { os.Chmod(path, old.Mode().Perm()) }
	}
	elsewhere := t.TempDir()

	for _, tc := range []struct {
		name  string
		root  bool     // needs root (chown to another user)
		args  []string // beyond --data and --master-key-file
		spoil func() (undo func())
		want  []string // in the error
	}{
		{"DirectoryMode0777", false, nil, func() func() { return chmod(dataDir, 0o777) }, []string{dataDir, "0777", "chmod 700 " + dataDir}},
		{"DirectoryMode0750", false, nil, func() func() { return chmod(dataDir, 0o750) }, []string{dataDir, "0750", "chmod 700"}},
		{"AuditLogMode0666", false, nil, func() func() { return chmod(auditLog, 0o666) }, []string{auditLog, "0666", "chmod 600 " + auditLog}},
		{"DatabaseMode0640", false, nil, func() func() { return chmod(db, 0o640) }, []string{db, "0640", "chmod 600"}},
		{"RotatedAuditFileMode0644", false, nil, func() func() {
			rotated := auditLog + ".1"
			os.WriteFile(rotated, []byte("{}\n"), 0o644)
			os.Chmod(rotated, 0o644)
			return func() { os.Remove(rotated) }
		}, []string{auditLog + ".1", "0644"}},
		{"SymlinkedDatabase", false, nil, func() func() {
			moved := filepath.Join(elsewhere, "moved.db")
			if err := os.Rename(db, moved); err != nil {
				t.Fatal(err)
			}
			os.Symlink(moved, db)
			return func() { os.Remove(db); os.Rename(moved, db) }
		}, []string{db, "symbolic link"}},
		{"DatabaseOwnedByAnotherUser", true, nil, func() func() {
			if err := os.Chown(db, nobody, nobody); err != nil {
				t.Fatal(err)
			}
			return func() { os.Chown(db, 0, 0) }
		}, []string{db, "owned by uid 65534", "chown"}},
		{"DirectoryOwnedByAnotherUser", true, nil, func() func() {
			if err := os.Chown(dataDir, nobody, nobody); err != nil {
				t.Fatal(err)
			}
			return func() { os.Chown(dataDir, 0, 0) }
		}, []string{dataDir, "owned by uid 65534"}},
		{"AdminSocketOwnedByAnotherUser", true, nil, func() func() {
			sock := staleSocket(t, filepath.Join(dataDir, "admin.sock"))
			if err := os.Lchown(sock, nobody, nobody); err != nil {
				t.Fatal(err)
			}
			return func() { os.Remove(sock) }
		}, []string{filepath.Join(dataDir, "admin.sock"), "owned by uid 65534"}},
		{"AuditFileElsewhereMode0644", false, []string{"--audit-file", filepath.Join(elsewhere, "audit.log")}, func() func() {
			os.WriteFile(filepath.Join(elsewhere, "audit.log"), nil, 0o644)
			os.Chmod(filepath.Join(elsewhere, "audit.log"), 0o644)
			return func() { os.Remove(filepath.Join(elsewhere, "audit.log")) }
		}, []string{filepath.Join(elsewhere, "audit.log"), "0644"}},
		{"AuditFileInAWorldWritableDirectory", false, []string{"--audit-file", filepath.Join(elsewhere, "audit.log")}, func() func() {
			return chmod(elsewhere, 0o777)
		}, []string{elsewhere, "0777", "chmod go-w"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root && os.Geteuid() != 0 {
				if os.Getenv("CI") != "" {
					t.Fatal("needs root to chown a file to another user; CI runs as root")
				}
				t.Skip("needs root to chown a file to another user")
			}
			undo := tc.spoil()
			defer undo()
			stderr, err := serveBriefly(t, append([]string{"--data", dataDir, "--master-key-file", masterKey}, tc.args...)...)
			if err == nil {
				t.Fatalf("serve started (stderr %s)", stderr)
			}
			if got := exitCode(err); got != exitConfig {
				t.Errorf("exit code = %d, want %d (%v)", got, exitConfig, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}

	t.Run("PrivateDirectoryStarts", func(t *testing.T) {
		// A socket left by a crash, mode and all, is replaced, not refused.
		os.Chmod(staleSocket(t, filepath.Join(dataDir, "admin.sock")), 0o755)
		srv := startServer(t, dataDir, masterKey, "--audit-file", filepath.Join(elsewhere, "audit.log"))
		if err := srv.stop(); err != nil {
			t.Fatal(err)
		}
		srv = startServer(t, dataDir, masterKey)
		if err := srv.stop(); err != nil {
			t.Fatal(err)
		}
	})
}

// staleSocket leaves a Unix socket at path with nothing listening on it, as
// a server that crashed does.
func staleSocket(t *testing.T, path string) string {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	return path
}
