package neostore

import (
	"context"
	"time"
)

// Audit operations: what a record says was attempted.
const (
	OpSecretList   = "secret.list"
	OpSecretGet    = "secret.get"
	OpSecretPut    = "secret.put"
	OpSecretDelete = "secret.delete"
	OpAPIKeyCreate = "apikey.create"
	OpAPIKeyList   = "apikey.list"
	OpAPIKeyRevoke = "apikey.revoke"
	OpKeyRotate    = "key.rotate"
	OpKeyRewrap    = "key.rewrap"
	OpStoreMigrate = "store.migrate"
	OpUnknownRoute = "http.unknown" // a request that matched no operation
)

// AuditPrincipal identifies who made a request, without any credential.
type AuditPrincipal struct {
	Kind     string `json:"kind"` // PrincipalAPIKey, PrincipalToken, or "anonymous"
	ID       string `json:"id,omitempty"`
	Name     string `json:"name,omitempty"`
	Issuer   string `json:"issuer,omitempty"`
	Subject  string `json:"sub,omitempty"`
	ClientID string `json:"clientId,omitempty"`
}

// AuditRecord is what the audit trail keeps of one request or admin action.
// It never holds a secret value, a credential or key material. The chain
// fields (node, sequence, hashes) are filled in by the Auditor.
type AuditRecord struct {
	Time       time.Time      `json:"time"`
	TraceID    string         `json:"traceId,omitempty"`
	Op         string         `json:"op"`
	Tenant     string         `json:"tenant,omitempty"`
	Key        string         `json:"key,omitempty"`
	Principal  AuditPrincipal `json:"principal"`
	Status     int            `json:"status"`
	ErrorCode  string         `json:"errorCode,omitempty"`
	ClientAddr string         `json:"clientAddr,omitempty"`
	UserAgent  string         `json:"userAgent,omitempty"`
	Duration   time.Duration  `json:"durationNs"`
}

// Auditor appends records to the audit trail.
type Auditor interface {
	// Audit appends r and returns once it is as durable as the configured
	// mode promises. It returns EUNAVAILABLE when the trail cannot accept
	// the record; the caller must then refuse the request (fail closed).
	Audit(ctx context.Context, r *AuditRecord) error
}
