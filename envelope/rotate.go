package envelope

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/neostore/neostore-secrets"
	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// Store is what a Rotator needs of storage: every tenant's data key and
// secrets, the key-check record, the audit key and the webhook
// subscriptions' signing secrets. neostore.Store implements it.
type Store interface {
	neostore.SecretStore
	neostore.TenantKeyStore
	neostore.KeyCheckStore
	neostore.AuditStateStore
	WebhookSecretStore
	ListTenants(ctx context.Context) ([]string, error)
}

var _ neostore.KeyManager = (*Rotator)(nil)

// maxSwapAttempts bounds how often a compare-and-swap is retried after
// losing to a concurrent change, so that two rotations fighting over one
// record cannot loop for ever.
const maxSwapAttempts = 8

// resealWorkers is how many secrets are sealed anew at once. A few writes
// in flight let the embedded store's group commit share fsyncs among them,
// without taking many connections of a shared database.
const resealWorkers = 8

// Rotator rotates keys while the store serves requests: it reloads the
// master keyset, wraps tenant data keys anew under its primary, checks
// whether a master key can be removed, and rotates tenant data keys. It
// implements neostore.KeyManager. It is safe for concurrent use.
type Rotator struct {
	master *Master
	sealer *Sealer
	store  Store
}

// NewRotator returns a Rotator over store, whose tenant keys sealer caches
// and whose master keyset is sealer's. When it rotates a tenant's data key
// it refreshes sealer's cache at once; other nodes notice within
// DefaultKeyRefresh.
func NewRotator(sealer *Sealer, store Store) *Rotator {
	return &Rotator{master: sealer.master, sealer: sealer, store: store}
}

// MasterKeys returns the keys of the master keyset in use, each with the
// tenant data keys, key-check record and audit key wrapped under it, as
// the key id in each ciphertext's Tink prefix names it.
func (r *Rotator) MasterKeys(ctx context.Context) ([]neostore.MasterKey, error) {
	u, err := r.usage(ctx)
	if err != nil {
		return nil, err
	}
	keys := r.master.Keys()
	for i := range keys {
		keys[i].TenantKeys = u.tenantKeys[keys[i].ID]
		keys[i].KeyCheck = u.keyCheck.ok && u.keyCheck.id == keys[i].ID
		keys[i].AuditKey = u.auditKey.ok && u.auditKey.id == keys[i].ID
		keys[i].WebhookSecrets = u.webhookSecrets[keys[i].ID]
	}
	return keys, nil
}

// masterUsage is which master key wraps what, by ciphertext prefix.
type masterUsage struct {
	tenantKeys     map[uint32]int
	keyCheck       keyRef
	auditKey       keyRef
	webhookSecrets map[uint32]int
}

type keyRef struct {
	id uint32
	ok bool
}

func (r *Rotator) usage(ctx context.Context) (masterUsage, error) {
	u := masterUsage{tenantKeys: map[uint32]int{}, webhookSecrets: map[uint32]int{}}
	tenants, err := r.store.ListTenants(ctx)
	if err != nil {
		return u, fmt.Errorf("envelope: list tenants: %w", err)
	}
	for _, tenant := range tenants {
		wrapped, err := r.store.GetTenantKey(ctx, tenant)
		if neostore.ErrorCode(err) == neostore.ENOTFOUND {
			continue
		} else if err != nil {
			return u, fmt.Errorf("envelope: read tenant key: %w", err)
		}
		if id, ok := wrappingKeyID(wrapped); ok {
			u.tenantKeys[id]++
		}
	}
	record, err := r.store.GetKeyCheck(ctx)
	if err == nil {
		u.keyCheck.id, u.keyCheck.ok = prefixKeyID(record)
	} else if neostore.ErrorCode(err) != neostore.ENOTFOUND {
		return u, fmt.Errorf("envelope: read key-check record: %w", err)
	}
	if wrapped, err := r.store.GetAuditKey(ctx); err == nil {
		u.auditKey.id, u.auditKey.ok = prefixKeyID(wrapped)
	} else if neostore.ErrorCode(err) != neostore.ENOTFOUND {
		return u, fmt.Errorf("envelope: read audit key: %w", err)
	}
	subs, err := r.webhooks(ctx)
	if err != nil {
		return u, err
	}
	for _, sub := range subs {
		for _, s := range sub.Secrets {
			if id, ok := prefixKeyID(s.Sealed); ok {
				u.webhookSecrets[id]++
			}
		}
	}
	return u, nil
}

// wrappingKeyID returns the id of the master key that wrapped a tenant
// data keyset.
func wrappingKeyID(wrapped []byte) (uint32, bool) {
	enc, err := keyset.NewBinaryReader(bytes.NewReader(wrapped)).ReadEncrypted()
	if err != nil {
		return 0, false
	}
	return prefixKeyID(enc.GetEncryptedKeyset())
}

// prefixKeyID returns the key id in the output prefix of a Tink ciphertext:
// a version byte (1 for TINK, 0 for LEGACY and CRUNCHY), then the id, big-
// endian. Keys made by this package have TINK prefixes.
func prefixKeyID(ciphertext []byte) (uint32, bool) {
	if len(ciphertext) < 5 || ciphertext[0] > 1 {
		return 0, false
	}
	return binary.BigEndian.Uint32(ciphertext[1:5]), true
}

// ReloadMaster re-reads the master keyset file and uses it from then on.
// The new keyset must open the key-check record and hold every master key
// that still wraps a tenant key, a webhook signing secret, the key-check
// record or the audit key;
// else it is refused with EINVALID and the keyset in use is kept.
func (r *Rotator) ReloadMaster(ctx context.Context) ([]neostore.MasterKey, error) {
	m := r.master
	if m.path == "" {
		return nil, neostore.Errorf(neostore.EINVALID, "The master key was not read from a file (NEOSTORE_MASTER_KEY or dev), so it cannot be reloaded: restart the server with the new key.")
	}
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	next, err := readMasterKeys(m.path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", neostore.Errorf(neostore.EINVALID, "The master key file could not be read as a private Tink keyset; the keyset in use is kept."), err)
	}
	record, err := r.store.GetKeyCheck(ctx)
	if err == nil && !next.opensKeyCheck(record) {
		return nil, neostore.Errorf(neostore.EINVALID, "The master key file holds another keyset: it does not open this store's key-check record. The keyset in use is kept.")
	} else if err != nil && neostore.ErrorCode(err) != neostore.ENOTFOUND {
		return nil, fmt.Errorf("envelope: read key-check record: %w", err)
	}
	u, err := r.usage(ctx)
	if err != nil {
		return nil, err
	}
	for id, n := range u.tenantKeys {
		if !next.has(id) {
			return nil, neostore.Errorf(neostore.EINVALID, "The new master keyset lacks key %d, which still wraps %d tenant data keys. The keyset in use is kept.", id, n)
		}
	}
	for id, n := range u.webhookSecrets {
		if !next.has(id) {
			return nil, neostore.Errorf(neostore.EINVALID, "The new master keyset lacks key %d, which still seals %d webhook signing secrets. The keyset in use is kept.", id, n)
		}
	}
	for _, ref := range []struct {
		what string
		keyRef
	}{{"the key-check record", u.keyCheck}, {"the audit key", u.auditKey}} {
		if ref.ok && !next.has(ref.id) {
			return nil, neostore.Errorf(neostore.EINVALID, "The new master keyset lacks key %d, which still wraps %s. The keyset in use is kept.", ref.id, ref.what)
		}
	}
	m.keys.Store(next)
	return r.MasterKeys(ctx)
}

// Rewrap wraps every tenant data key, every webhook signing secret, the
// key-check record and the audit key anew under the primary master key. What the primary already wraps is left
// alone, so a re-run after an interruption only finishes the work. The data
// keys themselves do not change, so nothing is sealed anew and no node
// needs to unwrap again. It fails, changing nothing, when the master keyset
// does not open the key-check record.
func (r *Rotator) Rewrap(ctx context.Context) (neostore.RewrapReport, error) {
	var rep neostore.RewrapReport
	k := r.master.current()
	record, err := r.store.GetKeyCheck(ctx)
	if err == nil && !k.opensKeyCheck(record) {
		return rep, fmt.Errorf("%w: %w", neostore.Errorf(neostore.EINVALID, "The master key does not match this store (the key-check record does not open); nothing was rewrapped."), ErrWrongMasterKey)
	} else if err != nil && neostore.ErrorCode(err) != neostore.ENOTFOUND {
		return rep, fmt.Errorf("envelope: read key-check record: %w", err)
	}

	tenants, err := r.store.ListTenants(ctx)
	if err != nil {
		return rep, fmt.Errorf("envelope: list tenants: %w", err)
	}
	for _, tenant := range tenants {
		rewrapped, found, err := r.rewrapTenant(ctx, k, tenant)
		if err != nil {
			return rep, err
		}
		if found {
			rep.Tenants++
		}
		if rewrapped {
			rep.Rewrapped++
		}
	}

	rep.KeyCheckResealed, err = r.reseal(ctx, k, labelKeyCheck, r.store.GetKeyCheck, r.store.ReplaceKeyCheck)
	if err != nil {
		return rep, fmt.Errorf("envelope: seal key-check record anew: %w", err)
	}
	rep.AuditKeyResealed, err = r.reseal(ctx, k, labelAuditKey, r.store.GetAuditKey, r.store.ReplaceAuditKey)
	if err != nil {
		return rep, fmt.Errorf("envelope: seal audit key anew: %w", err)
	}
	rep.WebhookSecrets, err = r.resealWebhookSecrets(ctx, k)
	return rep, err
}

// rewrapTenant wraps tenant's data key anew under k's primary unless it is
// already. found is false for a tenant without a data key.
func (r *Rotator) rewrapTenant(ctx context.Context, k *masterKeys, tenant string) (rewrapped, found bool, err error) {
	for range maxSwapAttempts {
		wrapped, err := r.store.GetTenantKey(ctx, tenant)
		if neostore.ErrorCode(err) == neostore.ENOTFOUND {
			return false, false, nil
		} else if err != nil {
			return false, false, fmt.Errorf("envelope: read tenant key: %w", err)
		}
		if id, ok := wrappingKeyID(wrapped); ok && id == k.primaryID {
			return false, true, nil
		}
		h, err := unwrapWith(k.aead, tenant, wrapped)
		if err != nil {
			return false, true, fmt.Errorf("tenant %s: %w", tenant, err)
		}
		next, err := wrapWith(k.aead, tenant, h)
		if err != nil {
			return false, true, err
		}
		err = r.store.ReplaceTenantKey(ctx, tenant, wrapped, next)
		if err == nil {
			return true, true, nil
		} else if neostore.ErrorCode(err) != neostore.ECONFLICT {
			return false, true, fmt.Errorf("envelope: store tenant key: %w", err)
		}
		// A concurrent rewrap or rotation changed it: look again.
	}
	return false, true, neostore.Errorf(neostore.ECONFLICT, "The data key of tenant %s kept changing while it was rewrapped; run keys rewrap again.", tenant)
}

// reseal seals a master-key-sealed record (key check, audit key) anew under
// k's primary unless it already is, with compare-and-swap.
func (r *Rotator) reseal(ctx context.Context, k *masterKeys, label string,
	get func(context.Context) ([]byte, error), replace func(ctx context.Context, old, record []byte) error) (bool, error) {
	for range maxSwapAttempts {
		old, err := get(ctx)
		if neostore.ErrorCode(err) == neostore.ENOTFOUND {
			return false, nil
		} else if err != nil {
			return false, err
		}
		if id, ok := prefixKeyID(old); ok && id == k.primaryID {
			return false, nil
		}
		pt, err := k.aead.Decrypt(old, []byte(label))
		if err != nil {
			return false, fmt.Errorf("does not open under the master keyset: %w", errInternal())
		}
		next, err := k.aead.Encrypt(pt, []byte(label))
		clear(pt)
		if err != nil {
			return false, err
		}
		if err = replace(ctx, old, next); err == nil {
			return true, nil
		} else if neostore.ErrorCode(err) != neostore.ECONFLICT {
			return false, err
		}
	}
	return false, neostore.Errorf(neostore.ECONFLICT, "A record sealed by the master key kept changing while it was sealed anew; run keys rewrap again.")
}

// CheckMasterKeyRemoval reports whether master key id could leave the
// keyset: every tenant data key, webhook signing secret, the key-check
// record and the audit key must open under the keyset without it. It decrypts rather than trusting
// ciphertext prefixes, so the answer holds whatever prefix the keys use.
func (r *Rotator) CheckMasterKeyRemoval(ctx context.Context, id uint32) error {
	k := r.master.current()
	if !k.has(id) {
		return neostore.Errorf(neostore.ENOTFOUND, "The master keyset in use has no key %d.", id)
	}
	if id == k.primaryID {
		return neostore.Errorf(neostore.ECONFLICT, "Master key %d is the primary key of the keyset in use: add a new primary (keys rotate, then reload the servers) and rewrap first.", id)
	}
	without, err := subsetAEAD(k.handle, func(x uint32) bool { return x != id })
	if err != nil {
		return err
	}
	tenants, err := r.store.ListTenants(ctx)
	if err != nil {
		return fmt.Errorf("envelope: list tenants: %w", err)
	}
	var dependents []string
	n := 0
	for _, tenant := range tenants {
		wrapped, err := r.store.GetTenantKey(ctx, tenant)
		if neostore.ErrorCode(err) == neostore.ENOTFOUND {
			continue
		} else if err != nil {
			return fmt.Errorf("envelope: read tenant key: %w", err)
		}
		// A key that does not open even with id is damaged, not a
		// dependent: removing id changes nothing for it.
		if _, err := unwrapWith(without, tenant, wrapped); err != nil {
			if _, err := unwrapWith(k.aead, tenant, wrapped); err == nil {
				n++
			}
		}
	}
	if n > 0 {
		dependents = append(dependents, fmt.Sprintf("%d tenant data keys", n))
	}
	subs, err := r.webhooks(ctx)
	if err != nil {
		return err
	}
	n = 0
	for _, sub := range subs {
		for _, s := range sub.Secrets {
			if dependsOn(k.aead, without, s.Sealed, webhookSecretAD(sub.ID)) {
				n++
			}
		}
	}
	if n > 0 {
		dependents = append(dependents, fmt.Sprintf("%d webhook signing secrets", n))
	}
	record, err := r.store.GetKeyCheck(ctx)
	if err == nil && dependsOn(k.aead, without, record, []byte(labelKeyCheck)) {
		dependents = append(dependents, "the key-check record")
	} else if err != nil && neostore.ErrorCode(err) != neostore.ENOTFOUND {
		return fmt.Errorf("envelope: read key-check record: %w", err)
	}
	if wrapped, err := r.store.GetAuditKey(ctx); err == nil && dependsOn(k.aead, without, wrapped, []byte(labelAuditKey)) {
		dependents = append(dependents, "the audit key")
	} else if err != nil && neostore.ErrorCode(err) != neostore.ENOTFOUND {
		return fmt.Errorf("envelope: read audit key: %w", err)
	}
	if len(dependents) > 0 {
		return neostore.Errorf(neostore.ECONFLICT, "Master key %d still wraps %s: run keys rewrap first.", id, strings.Join(dependents, " and "))
	}
	return nil
}

// dependsOn reports whether ciphertext opens under full but not without.
func dependsOn(full, without tink.AEAD, ciphertext, ad []byte) bool {
	if pt, err := without.Decrypt(ciphertext, ad); err == nil {
		clear(pt)
		return false
	}
	pt, err := full.Decrypt(ciphertext, ad)
	clear(pt)
	return err == nil
}

// RotateTenantKey rotates tenant's data key while the API serves it:
//
//  1. It adds a new data key to the tenant's keyset as its primary and
//     stores the keyset (compare-and-swap). This node seals with the new
//     key at once; the others within DefaultKeyRefresh. Every node still
//     opens values sealed under the old keys, which stay in the keyset.
//  2. It waits grace, so that every node has stopped sealing with the old
//     keys and every write sealed before has reached the store. grace
//     should exceed DefaultKeyRefresh plus the longest store write (on
//     PostgreSQL, connect plus statement timeout).
//  3. It seals every secret of the tenant anew under the new key, each with
//     compare-and-swap: a secret a client changed or deleted meanwhile is
//     skipped, never overwritten or resurrected. A second pass picks up
//     writes sealed under an old key that landed during the first.
//  4. It removes the old keys from the keyset (compare-and-swap), unless a
//     secret does not open under any key of the keyset.
//  5. A last pass seals anew, with the old keys still in memory, any write
//     under an old key that landed after step 3 despite the grace.
//
// Interrupted at any step, it leaves every secret readable; running it
// again finishes the job (with one more new key).
func (r *Rotator) RotateTenantKey(ctx context.Context, tenant string, grace time.Duration) (neostore.TenantKeyRotation, error) {
	rep := neostore.TenantKeyRotation{Tenant: tenant}
	if !neostore.ValidTenantID(tenant) {
		return rep, neostore.InvalidTenantID("tenant")
	}

	// 1. A new primary data key.
	full, newID, err := r.addTenantKey(ctx, tenant)
	if err != nil {
		return rep, err
	}
	rep.NewKeyID = newID
	var oldIDs []uint32
	for i := range full.Len() {
		if e, err := full.Entry(i); err == nil && e.KeyID() != newID {
			oldIDs = append(oldIDs, e.KeyID())
		}
	}
	if _, err := r.sealer.load(ctx, tenant, false, r.sealer.cached(tenant)); err != nil {
		return rep, err
	}

	// 2. Let every node's cached key expire.
	if grace > 0 {
		t := time.NewTimer(grace)
		select {
		case <-ctx.Done():
			t.Stop()
			return rep, ctx.Err()
		case <-t.C:
		}
	}

	// 3. Seal anew, twice.
	all, err := aead.New(full) // encrypts with the new primary
	if err != nil {
		return rep, fmt.Errorf("envelope: tenant keyset: %w", err)
	}
	newOnly, err := subsetAEAD(full, func(id uint32) bool { return id == newID })
	if err != nil {
		return rep, err
	}
	var unopenable int
	for pass := range 2 {
		p, err := r.resealPass(ctx, tenant, all, newOnly)
		if err != nil {
			return rep, err
		}
		if pass == 0 {
			rep.Secrets = p.examined
		}
		rep.Resealed += p.resealed
		rep.Skipped += p.skipped
		unopenable = p.unopenable
	}
	if unopenable > 0 {
		return rep, neostore.Errorf(neostore.ECONFLICT, "%d secrets of tenant %s open under none of its data keys; the old data keys were kept.", unopenable, tenant)
	}

	// 4. Remove the old keys.
	if err := r.dropOldTenantKeys(ctx, tenant, full, newID); err != nil {
		return rep, err
	}
	rep.RemovedKeyIDs = oldIDs
	if _, err := r.sealer.load(ctx, tenant, false, r.sealer.cached(tenant)); err != nil {
		return rep, err
	}

	// 5. Stragglers.
	p, err := r.resealPass(ctx, tenant, all, newOnly)
	if err != nil {
		return rep, err
	}
	rep.Resealed += p.resealed
	rep.Skipped += p.skipped
	return rep, nil
}

// addTenantKey adds a new primary key to tenant's data keyset and stores it,
// and returns the keyset with every key and the new key's id.
func (r *Rotator) addTenantKey(ctx context.Context, tenant string) (*keyset.Handle, uint32, error) {
	for range maxSwapAttempts {
		wrapped, err := r.store.GetTenantKey(ctx, tenant)
		if neostore.ErrorCode(err) == neostore.ENOTFOUND {
			return nil, 0, neostore.Errorf(neostore.ENOTFOUND, "Tenant %s has no data key: it has never stored a secret.", tenant)
		} else if err != nil {
			return nil, 0, fmt.Errorf("envelope: read tenant key: %w", err)
		}
		k := r.master.current()
		h, err := unwrapWith(k.aead, tenant, wrapped)
		if err != nil {
			return nil, 0, fmt.Errorf("tenant %s: %w", tenant, err)
		}
		mgr := keyset.NewManagerFromHandle(h)
		id, err := mgr.Add(aead.AES256GCMKeyTemplate())
		if err != nil {
			return nil, 0, fmt.Errorf("envelope: generate tenant key: %w", err)
		}
		if err := mgr.SetPrimary(id); err != nil {
			return nil, 0, fmt.Errorf("envelope: generate tenant key: %w", err)
		}
		full, err := mgr.Handle()
		if err != nil {
			return nil, 0, fmt.Errorf("envelope: generate tenant key: %w", err)
		}
		next, err := wrapWith(k.aead, tenant, full)
		if err != nil {
			return nil, 0, err
		}
		err = r.store.ReplaceTenantKey(ctx, tenant, wrapped, next)
		if err == nil {
			return full, id, nil
		} else if neostore.ErrorCode(err) != neostore.ECONFLICT {
			return nil, 0, fmt.Errorf("envelope: store tenant key: %w", err)
		}
	}
	return nil, 0, neostore.Errorf(neostore.ECONFLICT, "The data key of tenant %s kept changing; try again.", tenant)
}

// dropOldTenantKeys stores tenant's keyset with only key newID, provided
// the stored keyset is still full (wrapped anew meanwhile is fine).
func (r *Rotator) dropOldTenantKeys(ctx context.Context, tenant string, full *keyset.Handle, newID uint32) error {
	want := keysetInfo(full.KeysetInfo())
	for range maxSwapAttempts {
		wrapped, err := r.store.GetTenantKey(ctx, tenant)
		if err != nil {
			return fmt.Errorf("envelope: read tenant key: %w", err)
		}
		k := r.master.current()
		h, err := unwrapWith(k.aead, tenant, wrapped)
		if err != nil {
			return fmt.Errorf("tenant %s: %w", tenant, err)
		}
		if keysetInfo(h.KeysetInfo()) != want {
			return neostore.Errorf(neostore.ECONFLICT, "The data key of tenant %s was rotated concurrently; its old data keys were kept. Run keys rotate-tenant again.", tenant)
		}
		mgr := keyset.NewManagerFromHandle(h)
		for i := range h.Len() {
			if e, err := h.Entry(i); err == nil && e.KeyID() != newID {
				if err := mgr.Delete(e.KeyID()); err != nil {
					return fmt.Errorf("envelope: remove old tenant key: %w", err)
				}
			}
		}
		only, err := mgr.Handle()
		if err != nil {
			return fmt.Errorf("envelope: remove old tenant key: %w", err)
		}
		next, err := wrapWith(k.aead, tenant, only)
		if err != nil {
			return err
		}
		err = r.store.ReplaceTenantKey(ctx, tenant, wrapped, next)
		if err == nil {
			return nil
		} else if neostore.ErrorCode(err) != neostore.ECONFLICT {
			return fmt.Errorf("envelope: store tenant key: %w", err)
		}
		// A master-key rewrap changed the bytes: look again.
	}
	return neostore.Errorf(neostore.ECONFLICT, "The data key of tenant %s kept changing; its old data keys were kept. Run keys rotate-tenant again.", tenant)
}

type passReport struct {
	examined, resealed, skipped, unopenable int
}

// resealPass seals anew under the new key every secret of tenant that
// newOnly does not open, with resealWorkers at a time.
func (r *Rotator) resealPass(ctx context.Context, tenant string, all, newOnly tink.AEAD) (passReport, error) {
	var rep passReport
	keys, err := r.store.ListSecretKeys(ctx, tenant)
	if err != nil {
		return rep, fmt.Errorf("envelope: list secrets: %w", err)
	}
	rep.examined = len(keys)
	var (
		mu       sync.Mutex
		firstErr error
		next     = make(chan string)
		wg       sync.WaitGroup
	)
	for range min(resealWorkers, len(keys)) {
		wg.Go(func() {
			for key := range next {
				outcome, err := r.resealSecret(ctx, tenant, key, all, newOnly)
				mu.Lock()
				switch {
				case err != nil:
					firstErr = cmpErr(firstErr, err)
				case outcome == outcomeResealed:
					rep.resealed++
				case outcome == outcomeSkipped:
					rep.skipped++
				case outcome == outcomeUnopenable:
					rep.unopenable++
				}
				mu.Unlock()
			}
		})
	}
	for _, key := range keys {
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed || ctx.Err() != nil {
			break
		}
		next <- key
	}
	close(next)
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return rep, firstErr
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

type resealOutcome int

const (
	outcomeCurrent    resealOutcome = iota // already under the new key, or gone
	outcomeResealed                        // sealed anew under the new key
	outcomeSkipped                         // changed or deleted by a client meanwhile
	outcomeUnopenable                      // opens under no key of the keyset
)

func (r *Rotator) resealSecret(ctx context.Context, tenant, key string, all, newOnly tink.AEAD) (resealOutcome, error) {
	sec, err := r.store.GetSecret(ctx, tenant, key)
	if neostore.ErrorCode(err) == neostore.ENOTFOUND {
		return outcomeCurrent, nil
	} else if err != nil {
		return 0, fmt.Errorf("envelope: read secret: %w", err)
	}
	adp := r.sealer.secretAD(tenant, key)
	defer r.sealer.putAD(adp)
	if pt, err := newOnly.Decrypt(sec.Ciphertext, *adp); err == nil {
		clear(pt)
		return outcomeCurrent, nil
	}
	pt, err := all.Decrypt(sec.Ciphertext, *adp)
	if err != nil {
		return outcomeUnopenable, nil
	}
	ct, err := all.Encrypt(pt, *adp)
	clear(pt)
	if err != nil {
		return 0, fmt.Errorf("envelope: seal secret: %w", err)
	}
	// Resealing is no put: window and times stay as they are.
	err = r.store.ReplaceSecret(ctx, tenant, key, sec.Ciphertext, neostore.SealedSecret{Ciphertext: ct, Validity: sec.Validity, Times: sec.Times})
	switch {
	case err == nil:
		return outcomeResealed, nil
	case neostore.ErrorCode(err) == neostore.ECONFLICT:
		return outcomeSkipped, nil
	}
	return 0, fmt.Errorf("envelope: store secret: %w", err)
}
