package envelope

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/neostore/neostore-secrets"
	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"
)

var _ neostore.Sealer = (*Sealer)(nil)

// maxPooledAD is the largest associated-data buffer returned to the pool.
// Valid tenant ids and key names need under 300 bytes; a buffer grown by
// longer names is dropped rather than kept forever.
const maxPooledAD = 1024

// Sealer seals secret values with a per-tenant data keyset that the master
// keyset wraps. A tenant's data keyset is created on its first Seal and
// stored through the TenantKeyStore; unwrapped data keys stay in memory, so a
// read costs one AEAD open, not an unwrap. It is safe for concurrent use.
type Sealer struct {
	master *Master
	keys   neostore.TenantKeyStore

	// A plain map under an RWMutex rather than a sync.Map: a sync.Map lookup
	// boxes the string key, which costs an allocation on every Open.
	mu    sync.RWMutex
	aeads map[string]tink.AEAD // tenant id -> unwrapped data keyset primitive

	adPool sync.Pool // *[]byte buffers for associated data
}

// NewSealer returns a Sealer whose tenant data keys are wrapped by master
// and kept in keys.
func NewSealer(master *Master, keys neostore.TenantKeyStore) *Sealer {
	return &Sealer{
		master: master,
		keys:   keys,
		aeads:  make(map[string]tink.AEAD),
		adPool: sync.Pool{New: func() any { b := make([]byte, 0, 320); return &b }},
	}
}

// Seal encrypts plaintext for tenant and key, creating tenant's data key if
// it has none. The ciphertext opens only under the same tenant and key.
func (s *Sealer) Seal(ctx context.Context, tenant, key string, plaintext []byte) ([]byte, error) {
	a, err := s.tenantAEAD(ctx, tenant, true)
	if err != nil {
		return nil, err
	}
	adp := s.secretAD(tenant, key)
	ct, err := a.Encrypt(plaintext, *adp)
	s.putAD(adp)
	if err != nil {
		// Tink's encrypt errors name sizes, never key material or plaintext.
		return nil, fmt.Errorf("envelope: seal secret: %w: %w", errInternal(), err)
	}
	return ct, nil
}

// Open decrypts a ciphertext that Seal made for tenant and key. It returns
// EINTERNAL when the ciphertext does not open (tampered, moved to another
// tenant or key, or sealed under another data key) and when tenant has no
// data key, since a ciphertext without its key is corruption.
func (s *Sealer) Open(ctx context.Context, tenant, key string, ciphertext []byte) ([]byte, error) {
	a, err := s.tenantAEAD(ctx, tenant, false)
	if err != nil {
		return nil, err
	}
	adp := s.secretAD(tenant, key)
	pt, err := a.Decrypt(ciphertext, *adp)
	s.putAD(adp)
	if err != nil {
		// Tink's decrypt error is a fixed "decryption failed": safe to log.
		return nil, fmt.Errorf("envelope: open secret: %w: %w", errInternal(), err)
	}
	return pt, nil
}

// tenantAEAD returns tenant's data key from the cache, else reads and unwraps
// it from the store. When tenant has none, it creates one if create is set
// and otherwise returns EINTERNAL.
func (s *Sealer) tenantAEAD(ctx context.Context, tenant string, create bool) (tink.AEAD, error) {
	s.mu.RLock()
	a, ok := s.aeads[tenant]
	s.mu.RUnlock()
	if ok {
		return a, nil
	}

	wrapped, err := s.keys.GetTenantKey(ctx, tenant)
	switch code := neostore.ErrorCode(err); {
	case err == nil:
	case code == neostore.ENOTFOUND && create:
		if wrapped, err = s.createTenantKey(ctx, tenant); err != nil {
			return nil, err
		}
	case code == neostore.ENOTFOUND:
		// The store's ENOTFOUND is not wrapped: the caller found a sealed
		// secret, so to the client this is an internal fault, not a 404.
		return nil, fmt.Errorf("envelope: open secret: tenant has no data key: %w", errInternal())
	default:
		return nil, fmt.Errorf("envelope: read tenant key: %w", err)
	}

	if a, err = s.unwrap(tenant, wrapped); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Another goroutine may have loaded the same keyset meanwhile; keep one.
	if cached, ok := s.aeads[tenant]; ok {
		return cached, nil
	}
	s.aeads[tenant] = a
	return a, nil
}

// createTenantKey generates a data keyset for tenant, wraps it with the
// master key and stores it unless another writer stored one first. It
// returns the wrapped keyset that the store kept, which may be the other
// writer's.
func (s *Sealer) createTenantKey(ctx context.Context, tenant string) ([]byte, error) {
	h, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	if err != nil {
		return nil, fmt.Errorf("envelope: generate tenant key: %w", err)
	}
	var buf bytes.Buffer
	if err := h.WriteWithAssociatedData(keyset.NewBinaryWriter(&buf), s.master.aead, tenantKeyAD(tenant)); err != nil {
		return nil, fmt.Errorf("envelope: wrap tenant key: %w", err)
	}
	stored, err := s.keys.CreateTenantKey(ctx, tenant, buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("envelope: store tenant key: %w", err)
	}
	return stored, nil
}

// unwrap decrypts tenant's wrapped data keyset with the master key and
// returns its AEAD primitive.
func (s *Sealer) unwrap(tenant string, wrapped []byte) (tink.AEAD, error) {
	h, err := keyset.ReadWithAssociatedData(keyset.NewBinaryReader(bytes.NewReader(wrapped)), s.master.aead, tenantKeyAD(tenant))
	if err != nil {
		// Tink reports a fixed "decryption failed" or "invalid keyset" here.
		return nil, fmt.Errorf("envelope: unwrap tenant key: %w: %w", errInternal(), err)
	}
	a, err := aead.New(h)
	if err != nil {
		return nil, fmt.Errorf("envelope: tenant key is not an AEAD keyset: %w: %w", errInternal(), err)
	}
	return a, nil
}

// secretAD returns a pooled buffer holding the associated data of a secret:
// the label, then tenant and key each preceded by its length as a uvarint.
// The length prefixes make the encoding unambiguous for any two strings, so
// tenant "a" with key "b-c" never collides with tenant "a-b" with key "c".
// Return the buffer with putAD.
func (s *Sealer) secretAD(tenant, key string) *[]byte {
	p := s.adPool.Get().(*[]byte)
	b := append((*p)[:0], labelSecret...)
	b = binary.AppendUvarint(b, uint64(len(tenant)))
	b = append(b, tenant...)
	b = binary.AppendUvarint(b, uint64(len(key)))
	b = append(b, key...)
	*p = b
	return p
}

func (s *Sealer) putAD(p *[]byte) {
	if cap(*p) <= maxPooledAD {
		s.adPool.Put(p)
	}
}

// tenantKeyAD is the associated data that binds a wrapped data keyset to its
// tenant, so a wrapped key copied to another tenant does not unwrap.
func tenantKeyAD(tenant string) []byte {
	b := make([]byte, 0, len(labelTenantKey)+binary.MaxVarintLen64+len(tenant))
	b = append(b, labelTenantKey...)
	b = binary.AppendUvarint(b, uint64(len(tenant)))
	return append(b, tenant...)
}

// errInternal returns the client-facing error of every sealing fault. Its
// message says nothing about the cause; the wrapping error, for the log, does.
func errInternal() *neostore.Error {
	return neostore.Errorf(neostore.EINTERNAL, "Internal error.")
}
