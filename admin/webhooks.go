package admin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/neostore/neostore-secrets"
)

// The webhook endpoints (routes in NewHandler):
//
//	POST   /webhooks                      add; body addWebhookRequest, 201 webhookSecretResponse
//	GET    /webhooks                      list; 200 []webhookView
//	DELETE /webhooks/{id}                 remove; 204
//	POST   /webhooks/{id}/rotate-secret   body rotateSecretRequest, 200 webhookSecretResponse
//	POST   /webhooks/{id}/test            send webhook.test now; 200 testResultView
//	GET    /webhooks/{id}/deliveries      ?failed=true; 200 []deliveryView
//	POST   /deliveries/{id}/redeliver     204
//
// A signing secret travels only in the responses of add and rotate-secret,
// never in a request; a view never carries a sealed secret.

// webhookView is a subscription as the admin protocol and `webhook list
// --json` show it: its secrets only by their ends, never their bytes.
type webhookView struct {
	ID         string              `json:"id"`
	Name       string              `json:"name"`
	Tenant     string              `json:"tenant"`
	URL        string              `json:"url"`
	Events     []string            `json:"events"`
	Leads      []string            `json:"leads"`
	Secrets    []webhookSecretView `json:"secrets"`
	CreatedAt  time.Time           `json:"createdAt"`
	DisabledAt *time.Time          `json:"disabledAt"`
}

// webhookSecretView is one signing secret, current first: when it stops
// signing (null for the current one).
type webhookSecretView struct {
	ExpiresAt *time.Time `json:"expiresAt"`
}

func webhookViewOf(w neostore.WebhookSubscription) webhookView {
	v := webhookView{
		ID: w.ID, Name: w.Name, Tenant: w.Tenant, URL: w.URL, Events: w.Events,
		Leads: make([]string, len(w.Leads)), Secrets: make([]webhookSecretView, len(w.Secrets)),
		CreatedAt: w.CreatedAt, DisabledAt: w.DisabledAt.Ptr(),
	}
	if v.Events == nil {
		v.Events = []string{}
	}
	for i, l := range w.Leads {
		v.Leads[i] = l.String()
	}
	for i, s := range w.Secrets {
		v.Secrets[i] = webhookSecretView{ExpiresAt: s.ExpiresAt.Ptr()}
	}
	return v
}

func (v webhookView) record() neostore.WebhookSubscription {
	w := neostore.WebhookSubscription{
		ID: v.ID, Name: v.Name, Tenant: v.Tenant, URL: v.URL, Events: v.Events,
		CreatedAt: v.CreatedAt, DisabledAt: neostore.BoundOf(v.DisabledAt),
	}
	for _, l := range v.Leads {
		d, _ := time.ParseDuration(l)
		w.Leads = append(w.Leads, d)
	}
	for _, s := range v.Secrets {
		w.Secrets = append(w.Secrets, neostore.WebhookSecret{ExpiresAt: neostore.BoundOf(s.ExpiresAt)})
	}
	return w
}

// MarshalWebhooks renders subscriptions as the JSON array `webhook list
// --json` prints.
func MarshalWebhooks(subs []neostore.WebhookSubscription) ([]byte, error) {
	views := make([]webhookView, len(subs))
	for i, w := range subs {
		views[i] = webhookViewOf(w)
	}
	return json.MarshalIndent(views, "", "  ")
}

// deliveryView is a delivery as `webhook deliveries --json` shows it.
type deliveryView struct {
	ID             string     `json:"id"`
	SubscriptionID string     `json:"subscriptionId"`
	EventID        string     `json:"eventId"`
	Type           string     `json:"type"`
	Tenant         string     `json:"tenant"`
	Key            string     `json:"key"`
	State          string     `json:"state"`
	Attempts       int        `json:"attempts"`
	CreatedAt      time.Time  `json:"createdAt"`
	NextAttemptAt  *time.Time `json:"nextAttemptAt"`
	LastAttemptAt  *time.Time `json:"lastAttemptAt"`
	LastStatus     int        `json:"lastStatus"`
	LastError      string     `json:"lastError"`
	FinishedAt     *time.Time `json:"finishedAt"`
}

func deliveryViewOf(d neostore.Delivery) deliveryView {
	v := deliveryView{
		ID: d.ID, SubscriptionID: d.SubscriptionID, EventID: d.Event.ID, Type: d.Event.Type,
		Tenant: d.Event.Tenant, Key: d.Event.Key, State: string(d.State), Attempts: d.Attempts,
		CreatedAt: d.CreatedAt, LastAttemptAt: d.LastAttemptAt.Ptr(), LastStatus: d.LastStatus,
		LastError: d.LastError, FinishedAt: d.FinishedAt.Ptr(),
	}
	if d.State == neostore.DeliveryPending && !d.NextAttemptAt.IsZero() {
		next := d.NextAttemptAt
		v.NextAttemptAt = &next
	}
	return v
}

func (v deliveryView) record() neostore.Delivery {
	d := neostore.Delivery{
		ID: v.ID, SubscriptionID: v.SubscriptionID, State: neostore.DeliveryState(v.State), Attempts: v.Attempts,
		Event:     neostore.Event{ID: v.EventID, Type: v.Type, Tenant: v.Tenant, Key: v.Key},
		CreatedAt: v.CreatedAt, LastAttemptAt: neostore.BoundOf(v.LastAttemptAt), LastStatus: v.LastStatus,
		LastError: v.LastError, FinishedAt: neostore.BoundOf(v.FinishedAt),
	}
	if v.NextAttemptAt != nil {
		d.NextAttemptAt = *v.NextAttemptAt
	}
	return d
}

// MarshalDeliveries renders deliveries as the JSON array `webhook
// deliveries --json` prints.
func MarshalDeliveries(ds []neostore.Delivery) ([]byte, error) {
	views := make([]deliveryView, len(ds))
	for i, d := range ds {
		views[i] = deliveryViewOf(d)
	}
	return json.MarshalIndent(views, "", "  ")
}

type addWebhookRequest struct {
	Tenant string   `json:"tenant"`
	URL    string   `json:"url"`
	Events []string `json:"events"`
	Leads  []string `json:"leads"`
	Name   string   `json:"name"`
}

type rotateSecretRequest struct {
	Grace string `json:"grace"` // a Go duration, e.g. "24h"
}

type webhookSecretResponse struct {
	Secret string      `json:"secret"`
	Record webhookView `json:"record"`
}

type testResultView struct {
	Delivered  bool   `json:"delivered"`
	Status     int    `json:"status"`
	DurationNs int64  `json:"durationNs"`
	Error      string `json:"error"`
}

// errNoWebhooks answers the webhook endpoints of a server started without
// notifications (--webhooks off).
var errNoWebhooks = neostore.Errorf(neostore.EINVALID, "This server does not send webhooks (it runs with --webhooks off).")

func handleAddWebhook(hooks neostore.WebhookManager, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hooks == nil {
			writeError(w, logger, errNoWebhooks)
			return
		}
		var req addWebhookRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeError(w, logger, neostore.Errorf(neostore.EINVALID, "The request body is not a valid webhook add request."))
			return
		}
		nw := neostore.NewWebhook{Tenant: req.Tenant, URL: req.URL, Events: req.Events, Name: req.Name}
		for _, l := range req.Leads {
			d, err := time.ParseDuration(l)
			if err != nil {
				writeError(w, logger, neostore.FieldError("leads", "A lead is a duration such as 720h or 24h."))
				return
			}
			nw.Leads = append(nw.Leads, d)
		}
		secret, sub, err := hooks.Add(r.Context(), nw)
		if err != nil {
			writeError(w, logger, err)
			return
		}
		logger.Info("webhook subscription added", "id", sub.ID, "tenant", sub.Tenant)
		writeJSON(w, http.StatusCreated, webhookSecretResponse{Secret: secret, Record: webhookViewOf(sub)})
	})
}

func handleListWebhooks(hooks neostore.WebhookManager, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hooks == nil {
			writeError(w, logger, errNoWebhooks)
			return
		}
		subs, err := hooks.List(r.Context())
		if err != nil {
			writeError(w, logger, err)
			return
		}
		views := make([]webhookView, len(subs))
		for i, s := range subs {
			views[i] = webhookViewOf(s)
		}
		writeJSON(w, http.StatusOK, views)
	})
}

func handleRemoveWebhook(hooks neostore.WebhookManager, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hooks == nil {
			writeError(w, logger, errNoWebhooks)
			return
		}
		id := r.PathValue("id")
		if err := hooks.Remove(r.Context(), id); err != nil {
			writeError(w, logger, err)
			return
		}
		logger.Info("webhook subscription removed", "id", id)
		w.WriteHeader(http.StatusNoContent)
	})
}

func handleRotateWebhookSecret(hooks neostore.WebhookManager, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hooks == nil {
			writeError(w, logger, errNoWebhooks)
			return
		}
		var req rotateSecretRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeError(w, logger, neostore.Errorf(neostore.EINVALID, "The request body is not a valid rotate-secret request."))
			return
		}
		grace, err := time.ParseDuration(req.Grace)
		if err != nil || grace < 0 {
			writeError(w, logger, neostore.FieldError("grace", "The grace is a non-negative duration such as 24h."))
			return
		}
		secret, sub, err := hooks.RotateSecret(r.Context(), r.PathValue("id"), grace)
		if err != nil {
			writeError(w, logger, err)
			return
		}
		logger.Info("webhook signing secret rotated", "id", sub.ID, "grace", grace.String())
		writeJSON(w, http.StatusOK, webhookSecretResponse{Secret: secret, Record: webhookViewOf(sub)})
	})
}

func handleTestWebhook(hooks neostore.WebhookManager, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hooks == nil {
			writeError(w, logger, errNoWebhooks)
			return
		}
		res, err := hooks.Test(r.Context(), r.PathValue("id"))
		if err != nil {
			writeError(w, logger, err)
			return
		}
		writeJSON(w, http.StatusOK, testResultView{Delivered: res.Delivered, Status: res.Status, DurationNs: int64(res.Duration), Error: res.Error})
	})
}

func handleListDeliveries(hooks neostore.WebhookManager, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hooks == nil {
			writeError(w, logger, errNoWebhooks)
			return
		}
		ds, err := hooks.Deliveries(r.Context(), r.PathValue("id"), r.URL.Query().Get("failed") == "true")
		if err != nil {
			writeError(w, logger, err)
			return
		}
		views := make([]deliveryView, len(ds))
		for i, d := range ds {
			views[i] = deliveryViewOf(d)
		}
		writeJSON(w, http.StatusOK, views)
	})
}

func handleRedeliver(hooks neostore.WebhookManager, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hooks == nil {
			writeError(w, logger, errNoWebhooks)
			return
		}
		id := r.PathValue("id")
		if err := hooks.Redeliver(r.Context(), id); err != nil {
			writeError(w, logger, err)
			return
		}
		logger.Info("webhook delivery queued again", "id", id)
		w.WriteHeader(http.StatusNoContent)
	})
}

var _ neostore.WebhookManager = (*WebhookClient)(nil)

// WebhookClient is the webhook side of a Client: it implements
// neostore.WebhookManager over the admin socket.
type WebhookClient struct{ c *Client }

// Webhooks returns the webhook commands of c.
func (c *Client) Webhooks() *WebhookClient { return &WebhookClient{c: c} }

// Add implements neostore.WebhookManager.
func (w *WebhookClient) Add(ctx context.Context, req neostore.NewWebhook) (string, neostore.WebhookSubscription, error) {
	body := addWebhookRequest{Tenant: req.Tenant, URL: req.URL, Events: req.Events, Name: req.Name}
	for _, l := range req.Leads {
		body.Leads = append(body.Leads, l.String())
	}
	b, _ := json.Marshal(body)
	var resp webhookSecretResponse
	if err := w.c.do(ctx, http.MethodPost, "/webhooks", b, http.StatusCreated, &resp); err != nil {
		return "", neostore.WebhookSubscription{}, err
	}
	return resp.Secret, resp.Record.record(), nil
}

// List implements neostore.WebhookManager.
func (w *WebhookClient) List(ctx context.Context) ([]neostore.WebhookSubscription, error) {
	var views []webhookView
	if err := w.c.do(ctx, http.MethodGet, "/webhooks", nil, http.StatusOK, &views); err != nil {
		return nil, err
	}
	subs := make([]neostore.WebhookSubscription, len(views))
	for i, v := range views {
		subs[i] = v.record()
	}
	return subs, nil
}

// Remove implements neostore.WebhookManager.
func (w *WebhookClient) Remove(ctx context.Context, id string) error {
	return w.c.do(ctx, http.MethodDelete, "/webhooks/"+url.PathEscape(id), nil, http.StatusNoContent, nil)
}

// RotateSecret implements neostore.WebhookManager.
func (w *WebhookClient) RotateSecret(ctx context.Context, id string, grace time.Duration) (string, neostore.WebhookSubscription, error) {
	b, _ := json.Marshal(rotateSecretRequest{Grace: grace.String()})
	var resp webhookSecretResponse
	if err := w.c.do(ctx, http.MethodPost, "/webhooks/"+url.PathEscape(id)+"/rotate-secret", b, http.StatusOK, &resp); err != nil {
		return "", neostore.WebhookSubscription{}, err
	}
	return resp.Secret, resp.Record.record(), nil
}

// Test implements neostore.WebhookManager.
func (w *WebhookClient) Test(ctx context.Context, id string) (neostore.WebhookTestResult, error) {
	var v testResultView
	if err := w.c.do(ctx, http.MethodPost, "/webhooks/"+url.PathEscape(id)+"/test", nil, http.StatusOK, &v); err != nil {
		return neostore.WebhookTestResult{}, err
	}
	return neostore.WebhookTestResult{Delivered: v.Delivered, Status: v.Status, Duration: time.Duration(v.DurationNs), Error: v.Error}, nil
}

// Deliveries implements neostore.WebhookManager.
func (w *WebhookClient) Deliveries(ctx context.Context, id string, failedOnly bool) ([]neostore.Delivery, error) {
	path := "/webhooks/" + url.PathEscape(id) + "/deliveries"
	if failedOnly {
		path += "?failed=true"
	}
	var views []deliveryView
	if err := w.c.do(ctx, http.MethodGet, path, nil, http.StatusOK, &views); err != nil {
		return nil, err
	}
	ds := make([]neostore.Delivery, len(views))
	for i, v := range views {
		ds[i] = v.record()
	}
	return ds, nil
}

// Redeliver implements neostore.WebhookManager.
func (w *WebhookClient) Redeliver(ctx context.Context, deliveryID string) error {
	return w.c.do(ctx, http.MethodPost, "/deliveries/"+url.PathEscape(deliveryID)+"/redeliver", nil, http.StatusNoContent, nil)
}

// AuditedWebhooks returns hooks with every change to a subscription
// recorded in the audit trail before it takes effect (webhook.add, .remove,
// .rotate-secret, .test, .redeliver): when the trail refuses the record,
// the action is refused (EUNAVAILABLE) and nothing changes. A record names
// the subscription (the delivery, for a redelivery) in its key field and
// its tenant when known, never the URL or a signing secret. newID makes the id of a
// subscription about to be added, so that its record names it.
func AuditedWebhooks(hooks neostore.WebhookManager, auditor neostore.Auditor, newID func() string, now func() time.Time) neostore.WebhookManager {
	if auditor == nil || hooks == nil {
		return hooks
	}
	return &auditedWebhooks{WebhookManager: hooks, auditor: auditor, newID: newID, now: now}
}

type auditedWebhooks struct {
	neostore.WebhookManager
	auditor neostore.Auditor
	newID   func() string
	now     func() time.Time
}

// newTraceID returns a fresh trace context in the shape the Secret API
// writes in its records (00-<trace-id>-<span-id>-00), so that an operator
// action's two records share an id that searches like a request's.
func newTraceID() string {
	var b [24]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return "00-" + hex.EncodeToString(b[:16]) + "-" + hex.EncodeToString(b[16:]) + "-00"
}

// audited records op before calling do, and when do fails, a second
// record with the same trace id and the failure's status and code, so
// that the trail tells an action refused (an unknown id) from one done.
func (a *auditedWebhooks) audited(ctx context.Context, op, tenant, key string, do func() error) error {
	r := neostore.AuditRecord{
		Time: a.now().UTC(), TraceID: newTraceID(), Op: op, Tenant: tenant, Key: key,
		Principal: operator, Status: 200, ClientAddr: "unix",
	}
	first := r
	if err := a.auditor.Audit(ctx, &first); err != nil {
		return err
	}
	start := a.now()
	err := do()
	if err != nil {
		p := neostore.ProblemOf(err)
		r.Time, r.Status, r.ErrorCode, r.Duration = a.now().UTC(), p.Status, p.Code, a.now().Sub(start)
		if aerr := a.auditor.Audit(ctx, &r); aerr != nil {
			return fmt.Errorf("%w (and its outcome could not be recorded: %v)", err, aerr)
		}
	}
	return err
}

// Add records webhook.add with the new id and the tenant, then adds.
func (a *auditedWebhooks) Add(ctx context.Context, req neostore.NewWebhook) (secret string, sub neostore.WebhookSubscription, err error) {
	if req.ID == "" {
		req.ID = a.newID()
	}
	err = a.audited(ctx, neostore.OpWebhookAdd, req.Tenant, req.ID, func() (err error) {
		secret, sub, err = a.WebhookManager.Add(ctx, req)
		return err
	})
	return secret, sub, err
}

// tenantOf returns the tenant of subscription id, so that `audit search
// --tenant` finds what was done to its subscriptions; "" when it cannot
// say (an unknown id: the action will be refused).
func (a *auditedWebhooks) tenantOf(ctx context.Context, id string) string {
	subs, err := a.WebhookManager.List(ctx)
	if err != nil {
		return ""
	}
	for _, s := range subs {
		if s.ID == id {
			return s.Tenant
		}
	}
	return ""
}

// Remove records webhook.remove, then removes.
func (a *auditedWebhooks) Remove(ctx context.Context, id string) error {
	return a.audited(ctx, neostore.OpWebhookRemove, a.tenantOf(ctx, id), id, func() error { return a.WebhookManager.Remove(ctx, id) })
}

// RotateSecret records webhook.rotate-secret, then rotates.
func (a *auditedWebhooks) RotateSecret(ctx context.Context, id string, grace time.Duration) (secret string, sub neostore.WebhookSubscription, err error) {
	err = a.audited(ctx, neostore.OpWebhookRotateSecret, a.tenantOf(ctx, id), id, func() (err error) {
		secret, sub, err = a.WebhookManager.RotateSecret(ctx, id, grace)
		return err
	})
	return secret, sub, err
}

// Test records webhook.test (it sends to the endpoint), then sends.
func (a *auditedWebhooks) Test(ctx context.Context, id string) (res neostore.WebhookTestResult, err error) {
	err = a.audited(ctx, neostore.OpWebhookTest, a.tenantOf(ctx, id), id, func() (err error) {
		res, err = a.WebhookManager.Test(ctx, id)
		return err
	})
	return res, err
}

// Redeliver records webhook.redeliver with the delivery id, then queues it.
func (a *auditedWebhooks) Redeliver(ctx context.Context, deliveryID string) error {
	return a.audited(ctx, neostore.OpWebhookRedeliver, "", deliveryID, func() error { return a.WebhookManager.Redeliver(ctx, deliveryID) })
}
