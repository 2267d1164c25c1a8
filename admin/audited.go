package admin

import (
	"context"
	"time"

	"github.com/neostore/neostore-secrets"
)

// Audited returns issuer with every operator action recorded in the audit
// trail before it takes effect: when the trail refuses the record, the
// action is refused (EUNAVAILABLE) and nothing changes. Records name the
// operator as the admin socket's peer, never the key that was issued.
func Audited(issuer neostore.APIKeyIssuer, auditor neostore.Auditor, now func() time.Time) neostore.APIKeyIssuer {
	if auditor == nil {
		return issuer
	}
	return &auditedIssuer{issuer: issuer, auditor: auditor, now: now}
}

type auditedIssuer struct {
	issuer  neostore.APIKeyIssuer
	auditor neostore.Auditor
	now     func() time.Time
}

var operator = neostore.AuditPrincipal{Kind: "operator", ID: "admin-socket"}

func (a *auditedIssuer) record(ctx context.Context, op, tenant, key string, start time.Time) error {
	return a.auditor.Audit(ctx, &neostore.AuditRecord{
		Time: a.now().UTC(), Op: op, Tenant: tenant, Key: key, Principal: operator,
		Status: 200, ClientAddr: "unix", Duration: a.now().Sub(start),
	})
}

// Create records apikey.create (the tenant; the key id is not known yet),
// then issues the key.
func (a *auditedIssuer) Create(ctx context.Context, req neostore.NewAPIKey) (string, neostore.APIKey, error) {
	if err := a.record(ctx, neostore.OpAPIKeyCreate, req.Tenant, "", a.now()); err != nil {
		return "", neostore.APIKey{}, err
	}
	return a.issuer.Create(ctx, req)
}

// List records apikey.list, then lists.
func (a *auditedIssuer) List(ctx context.Context, tenant string) ([]neostore.APIKey, error) {
	if err := a.record(ctx, neostore.OpAPIKeyList, tenant, "", a.now()); err != nil {
		return nil, err
	}
	return a.issuer.List(ctx, tenant)
}

// Revoke records apikey.revoke with the key id in the key field, then
// revokes.
func (a *auditedIssuer) Revoke(ctx context.Context, id string) error {
	if err := a.record(ctx, neostore.OpAPIKeyRevoke, "", id, a.now()); err != nil {
		return err
	}
	return a.issuer.Revoke(ctx, id)
}
