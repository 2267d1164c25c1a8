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

// SecretPut is a put that was checked: a valid tenant id and key name, a
// value, and a window that is not empty. NewSecretPut is the only way to
// make one, so a put is validated once: the API checks it before it
// records the change, and Put does not check it again.
type SecretPut struct {
	tenant, key string
	value       []byte
	validity    Validity
}

// NewSecretPut checks a put of value under tenant's key with its validity
// window. It returns EINVALID for an invalid tenant id, key name, empty
// value or empty window.
func NewSecretPut(tenant, key string, value []byte, validity Validity) (SecretPut, error) {
	if err := validateNames(tenant, key); err != nil {
		return SecretPut{}, err
	}
	if len(value) == 0 {
		return SecretPut{}, FieldError("value", "The value field is required.")
	}
	if err := validity.Validate(); err != nil {
		return SecretPut{}, err
	}
	return SecretPut{tenant: tenant, key: key, value: value, validity: validity}, nil
}

// errUncheckedPut is returned for a SecretPut not made by NewSecretPut.
var errUncheckedPut = Errorf(EINTERNAL, "Internal error.")

// Put seals p's value and stores it with its validity window, replacing
// value and window of any previous secret under the same key, and commits
// c's records with it (SecretStore.PutSecret). A c.Notice without a time
// gets the service's clock.
func (s *SecretService) Put(ctx context.Context, p SecretPut, c Change) error {
	if p.tenant == "" {
		return errUncheckedPut
	}
	ciphertext, err := s.sealer.Seal(ctx, p.tenant, p.key, p.value)
	if err != nil {
		return err
	}
	now := At(s.now())
	return s.store.PutSecret(ctx, p.tenant, p.key, SealedSecret{
		Ciphertext: ciphertext,
		Validity:   p.validity,
		Times:      SecretTimes{CreatedOn: now, UpdatedOn: now}, // the store keeps an existing CreatedOn
	}, c.at(now.At))
}

// at returns c with its notice's time set to now when the caller left it
// zero, so that an event's timestamp is the service's clock (for a put,
// the UpdatedOn it stores). The caller's notice is not modified.
func (c Change) at(now time.Time) Change {
	if c.Notice != nil && c.Notice.At.IsZero() {
		n := *c.Notice
		n.At = now
		c.Notice = &n
	}
	return c
}

// Delete removes tenant's secret key, committing c's records with the
// deletion (a c.Notice without a time gets the service's clock); removing
// an absent secret succeeds.
func (s *SecretService) Delete(ctx context.Context, tenant, key string, c Change) error {
	if err := validateNames(tenant, key); err != nil {
		return err
	}
	return s.store.DeleteSecret(ctx, tenant, key, c.at(s.now().UTC()))
}

// listChunk is how many key names ListEach reads from the store at a time:
// enough to make the per-read cost small, few enough that a listing holds
// about 100 KB however large the tenant.
const listChunk = 1000

// ListEach calls yield with every key name stored for tenant, in ordinal
// byte order and in chunks of at most 1,000, including secrets outside
// their validity window. Each chunk is a read of its own, so the memory a
// listing holds does not grow with the tenant; the chunks are therefore
// not one snapshot: a key put or deleted during the listing may or may
// not appear, and every key stored throughout appears exactly once. yield
// is called at least once, with an empty chunk for a tenant without
// secrets; it must not keep the slice. An error from yield stops the
// listing and is returned.
func (s *SecretService) ListEach(ctx context.Context, tenant string, yield func(keys []string) error) error {
	if !ValidTenantID(tenant) {
		return InvalidTenantID("tenantId")
	}
	after := ""
	for {
		keys, err := s.store.ListSecretKeysAfter(ctx, tenant, after, listChunk)
		if err != nil {
			return err
		}
		if err := yield(keys); err != nil {
			return err
		}
		if len(keys) < listChunk {
			return nil
		}
		after = keys[len(keys)-1]
	}
}

// Attributes returns the key name, validity window and times of every
// secret of tenant, in List's order, without opening a value.
func (s *SecretService) Attributes(ctx context.Context, tenant string) ([]SecretAttributes, error) {
	if !ValidTenantID(tenant) {
		return nil, InvalidTenantID("tenantId")
	}
	return s.store.ListSecretAttributes(ctx, tenant)
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
