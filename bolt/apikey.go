package bolt

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/neostore/neostore-secrets"
)

// apiKeyRecord is the stored form of an API key. It is separate from
// neostore.APIKey so that renaming a domain field cannot silently change
// what is on disk; scopes are stored by name so that their bit values may
// change too.
type apiKeyRecord struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Tenant    string     `json:"tenant"`
	Scopes    []string   `json:"scopes"`
	Hash      []byte     `json:"hash"`
	CreatedAt time.Time  `json:"createdAt"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
	RevokedAt *time.Time `json:"revokedAt,omitempty"`
	LastUsed  *time.Time `json:"lastUsed,omitempty"`
}

// CreateAPIKey stores a new API-key record. It returns EINVALID when the id
// or the hash is already taken, or is empty.
func (s *Store) CreateAPIKey(ctx context.Context, k neostore.APIKey) error {
	tx, err := s.begin(ctx, true)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if err := createAPIKey(tx, k); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("bolt: create api key: %w", err)
	}
	return nil
}

// ListAPIKeys returns the records of tenant, or of every tenant when tenant
// is empty, ordered by creation time then id.
func (s *Store) ListAPIKeys(ctx context.Context, tenant string) ([]neostore.APIKey, error) {
	tx, err := s.begin(ctx, false)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	return listAPIKeys(tx, tenant)
}

// APIKeyByHash returns the record whose hash is hash, revoked or not, or
// ENOTFOUND.
func (s *Store) APIKeyByHash(ctx context.Context, hash []byte) (neostore.APIKey, error) {
	tx, err := s.begin(ctx, false)
	if err != nil {
		return neostore.APIKey{}, err
	}
	defer func() { _ = tx.Rollback() }()
	id := tx.Bucket(bucketAPIKeyHashes).Get(hash)
	if id == nil {
		return neostore.APIKey{}, neostore.ErrAPIKeyNotFound
	}
	return getAPIKey(tx, string(id))
}

// RevokeAPIKey marks the key revoked at at. It returns ENOTFOUND for an
// unknown id; a key revoked before keeps its first revocation time.
func (s *Store) RevokeAPIKey(ctx context.Context, id string, at time.Time) error {
	tx, err := s.begin(ctx, true)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	changed, err := revokeAPIKey(tx, id, at)
	if err != nil || !changed {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("bolt: revoke api key: %w", err)
	}
	return nil
}

// TouchAPIKeys records the last-use times of several keys in one
// transaction; ids without a record are ignored.
func (s *Store) TouchAPIKeys(ctx context.Context, lastUsed map[string]time.Time) error {
	if len(lastUsed) == 0 {
		return nil
	}
	tx, err := s.begin(ctx, true)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	for id, at := range lastUsed {
		if err := touchAPIKey(tx, id, at); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("bolt: touch api keys: %w", err)
	}
	return nil
}

func createAPIKey(tx *bbolt.Tx, k neostore.APIKey) error {
	switch {
	case k.ID == "":
		return neostore.ErrAPIKeyNoID
	case len(k.Hash) == 0:
		return neostore.ErrAPIKeyNoHash
	}
	keys, hashes := tx.Bucket(bucketAPIKeys), tx.Bucket(bucketAPIKeyHashes)
	if keys.Get([]byte(k.ID)) != nil {
		return neostore.ErrAPIKeyIDTaken
	}
	if hashes.Get(k.Hash) != nil {
		return neostore.ErrAPIKeyHashTaken
	}
	if err := putAPIKey(tx, k); err != nil {
		return err
	}
	if err := hashes.Put(slices.Clone(k.Hash), []byte(k.ID)); err != nil {
		return fmt.Errorf("bolt: create api key: %w", err)
	}
	return nil
}

func listAPIKeys(tx *bbolt.Tx, tenant string) ([]neostore.APIKey, error) {
	list := []neostore.APIKey{}
	c := tx.Bucket(bucketAPIKeys).Cursor()
	for id, v := c.First(); id != nil; id, v = c.Next() {
		k, err := decodeAPIKey(v)
		if err != nil {
			return nil, fmt.Errorf("bolt: api key %q: %w", id, err)
		}
		if tenant == "" || k.Tenant == tenant {
			list = append(list, k)
		}
	}
	slices.SortFunc(list, func(a, b neostore.APIKey) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return list, nil
}

// revokeAPIKey reports whether it changed the record.
func revokeAPIKey(tx *bbolt.Tx, id string, at time.Time) (bool, error) {
	k, err := getAPIKey(tx, id)
	if err != nil {
		return false, err
	}
	if k.RevokedAt.Set {
		return false, nil
	}
	k.RevokedAt = neostore.At(at)
	return true, putAPIKey(tx, k)
}

func touchAPIKey(tx *bbolt.Tx, id string, at time.Time) error {
	k, err := getAPIKey(tx, id)
	if neostore.ErrorCode(err) == neostore.ENOTFOUND {
		return nil
	} else if err != nil {
		return err
	}
	k.LastUsed = neostore.At(at)
	return putAPIKey(tx, k)
}

func getAPIKey(tx *bbolt.Tx, id string) (neostore.APIKey, error) {
	v := tx.Bucket(bucketAPIKeys).Get([]byte(id))
	if v == nil {
		return neostore.APIKey{}, neostore.ErrAPIKeyNotFound
	}
	k, err := decodeAPIKey(v)
	if err != nil {
		return neostore.APIKey{}, fmt.Errorf("bolt: api key %q: %w", id, err)
	}
	return k, nil
}

func putAPIKey(tx *bbolt.Tx, k neostore.APIKey) error {
	data, err := encodeAPIKey(k)
	if err != nil {
		return fmt.Errorf("bolt: api key %q: %w", k.ID, err)
	}
	if err := tx.Bucket(bucketAPIKeys).Put([]byte(k.ID), data); err != nil {
		return fmt.Errorf("bolt: api key %q: %w", k.ID, err)
	}
	return nil
}

func encodeAPIKey(k neostore.APIKey) ([]byte, error) {
	return json.Marshal(apiKeyRecord{
		ID:        k.ID,
		Name:      k.Name,
		Tenant:    k.Tenant,
		Scopes:    k.Scopes.Names(),
		Hash:      k.Hash,
		CreatedAt: k.CreatedAt.UTC(),
		ExpiresAt: k.ExpiresAt.Ptr(),
		RevokedAt: k.RevokedAt.Ptr(),
		LastUsed:  k.LastUsed.Ptr(),
	})
}

// decodeAPIKey parses a record; json.Unmarshal copies out of data, which
// bbolt may reclaim after the transaction.
func decodeAPIKey(data []byte) (neostore.APIKey, error) {
	var r apiKeyRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return neostore.APIKey{}, fmt.Errorf("corrupt api key record: %w", err)
	}
	k := neostore.APIKey{
		ID:        r.ID,
		Name:      r.Name,
		Tenant:    r.Tenant,
		Hash:      r.Hash,
		CreatedAt: r.CreatedAt.UTC(),
		ExpiresAt: neostore.BoundOf(r.ExpiresAt),
		RevokedAt: neostore.BoundOf(r.RevokedAt),
		LastUsed:  neostore.BoundOf(r.LastUsed),
	}
	for _, name := range r.Scopes {
		scope, ok := neostore.ParseScope(name)
		if !ok {
			return neostore.APIKey{}, fmt.Errorf("corrupt api key record: unknown scope %q", name)
		}
		k.Scopes |= scope
	}
	return k, nil
}
