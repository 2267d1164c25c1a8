package metrics

import (
	"context"
	"time"

	"github.com/neostore/neostore-secrets"
)

// InstrumentStore returns store with the latency of each operation
// recorded. Only the operation's name becomes a label.
func (m *Metrics) InstrumentStore(store neostore.Store) neostore.Store {
	return &instrumented{Store: store, m: m}
}

// instrumented wraps the request-path operations of a store; the rest pass
// through to the embedded Store.
type instrumented struct {
	neostore.Store
	m *Metrics
}

func (s *instrumented) observe(op string, start time.Time, err error) {
	s.m.storeOps.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil && neostore.ErrorCode(err) != neostore.ENOTFOUND {
		s.m.storeErrors.WithLabelValues(op).Inc()
	}
}

// ChangeJournal is the wrapped store's: instrumenting a store must not hide
// that it commits audit records with its changes.
func (s *instrumented) ChangeJournal() neostore.ChangeJournal { return s.Store.ChangeJournal() }

func (s *instrumented) GetSecret(ctx context.Context, tenant, key string) (neostore.SealedSecret, error) {
	start := time.Now()
	sec, err := s.Store.GetSecret(ctx, tenant, key)
	s.observe("get_secret", start, err)
	return sec, err
}

func (s *instrumented) PutSecret(ctx context.Context, tenant, key string, sec neostore.SealedSecret, c neostore.Change) error {
	start := time.Now()
	err := s.Store.PutSecret(ctx, tenant, key, sec, c)
	s.observe("put_secret", start, err)
	return err
}

func (s *instrumented) DeleteSecret(ctx context.Context, tenant, key string, c neostore.Change) error {
	start := time.Now()
	err := s.Store.DeleteSecret(ctx, tenant, key, c)
	s.observe("delete_secret", start, err)
	return err
}

func (s *instrumented) ListSecretKeys(ctx context.Context, tenant string) ([]string, error) {
	start := time.Now()
	keys, err := s.Store.ListSecretKeys(ctx, tenant)
	s.observe("list_secret_keys", start, err)
	return keys, err
}

func (s *instrumented) ListSecretAttributes(ctx context.Context, tenant string) ([]neostore.SecretAttributes, error) {
	start := time.Now()
	attrs, err := s.Store.ListSecretAttributes(ctx, tenant)
	s.observe("list_secret_attributes", start, err)
	return attrs, err
}

// APIKeyByHash is on the request path: a node asks it for a key it does not
// know yet, so its rate shows whether look-ups are being hammered.
func (s *instrumented) APIKeyByHash(ctx context.Context, hash []byte) (neostore.APIKey, error) {
	start := time.Now()
	k, err := s.Store.APIKeyByHash(ctx, hash)
	s.observe("api_key_by_hash", start, err)
	return k, err
}

func (s *instrumented) ListSecretKeysAfter(ctx context.Context, tenant, after string, limit int) ([]string, error) {
	start := time.Now()
	keys, err := s.Store.ListSecretKeysAfter(ctx, tenant, after, limit)
	s.observe("list_secret_keys_after", start, err)
	return keys, err
}

func (s *instrumented) GetTenantKey(ctx context.Context, tenant string) ([]byte, error) {
	start := time.Now()
	k, err := s.Store.GetTenantKey(ctx, tenant)
	s.observe("get_tenant_key", start, err)
	return k, err
}
