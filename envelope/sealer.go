package envelope

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/neostore/neostore-secrets"
	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	tinkpb "github.com/tink-crypto/tink-go/v2/proto/tink_go_proto"
	"github.com/tink-crypto/tink-go/v2/tink"
	"google.golang.org/protobuf/proto"
)

var _ neostore.Sealer = (*Sealer)(nil)

// maxPooledAD is the largest associated-data buffer returned to the pool.
// Valid tenant ids and key names need under 300 bytes; a buffer grown by
// longer names is dropped rather than kept forever.
const maxPooledAD = 1024

// DefaultKeyRefresh is how long a Sealer seals with a cached tenant data key
// before it compares it with the stored one. It bounds how long a node goes
// on sealing with a data key that another node has rotated away: a Seal
// that starts DefaultKeyRefresh after the rotation was stored uses the new
// key. The price is one store read per tenant per interval on a node that
// writes to it.
const DefaultKeyRefresh = 2 * time.Second

// Sealer seals secret values with a per-tenant data keyset that the master
// keyset wraps. A tenant's data keyset is created on its first Seal and
// stored through the TenantKeyStore; unwrapped data keys stay in memory, so a
// read costs one AEAD open, not an unwrap.
//
// Data keys can be rotated by any node (Rotator.RotateTenantKey). An Open
// that fails with the cached key re-reads the stored key once and retries,
// so a value sealed under a data key this node has not seen yet opens. A
// Seal uses the cached key only for DefaultKeyRefresh after the read that
// confirmed it, then compares it with the stored one; a tenant key that was
// only wrapped anew under another master key (same data keys) is not
// unwrapped again. It is safe for concurrent use.
type Sealer struct {
	master *Master
	keys   neostore.TenantKeyStore
	now    func() time.Time
	maxAge time.Duration // how long Seal trusts a cached key

	// A plain map under an RWMutex rather than a sync.Map: a sync.Map lookup
	// boxes the string key, which costs an allocation on every Open.
	mu    sync.RWMutex
	cache map[string]*tenantKey

	adPool sync.Pool // *[]byte buffers for associated data
}

// tenantKey is a cached tenant data keyset. It is never modified; a
// refresh stores a new one.
type tenantKey struct {
	aead    tink.AEAD
	info    string    // the data keyset's primary and key ids (see keysetInfo)
	wrapped []byte    // the stored, wrapped keyset as last read
	checked time.Time // when the read that last confirmed it began
}

// NewSealer returns a Sealer whose tenant data keys are wrapped by master
// and kept in keys.
func NewSealer(master *Master, keys neostore.TenantKeyStore) *Sealer {
	return &Sealer{
		master: master,
		keys:   keys,
		now:    time.Now,
		maxAge: DefaultKeyRefresh,
		cache:  make(map[string]*tenantKey),
		adPool: sync.Pool{New: func() any { b := make([]byte, 0, 320); return &b }},
	}
}

// Seal encrypts plaintext for tenant and key, creating tenant's data key if
// it has none. The ciphertext opens only under the same tenant and key.
func (s *Sealer) Seal(ctx context.Context, tenant, key string, plaintext []byte) ([]byte, error) {
	k := s.cached(tenant)
	if k == nil || s.now().Sub(k.checked) >= s.maxAge {
		var err error
		if k, err = s.load(ctx, tenant, true, k); err != nil {
			return nil, err
		}
	}
	adp := s.secretAD(tenant, key)
	ct, err := k.aead.Encrypt(plaintext, *adp)
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
	k := s.cached(tenant)
	fresh := k == nil
	if fresh {
		var err error
		if k, err = s.load(ctx, tenant, false, nil); err != nil {
			return nil, err
		}
	}
	adp := s.secretAD(tenant, key)
	defer s.putAD(adp)
	pt, err := k.aead.Decrypt(ciphertext, *adp)
	if err != nil && !fresh {
		// Another node may have rotated the tenant's data key and sealed
		// this value under the new one: look at the stored key once.
		if k2, lerr := s.load(ctx, tenant, false, k); lerr == nil && k2.info != k.info {
			pt, err = k2.aead.Decrypt(ciphertext, *adp)
		}
	}
	if err != nil {
		// Tink's decrypt error is a fixed "decryption failed": safe to log.
		return nil, fmt.Errorf("envelope: open secret: %w: %w", errInternal(), err)
	}
	return pt, nil
}

func (s *Sealer) cached(tenant string) *tenantKey {
	s.mu.RLock()
	k := s.cache[tenant]
	s.mu.RUnlock()
	return k
}

// load reads tenant's data key from the store and caches it. prev, when not
// nil, is the cached key being checked: it is kept, without an unwrap, when
// the stored key holds the same data keys. When tenant has none, load
// creates one if create is set and otherwise returns EINTERNAL.
func (s *Sealer) load(ctx context.Context, tenant string, create bool, prev *tenantKey) (*tenantKey, error) {
	started := s.now()
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

	var k *tenantKey
	switch {
	case prev != nil && bytes.Equal(wrapped, prev.wrapped):
		k = &tenantKey{aead: prev.aead, info: prev.info, wrapped: prev.wrapped, checked: started}
	case prev != nil && prev.info != "" && wrappedInfo(wrapped) == prev.info:
		// Wrapped anew under another master key; the data keys are the
		// ones in memory.
		k = &tenantKey{aead: prev.aead, info: prev.info, wrapped: wrapped, checked: started}
	default:
		h, err := s.unwrap(tenant, wrapped)
		if err != nil {
			return nil, err
		}
		a, err := aead.New(h)
		if err != nil {
			return nil, fmt.Errorf("envelope: tenant key is not an AEAD keyset: %w: %w", errInternal(), err)
		}
		k = &tenantKey{aead: a, info: keysetInfo(h.KeysetInfo()), wrapped: wrapped, checked: started}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	// Another goroutine may have cached a key read later than this one:
	// keep the fresher.
	if cur, ok := s.cache[tenant]; ok && cur.checked.After(k.checked) {
		return cur, nil
	}
	s.cache[tenant] = k
	return k, nil
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
	wrapped, err := wrapWith(s.master.current().aead, tenant, h)
	if err != nil {
		return nil, err
	}
	stored, err := s.keys.CreateTenantKey(ctx, tenant, wrapped)
	if err != nil {
		return nil, fmt.Errorf("envelope: store tenant key: %w", err)
	}
	return stored, nil
}

// wrapWith encrypts tenant's data keyset h with master's primary. The
// result is Tink's EncryptedKeyset in binary proto form, as
// keyset.BinaryWriter writes it except that it keeps the cleartext
// KeysetInfo (key ids, statuses, primary id; no key material), which
// BinaryWriter drops: with it a node can tell a keyset that was only
// wrapped anew from one whose data keys changed without unwrapping it
// (wrappedInfo). Tink's BinaryReader reads both forms.
func wrapWith(master tink.AEAD, tenant string, h *keyset.Handle) ([]byte, error) {
	var w encryptedWriter
	if err := h.WriteWithAssociatedData(&w, master, tenantKeyAD(tenant)); err != nil {
		return nil, fmt.Errorf("envelope: wrap tenant key: %w", err)
	}
	return w.b, nil
}

// encryptedWriter is a keyset.Writer that keeps an encrypted keyset whole.
type encryptedWriter struct{ b []byte }

func (w *encryptedWriter) Write(*tinkpb.Keyset) error {
	return errors.New("envelope: refusing to write a cleartext keyset")
}

func (w *encryptedWriter) WriteEncrypted(ks *tinkpb.EncryptedKeyset) error {
	b, err := proto.Marshal(ks)
	w.b = b
	return err
}

// unwrap decrypts tenant's wrapped data keyset with the master keyset.
func (s *Sealer) unwrap(tenant string, wrapped []byte) (*keyset.Handle, error) {
	return unwrapWith(s.master.current().aead, tenant, wrapped)
}

func unwrapWith(master tink.AEAD, tenant string, wrapped []byte) (*keyset.Handle, error) {
	h, err := keyset.ReadWithAssociatedData(keyset.NewBinaryReader(bytes.NewReader(wrapped)), master, tenantKeyAD(tenant))
	if err != nil {
		// Tink reports a fixed "decryption failed" or "invalid keyset" here.
		return nil, fmt.Errorf("envelope: unwrap tenant key: %w: %w", errInternal(), err)
	}
	return h, nil
}

// keysetInfo identifies a keyset by its primary and its keys' ids and
// statuses, which change when a data key is added, made primary or removed,
// and not when the keyset is wrapped anew.
func keysetInfo(info *tinkpb.KeysetInfo) string {
	if info == nil || len(info.GetKeyInfo()) == 0 {
		return ""
	}
	b := strconv.AppendUint(nil, uint64(info.GetPrimaryKeyId()), 10)
	for _, ki := range info.GetKeyInfo() {
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(ki.GetKeyId()), 10)
		b = append(b, ':')
		b = strconv.AppendInt(b, int64(ki.GetStatus()), 10)
	}
	return string(b)
}

// wrappedInfo returns the keysetInfo of a wrapped keyset from the cleartext
// description Tink stores beside the ciphertext, without unwrapping it, or
// "" when there is none. An altered description can only cause an unwrap
// (which then fails if the keyset was altered too) or keep data keys that
// are already in memory.
func wrappedInfo(wrapped []byte) string {
	enc, err := keyset.NewBinaryReader(bytes.NewReader(wrapped)).ReadEncrypted()
	if err != nil {
		return ""
	}
	return keysetInfo(enc.GetKeysetInfo())
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
