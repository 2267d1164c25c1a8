package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/neostore/neostore-secrets"
)

// NewHandler returns the admin API over issuer:
//
//	POST /apikeys               create; body createRequest, 201 createResponse
//	GET  /apikeys?tenant=T      list; 200 []keyView
//	POST /apikeys/{id}/revoke   revoke; 204
//	GET  /backup                snapshot of the embedded store; 200 octet-stream with trailers (backup.go)
//	/keys/...                   key rotation (keys.go)
//	/webhooks/..., /deliveries/...  webhook subscriptions (webhooks.go)
//
// backup is nil when the store is not the embedded one; keys is nil when
// the server does not manage keys; hooks is nil when it sends no webhooks.
func NewHandler(issuer neostore.APIKeyIssuer, backup Backuper, keys neostore.KeyManager, hooks neostore.WebhookManager, logger *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /apikeys", handleCreate(issuer, logger))
	mux.Handle("GET /apikeys", handleList(issuer, logger))
	mux.Handle("POST /apikeys/{id}/revoke", handleRevoke(issuer, logger))
	mux.Handle("GET /backup", handleBackup(backup, logger))
	mux.Handle("GET /keys/master", handleMasterKeys(keys, logger))
	mux.Handle("POST /keys/master/reload", handleReloadMaster(keys, logger))
	mux.Handle("POST /keys/master/rewrap", handleRewrap(keys, logger))
	mux.Handle("GET /keys/master/{id}/removable", handleMasterKeyRemovable(keys, logger))
	mux.Handle("POST /keys/tenants/{tenant}/rotate", handleRotateTenant(keys, logger))
	mux.Handle("POST /webhooks", handleAddWebhook(hooks, logger))
	mux.Handle("GET /webhooks", handleListWebhooks(hooks, logger))
	mux.Handle("DELETE /webhooks/{id}", handleRemoveWebhook(hooks, logger))
	mux.Handle("POST /webhooks/{id}/rotate-secret", handleRotateWebhookSecret(hooks, logger))
	mux.Handle("POST /webhooks/{id}/test", handleTestWebhook(hooks, logger))
	mux.Handle("GET /webhooks/{id}/deliveries", handleListDeliveries(hooks, logger))
	mux.Handle("POST /deliveries/{id}/redeliver", handleRedeliver(hooks, logger))
	return mux
}

func handleCreate(issuer neostore.APIKeyIssuer, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req createRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeError(w, logger, neostore.Errorf(neostore.EINVALID, "The request body is not a valid create request."))
			return
		}
		var scopes neostore.Scope
		for _, name := range req.Scopes {
			s, ok := neostore.ParseScope(name)
			if !ok {
				writeError(w, logger, neostore.FieldError("scope", "Scopes are Secret.Read and Secret.Write."))
				return
			}
			scopes |= s
		}
		key, rec, err := issuer.Create(r.Context(), neostore.NewAPIKey{
			Tenant: req.Tenant, Scopes: scopes, Name: req.Name, ExpiresAt: neostore.BoundOf(req.ExpiresAt),
		})
		if err != nil {
			writeError(w, logger, err)
			return
		}
		logger.Info("api key created", "id", rec.ID, "tenant", rec.Tenant, "scopes", rec.Scopes.String())
		writeJSON(w, http.StatusCreated, createResponse{Key: key, Record: viewOf(rec)})
	})
}

func handleList(issuer neostore.APIKeyIssuer, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		keys, err := issuer.List(r.Context(), r.URL.Query().Get("tenant"))
		if err != nil {
			writeError(w, logger, err)
			return
		}
		views := make([]keyView, len(keys))
		for i, k := range keys {
			views[i] = viewOf(k)
		}
		writeJSON(w, http.StatusOK, views)
	})
}

func handleRevoke(issuer neostore.APIKeyIssuer, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if err := issuer.Revoke(r.Context(), id); err != nil {
			writeError(w, logger, err)
			return
		}
		logger.Info("api key revoked", "id", id)
		w.WriteHeader(http.StatusNoContent)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, logger *slog.Logger, err error) {
	p := neostore.ProblemOf(err)
	if p.Code == neostore.EINTERNAL {
		logger.Error("admin request failed", "err", err)
	}
	writeJSON(w, p.Status, errorResponse{Code: p.Code, Message: p.Message, Fields: p.Fields})
}

// Listen creates the admin socket in dataDir with mode 0600, replacing a
// stale socket left by a server that did not shut down cleanly. It refuses
// when another server answers on the socket. The listener closes, and logs,
// every connection from a process that runs neither as this server's user
// nor as root (on Linux, where the kernel reports the peer's uid).
func Listen(dataDir string, logger *slog.Logger) (net.Listener, error) {
	path := filepath.Join(dataDir, SocketName)
	if conn, err := net.DialTimeout("unix", path, time.Second); err == nil {
		conn.Close()
		return nil, fmt.Errorf("another server is serving this data directory (its admin socket %s answers)", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale admin socket: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on admin socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("restrict admin socket: %w", err)
	}
	return &peerListener{Listener: ln, self: euid(), logger: logger}, nil
}
