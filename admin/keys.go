package admin

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/neostore/neostore-secrets"
)

// The key-rotation endpoints (routes in NewHandler):
//
//	GET  /keys/master                    master keys in use, with usage; 200 []masterKeyView
//	POST /keys/master/reload             re-read the master key file; 200 []masterKeyView
//	POST /keys/master/rewrap             wrap every tenant key anew; 200 rewrapView
//	GET  /keys/master/{id}/removable     204, or 409 naming what still depends on the key
//	POST /keys/tenants/{tenant}/rotate   rotate a tenant's data key; body rotateTenantRequest, 200 tenantRotationView
//
// None of them carries key material: only key ids, statuses and counts.

type masterKeyView struct {
	ID         uint32 `json:"id"`
	Status     string `json:"status"`
	Primary    bool   `json:"primary"`
	TenantKeys int    `json:"tenantKeys"`
	KeyCheck   bool   `json:"keyCheck"`
	AuditKey   bool   `json:"auditKey"`
	// WebhookSecrets counts the webhook signing secrets sealed under the key.
	WebhookSecrets int `json:"webhookSecrets"`
}

type rewrapView struct {
	Tenants          int  `json:"tenants"`
	Rewrapped        int  `json:"rewrapped"`
	KeyCheckResealed bool `json:"keyCheckResealed"`
	AuditKeyResealed bool `json:"auditKeyResealed"`
	WebhookSecrets   int  `json:"webhookSecretsResealed"`
}

type rotateTenantRequest struct {
	Grace string `json:"grace"` // a Go duration, e.g. "15s"
}

type tenantRotationView struct {
	Tenant        string   `json:"tenant"`
	NewKeyID      uint32   `json:"newKeyId"`
	RemovedKeyIDs []uint32 `json:"removedKeyIds"`
	Secrets       int      `json:"secrets"`
	Resealed      int      `json:"resealed"`
	Skipped       int      `json:"skipped"`
}

func masterKeyViews(keys []neostore.MasterKey) []masterKeyView {
	views := make([]masterKeyView, len(keys))
	for i, k := range keys {
		views[i] = masterKeyView(k)
	}
	return views
}

func masterKeys(views []masterKeyView) []neostore.MasterKey {
	keys := make([]neostore.MasterKey, len(views))
	for i, v := range views {
		keys[i] = neostore.MasterKey(v)
	}
	return keys
}

// MarshalMasterKeys renders master keys as the JSON array `keys list --json`
// prints.
func MarshalMasterKeys(keys []neostore.MasterKey) ([]byte, error) {
	return json.MarshalIndent(masterKeyViews(keys), "", "  ")
}

// errNoKeyManager answers the key endpoints of a server started without
// key management.
var errNoKeyManager = neostore.Errorf(neostore.EINVALID, "This server does not manage keys over its admin socket.")

func handleMasterKeys(keys neostore.KeyManager, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if keys == nil {
			writeError(w, logger, errNoKeyManager)
			return
		}
		list, err := keys.MasterKeys(r.Context())
		if err != nil {
			writeError(w, logger, err)
			return
		}
		writeJSON(w, http.StatusOK, masterKeyViews(list))
	})
}

func handleReloadMaster(keys neostore.KeyManager, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if keys == nil {
			writeError(w, logger, errNoKeyManager)
			return
		}
		list, err := keys.ReloadMaster(r.Context())
		if err != nil {
			writeError(w, logger, err)
			return
		}
		logger.Info("master keyset reloaded", "keys", len(list), "primary", primaryOf(list))
		writeJSON(w, http.StatusOK, masterKeyViews(list))
	})
}

func handleRewrap(keys neostore.KeyManager, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if keys == nil {
			writeError(w, logger, errNoKeyManager)
			return
		}
		rep, err := keys.Rewrap(r.Context())
		if err != nil {
			writeError(w, logger, err)
			return
		}
		logger.Info("tenant keys rewrapped", "tenants", rep.Tenants, "rewrapped", rep.Rewrapped,
			"keyCheckResealed", rep.KeyCheckResealed, "auditKeyResealed", rep.AuditKeyResealed, "webhookSecretsResealed", rep.WebhookSecrets)
		writeJSON(w, http.StatusOK, rewrapView(rep))
	})
}

func handleMasterKeyRemovable(keys neostore.KeyManager, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if keys == nil {
			writeError(w, logger, errNoKeyManager)
			return
		}
		id, err := strconv.ParseUint(r.PathValue("id"), 10, 32)
		if err != nil {
			writeError(w, logger, neostore.FieldError("id", "A master key id is a decimal number below 2^32."))
			return
		}
		if err := keys.CheckMasterKeyRemoval(r.Context(), uint32(id)); err != nil {
			writeError(w, logger, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

func handleRotateTenant(keys neostore.KeyManager, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if keys == nil {
			writeError(w, logger, errNoKeyManager)
			return
		}
		var req rotateTenantRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeError(w, logger, neostore.Errorf(neostore.EINVALID, "The request body is not a valid rotate request."))
			return
		}
		grace, err := time.ParseDuration(req.Grace)
		if err != nil || grace < 0 {
			writeError(w, logger, neostore.FieldError("grace", "The grace is a non-negative duration such as 15s."))
			return
		}
		tenant := r.PathValue("tenant")
		rep, err := keys.RotateTenantKey(r.Context(), tenant, grace)
		if err != nil {
			writeError(w, logger, err)
			return
		}
		logger.Info("tenant data key rotated", "tenant", rep.Tenant, "newKeyId", rep.NewKeyID,
			"removedKeyIds", rep.RemovedKeyIDs, "secrets", rep.Secrets, "resealed", rep.Resealed, "skipped", rep.Skipped)
		writeJSON(w, http.StatusOK, tenantRotationView(rep))
	})
}

func primaryOf(keys []neostore.MasterKey) uint32 {
	for _, k := range keys {
		if k.Primary {
			return k.ID
		}
	}
	return 0
}

var _ neostore.KeyManager = (*Client)(nil)

// long returns a copy of c without the client-wide timeout: a rewrap or a
// tenant rotation lasts as long as the store is large (and the grace),
// and is bounded by ctx instead.
func (c *Client) long() *Client {
	return &Client{http: &http.Client{Transport: c.http.Transport}}
}

// MasterKeys implements neostore.KeyManager.
func (c *Client) MasterKeys(ctx context.Context) ([]neostore.MasterKey, error) {
	var views []masterKeyView
	if err := c.do(ctx, http.MethodGet, "/keys/master", nil, http.StatusOK, &views); err != nil {
		return nil, err
	}
	return masterKeys(views), nil
}

// ReloadMaster implements neostore.KeyManager.
func (c *Client) ReloadMaster(ctx context.Context) ([]neostore.MasterKey, error) {
	var views []masterKeyView
	if err := c.long().do(ctx, http.MethodPost, "/keys/master/reload", nil, http.StatusOK, &views); err != nil {
		return nil, err
	}
	return masterKeys(views), nil
}

// Rewrap implements neostore.KeyManager.
func (c *Client) Rewrap(ctx context.Context) (neostore.RewrapReport, error) {
	var v rewrapView
	if err := c.long().do(ctx, http.MethodPost, "/keys/master/rewrap", nil, http.StatusOK, &v); err != nil {
		return neostore.RewrapReport{}, err
	}
	return neostore.RewrapReport(v), nil
}

// CheckMasterKeyRemoval implements neostore.KeyManager.
func (c *Client) CheckMasterKeyRemoval(ctx context.Context, id uint32) error {
	return c.long().do(ctx, http.MethodGet, "/keys/master/"+strconv.FormatUint(uint64(id), 10)+"/removable", nil, http.StatusNoContent, nil)
}

// RotateTenantKey implements neostore.KeyManager.
func (c *Client) RotateTenantKey(ctx context.Context, tenant string, grace time.Duration) (neostore.TenantKeyRotation, error) {
	body, _ := json.Marshal(rotateTenantRequest{Grace: grace.String()})
	var v tenantRotationView
	if err := c.long().do(ctx, http.MethodPost, "/keys/tenants/"+url.PathEscape(tenant)+"/rotate", body, http.StatusOK, &v); err != nil {
		return neostore.TenantKeyRotation{}, err
	}
	return neostore.TenantKeyRotation(v), nil
}

// AuditedKeys returns keys with every rotation recorded in the audit trail
// before it runs (key.rotate for a master reload or a tenant rotation,
// key.rewrap for a rewrap): when the trail refuses the record, the action
// is refused (EUNAVAILABLE) and nothing changes. Listing and checking are
// not recorded: they change nothing.
func AuditedKeys(keys neostore.KeyManager, auditor neostore.Auditor, now func() time.Time) neostore.KeyManager {
	if auditor == nil || keys == nil {
		return keys
	}
	return &auditedKeys{KeyManager: keys, auditor: auditor, now: now}
}

type auditedKeys struct {
	neostore.KeyManager
	auditor neostore.Auditor
	now     func() time.Time
}

func (a *auditedKeys) record(ctx context.Context, op, tenant, key string) error {
	return a.auditor.Audit(ctx, &neostore.AuditRecord{
		Time: a.now().UTC(), Op: op, Tenant: tenant, Key: key, Principal: operator,
		Status: 200, ClientAddr: "unix",
	})
}

// ReloadMaster records key.rotate with key "master", then reloads.
func (a *auditedKeys) ReloadMaster(ctx context.Context) ([]neostore.MasterKey, error) {
	if err := a.record(ctx, neostore.OpKeyRotate, "", "master"); err != nil {
		return nil, err
	}
	return a.KeyManager.ReloadMaster(ctx)
}

// Rewrap records key.rewrap, then rewraps.
func (a *auditedKeys) Rewrap(ctx context.Context) (neostore.RewrapReport, error) {
	if err := a.record(ctx, neostore.OpKeyRewrap, "", ""); err != nil {
		return neostore.RewrapReport{}, err
	}
	return a.KeyManager.Rewrap(ctx)
}

// RotateTenantKey records key.rotate with the tenant, then rotates.
func (a *auditedKeys) RotateTenantKey(ctx context.Context, tenant string, grace time.Duration) (neostore.TenantKeyRotation, error) {
	if err := a.record(ctx, neostore.OpKeyRotate, tenant, ""); err != nil {
		return neostore.TenantKeyRotation{}, err
	}
	return a.KeyManager.RotateTenantKey(ctx, tenant, grace)
}
