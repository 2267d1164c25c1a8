// Package storecopy moves everything a store holds into another store, still
// sealed: tenant data keys stay wrapped by the master key, secrets stay
// ciphertext, API keys stay hashes. It needs no key material and sees no
// plaintext. A copy is safe to repeat, and Verify compares the two stores
// tenant by tenant with a digest of every secret.
package storecopy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/neostore/neostore-secrets"
)

// Report counts what a copy or a verification covered.
type Report struct {
	Tenants int
	Secrets int
	APIKeys int
	// Digests maps each tenant to the SHA-256 over its sorted key names,
	// ciphertexts and validity windows, as hex-free raw bytes.
	Digests map[string][sha256.Size]byte
}

// ErrConflict is returned when the target holds data that the copy would
// have to overwrite with something else: another deployment's key-check
// record or tenant key, or another API key under the same id.
var ErrConflict = errors.New("storecopy: the target holds conflicting data")

// Copy copies the key-check record, every tenant's wrapped data key and
// secrets, and every API key from src to dst. Secrets already in dst are
// overwritten with src's; API keys already in dst with the same hash are
// kept, and revocations are carried over. Copy may be run again after a
// failure or after more writes to src.
func Copy(ctx context.Context, src, dst neostore.Store) (Report, error) {
	var rep Report
	check, err := src.GetKeyCheck(ctx)
	if err != nil {
		return rep, fmt.Errorf("read source key check: %w", err)
	}
	stored, err := dst.CreateKeyCheck(ctx, check)
	if err != nil {
		return rep, fmt.Errorf("write target key check: %w", err)
	}
	if !bytes.Equal(stored, check) {
		return rep, fmt.Errorf("%w: the target was initialised with another master key check record; copy into an empty database", ErrConflict)
	}

	tenants, err := src.ListTenants(ctx)
	if err != nil {
		return rep, fmt.Errorf("list source tenants: %w", err)
	}
	for _, tenant := range tenants {
		n, err := copyTenant(ctx, src, dst, tenant)
		if err != nil {
			return rep, fmt.Errorf("tenant %s: %w", tenant, err)
		}
		rep.Tenants++
		rep.Secrets += n
	}

	n, err := copyAPIKeys(ctx, src, dst)
	if err != nil {
		return rep, err
	}
	rep.APIKeys = n
	return rep, nil
}

func copyTenant(ctx context.Context, src, dst neostore.Store, tenant string) (int, error) {
	wrapped, err := src.GetTenantKey(ctx, tenant)
	switch {
	case err == nil:
		stored, err := dst.CreateTenantKey(ctx, tenant, wrapped)
		if err != nil {
			return 0, fmt.Errorf("write tenant key: %w", err)
		}
		if !bytes.Equal(stored, wrapped) {
			return 0, fmt.Errorf("%w: the target has another data key for this tenant", ErrConflict)
		}
	case neostore.ErrorCode(err) != neostore.ENOTFOUND:
		return 0, fmt.Errorf("read tenant key: %w", err)
	}
	keys, err := src.ListSecretKeys(ctx, tenant)
	if err != nil {
		return 0, fmt.Errorf("list secrets: %w", err)
	}
	for _, key := range keys {
		s, err := src.GetSecret(ctx, tenant, key)
		if neostore.ErrorCode(err) == neostore.ENOTFOUND {
			continue // deleted since it was listed
		} else if err != nil {
			return 0, fmt.Errorf("read secret: %w", err)
		}
		if err := dst.PutSecret(ctx, tenant, key, s, neostore.Change{}); err != nil {
			return 0, fmt.Errorf("write secret: %w", err)
		}
	}
	return len(keys), nil
}

func copyAPIKeys(ctx context.Context, src, dst neostore.Store) (int, error) {
	keys, err := src.ListAPIKeys(ctx, "")
	if err != nil {
		return 0, fmt.Errorf("list source API keys: %w", err)
	}
	existing, err := dst.ListAPIKeys(ctx, "")
	if err != nil {
		return 0, fmt.Errorf("list target API keys: %w", err)
	}
	byID := make(map[string]neostore.APIKey, len(existing))
	for _, k := range existing {
		byID[k.ID] = k
	}
	for _, k := range keys {
		have, ok := byID[k.ID]
		if !ok {
			if err := dst.CreateAPIKey(ctx, k); err != nil {
				return 0, fmt.Errorf("write API key %s: %w", k.ID, err)
			}
			continue
		}
		if !bytes.Equal(have.Hash, k.Hash) || have.Tenant != k.Tenant {
			return 0, fmt.Errorf("%w: API key %s differs in the target", ErrConflict, k.ID)
		}
		if k.RevokedAt.Set && !have.RevokedAt.Set {
			if err := dst.RevokeAPIKey(ctx, k.ID, k.RevokedAt.At); err != nil {
				return 0, fmt.Errorf("revoke API key %s: %w", k.ID, err)
			}
		}
	}
	return len(keys), nil
}

// Digest returns a report of store: its tenants, secret and API-key counts,
// and a digest per tenant over every secret's key name, ciphertext,
// validity window and times, in key order.
func Digest(ctx context.Context, store neostore.Store) (Report, error) {
	rep := Report{Digests: map[string][sha256.Size]byte{}}
	tenants, err := store.ListTenants(ctx)
	if err != nil {
		return rep, err
	}
	for _, tenant := range tenants {
		keys, err := store.ListSecretKeys(ctx, tenant)
		if err != nil {
			return rep, err
		}
		h := sha256.New()
		for _, key := range keys {
			s, err := store.GetSecret(ctx, tenant, key)
			if err != nil {
				return rep, fmt.Errorf("tenant %s: %w", tenant, err)
			}
			writeField(h, []byte(key))
			writeField(h, s.Ciphertext)
			writeBound(h, s.Validity.NotBefore)
			writeBound(h, s.Validity.ExpiresOn)
			writeBound(h, s.Times.CreatedOn)
			writeBound(h, s.Times.UpdatedOn)
		}
		rep.Digests[tenant] = [sha256.Size]byte(h.Sum(nil))
		rep.Tenants++
		rep.Secrets += len(keys)
	}
	keys, err := store.ListAPIKeys(ctx, "")
	if err != nil {
		return rep, err
	}
	rep.APIKeys = len(keys)
	return rep, nil
}

type writer interface{ Write([]byte) (int, error) }

// writeField writes b length-prefixed, so that field boundaries are part of
// the digest.
func writeField(h writer, b []byte) {
	h.Write(binary.AppendUvarint(nil, uint64(len(b))))
	h.Write(b)
}

func writeBound(h writer, b neostore.Bound) {
	if !b.Set {
		h.Write([]byte{0})
		return
	}
	buf := []byte{1}
	buf = binary.BigEndian.AppendUint64(buf, uint64(b.At.Unix()))
	buf = binary.BigEndian.AppendUint32(buf, uint32(b.At.Nanosecond()))
	h.Write(buf)
}

// Verify compares the digests of src and dst and returns dst's report, or an
// error naming the first tenant (in order) that differs. Extra tenants or
// API keys in dst (written there after the copy) are reported as a
// mismatch too.
func Verify(ctx context.Context, src, dst neostore.Store) (Report, error) {
	want, err := Digest(ctx, src)
	if err != nil {
		return Report{}, fmt.Errorf("digest source: %w", err)
	}
	got, err := Digest(ctx, dst)
	if err != nil {
		return got, fmt.Errorf("digest target: %w", err)
	}
	tenants := make([]string, 0, len(want.Digests))
	for t := range want.Digests {
		tenants = append(tenants, t)
	}
	slices.Sort(tenants)
	for _, t := range tenants {
		if d, ok := got.Digests[t]; !ok || d != want.Digests[t] {
			return got, fmt.Errorf("tenant %s differs between source and target", t)
		}
	}
	if got.Tenants != want.Tenants || got.Secrets != want.Secrets || got.APIKeys != want.APIKeys {
		return got, fmt.Errorf("counts differ: source %d tenants, %d secrets, %d API keys; target %d, %d, %d",
			want.Tenants, want.Secrets, want.APIKeys, got.Tenants, got.Secrets, got.APIKeys)
	}
	return got, nil
}
