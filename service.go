package neostore

import (
	"bytes"
	"context"
	"time"
)

// SecretService is the one place where plaintext meets storage: it seals
// values before they are stored, opens them after they are read, and applies
// validity windows. Authorization happens before it is called.
type SecretService struct {
	store  SecretStore
	sealer Sealer
	now    func() time.Time
}

// NewSecretService returns a service over store and sealer; now is the clock
// used for validity windows.
func NewSecretService(store SecretStore, sealer Sealer, now func() time.Time) *SecretService {
	return &SecretService{store: store, sealer: sealer, now: now}
}

// Get returns the plaintext value of tenant's secret key. It returns
// ENOTFOUND when the key is not a valid name, is not stored, or is outside
// its validity window: a caller cannot tell these apart.
func (s *SecretService) Get(ctx context.Context, tenant, key string) ([]byte, error) {
	if !ValidTenantID(tenant) || !ValidKeyName(key) {
		return nil, ErrSecretNotFound
	}
	sealed, err := s.store.GetSecret(ctx, tenant, key)
	if err != nil {
		return nil, err
	}
	if !sealed.Validity.Contains(s.now()) {
		return nil, ErrSecretNotFound
	}
	value, err := s.sealer.Open(ctx, tenant, key, sealed.Ciphertext)
	if err == nil {
		return value, nil
	}
	// A data-key rotation may have resealed the value and dropped the key
	// it was read under between the read and the open: read it once more.
	// An unchanged ciphertext fails as it did.
	again, gerr := s.store.GetSecret(ctx, tenant, key)
	if gerr != nil || bytes.Equal(again.Ciphertext, sealed.Ciphertext) {
		return nil, err
	}
	if !again.Validity.Contains(s.now()) {
		return nil, ErrSecretNotFound
	}
	return s.sealer.Open(ctx, tenant, key, again.Ciphertext)
}

// Put seals value and stores it with its validity window, replacing value
// and window of any previous secret under the same key, and commits c's
// records with it (SecretStore.PutSecret). It returns EINVALID for an
// invalid tenant id, key name, empty value or empty window.
func (s *SecretService) Put(ctx context.Context, tenant, key string, value []byte, validity Validity, c Change) error {
	if err := validateNames(tenant, key); err != nil {
		return err
	}
	if len(value) == 0 {
		return FieldError("value", "The value field is required.")
	}
	if err := validity.Validate(); err != nil {
		return err
	}
	ciphertext, err := s.sealer.Seal(ctx, tenant, key, value)
	if err != nil {
		return err
	}
	return s.store.PutSecret(ctx, tenant, key, SealedSecret{Ciphertext: ciphertext, Validity: validity}, c)
}

// Delete removes tenant's secret key, committing c's records with the
// deletion; removing an absent secret succeeds.
func (s *SecretService) Delete(ctx context.Context, tenant, key string, c Change) error {
	if err := validateNames(tenant, key); err != nil {
		return err
	}
	return s.store.DeleteSecret(ctx, tenant, key, c)
}

// List returns every key name stored for tenant, in ordinal byte order,
// including secrets outside their validity window.
func (s *SecretService) List(ctx context.Context, tenant string) ([]string, error) {
	if !ValidTenantID(tenant) {
		return nil, InvalidTenantID("tenantId")
	}
	return s.store.ListSecretKeys(ctx, tenant)
}

func validateNames(tenant, key string) error {
	if !ValidTenantID(tenant) {
		return InvalidTenantID("tenantId")
	}
	if !ValidKeyName(key) {
		return InvalidKeyName()
	}
	return nil
}
