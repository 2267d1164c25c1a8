package admin_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/admin"
)

// snapshot is a Backuper that writes data, then fails with err if it is set.
type snapshot struct {
	data []byte
	err  error
}

func (s snapshot) Backup(w io.Writer) (int64, error) {
	n, err := w.Write(s.data)
	if err != nil {
		return int64(n), err
	}
	return int64(n), s.err
}

// serveAdmin serves the admin handler with backup on a socket in a fresh
// data directory and returns a client for it.
func serveAdmin(t *testing.T, backup admin.Backuper) *admin.Client {
	t.Helper()
	dir := t.TempDir()
	ln, err := admin.Listen(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:  admin.NewHandler(nil, backup, nil, nil, slog.New(slog.DiscardHandler)),
		ErrorLog: slog.NewLogLogger(slog.DiscardHandler, slog.LevelError),
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	c, err := admin.Dial(dir)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClient_Backup(t *testing.T) {
	data := make([]byte, 3<<20+17) // several chunks of the chunked encoding
	rand.Read(data)

	t.Run("ArrivesIntact", func(t *testing.T) {
		c := serveAdmin(t, snapshot{data: data})
		var got bytes.Buffer
		n, err := c.Backup(t.Context(), &got)
		if err != nil {
			t.Fatalf("Backup: %v", err)
		}
		if n != int64(len(data)) || !bytes.Equal(got.Bytes(), data) {
			t.Errorf("got %d bytes (%d returned), want the %d bytes of the snapshot", got.Len(), n, len(data))
		}
	})
	t.Run("FailureMidwayIsAnError", func(t *testing.T) {
		c := serveAdmin(t, snapshot{data: data[:1<<20], err: errors.New("disk on fire")})
		_, err := c.Backup(t.Context(), io.Discard)
		if err == nil {
			t.Fatal("Backup of a snapshot that failed midway succeeded")
		}
	})
	t.Run("FailureBeforeTheFirstByteIsAnInternalError", func(t *testing.T) {
		c := serveAdmin(t, snapshot{err: errors.New("disk on fire")})
		_, err := c.Backup(t.Context(), io.Discard)
		if code := neostore.ErrorCode(err); code != neostore.EINTERNAL {
			t.Errorf("error %v has code %q, want %q", err, code, neostore.EINTERNAL)
		}
		if err != nil && strings.Contains(err.Error(), "fire") {
			t.Errorf("error %q carries the server's internal detail", err)
		}
	})
	t.Run("NoEmbeddedStore", func(t *testing.T) {
		c := serveAdmin(t, nil)
		_, err := c.Backup(t.Context(), io.Discard)
		if neostore.ErrorCode(err) != neostore.EINVALID || !strings.Contains(err.Error(), "pg_dump") {
			t.Errorf("Backup from a server without the embedded store = %v, want EINVALID naming pg_dump", err)
		}
	})
}
