package admin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/neostore/neostore-secrets"
)

// Backuper writes a consistent snapshot of a store while it keeps serving;
// bolt.Store implements it.
type Backuper interface {
	// Backup writes the snapshot to w and returns the number of bytes written.
	Backup(w io.Writer) (int64, error)
}

// Trailers of GET /backup. The snapshot is streamed, so its length and digest
// are known only at the end; the client checks both, which catches a stream
// cut short (a failed snapshot aborts the connection).
const (
	trailerBytes  = "X-Backup-Bytes"
	trailerSHA256 = "X-Backup-Sha256"
)

// handleBackup serves GET /backup: the snapshot as application/octet-stream,
// with its length and SHA-256 in trailers. A nil backup means the server's
// store is not the embedded one.
func handleBackup(backup Backuper, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if backup == nil {
			writeError(w, logger, neostore.Errorf(neostore.EINVALID,
				"This server does not use the embedded store; back PostgreSQL up with its own tools (pg_dump, or base backups with WAL archiving)."))
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Trailer", trailerBytes+", "+trailerSHA256)
		sum := sha256.New()
		n, err := backup.Backup(io.MultiWriter(w, sum))
		if err != nil {
			if n == 0 {
				writeError(w, logger, fmt.Errorf("backup: %w", err))
				return
			}
			logger.Error("backup failed midway; aborting the stream", "err", err, "bytes", n)
			// The 200 has gone out: cutting the connection is the only way
			// left to tell the client, which then sees a truncated body.
			panic(http.ErrAbortHandler)
		}
		w.Header().Set(trailerBytes, strconv.FormatInt(n, 10))
		w.Header().Set(trailerSHA256, hex.EncodeToString(sum.Sum(nil)))
		logger.Info("backup taken", "bytes", n)
	})
}

// Backup asks the server for a consistent snapshot of its embedded store,
// writes it to w, and returns its length. It fails when the server's store is
// PostgreSQL, or when the bytes received do not match the length and SHA-256
// the server sent after them.
func (c *Client) Backup(ctx context.Context, w io.Writer) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://admin/backup", nil)
	if err != nil {
		return 0, err
	}
	// A large store takes longer than the 30 s other admin calls get; ctx
	// bounds this one.
	hc := *c.http
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("admin backup: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e errorResponse
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || e.Code == "" {
			return 0, fmt.Errorf("admin backup: unexpected status %d", resp.StatusCode)
		}
		return 0, &neostore.Error{Code: e.Code, Message: e.Message}
	}
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, sum), resp.Body)
	if err != nil {
		return n, fmt.Errorf("admin backup: the stream broke after %d bytes: %w", n, err)
	}
	// Trailers are filled in once the body has been read to its end.
	if got := resp.Trailer.Get(trailerBytes); got != strconv.FormatInt(n, 10) {
		return n, fmt.Errorf("admin backup: received %d bytes, the server sent %q", n, got)
	}
	if got := resp.Trailer.Get(trailerSHA256); got != hex.EncodeToString(sum.Sum(nil)) {
		return n, fmt.Errorf("admin backup: the SHA-256 of the bytes received does not match the server's")
	}
	return n, nil
}
