package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/neostore/neostore-secrets"
)

// putSecret is one put, in ONE statement (one round trip): the upsert of
// the secret, which keeps created_on on a conflict and returns whether it
// inserted the row (xmax = 0), and, when the caller passed a notice ($12
// not NULL) and an enabled subscription covers the tenant, the change's
// event in the outbox, in the same statement and so the same transaction.
// Without subscriptions the outbox insert finds nothing to do. The due
// index needs no statement: it is two partial indexes of secrets (0004).
// Its arguments are putArgs.
const putSecret = `WITH up AS (
	INSERT INTO secrets (tenant, key, ciphertext, ` + timesColumns + `)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
	ON CONFLICT (tenant, key) DO UPDATE SET
		ciphertext = excluded.ciphertext,
		not_before_s = excluded.not_before_s, not_before_ns = excluded.not_before_ns,
		expires_on_s = excluded.expires_on_s, expires_on_ns = excluded.expires_on_ns,
		updated_on_s = excluded.updated_on_s, updated_on_ns = excluded.updated_on_ns
	RETURNING (xmax = 0) AS created
)
INSERT INTO webhook_outbox (id, type, at_ns, tenant, key, trace_id, created, not_before_s, not_before_ns, expires_on_s, expires_on_ns)
SELECT $12::text, 'secret.updated', $13::bigint, $1, $2, $14::text, up.created, $4, $5, $6, $7 FROM up
WHERE $12::text IS NOT NULL AND ` + coveredSQL

// coveredSQL is true when an enabled subscription covers tenant $1: a
// probe of a partial index over a small table.
const coveredSQL = `EXISTS (SELECT 1 FROM webhook_subscriptions WHERE tenant IN ($1, '*') AND disabled_at_ns IS NULL)`

// putArgs are putSecret's arguments: $1-$11 the row, $12-$14 the notice
// (NULL without one).
func putArgs(tenant, key string, sec neostore.SealedSecret, n *neostore.ChangeNotice) []any {
	nb, eo := encodeBound(sec.Validity.NotBefore), encodeBound(sec.Validity.ExpiresOn)
	co, uo := encodeBound(sec.Times.CreatedOn), encodeBound(sec.Times.UpdatedOn)
	id, at, trace := noticeArgs(n)
	return []any{tenant, key, nonNil(sec.Ciphertext), nb.s, nb.ns, eo.s, eo.ns, co.s, co.ns, uo.s, uo.ns, id, at, trace}
}

// noticeArgs are a notice's id, time and trace id, all NULL without one.
func noticeArgs(n *neostore.ChangeNotice) (id *string, at *int64, trace *string) {
	if n == nil {
		return nil, nil, nil
	}
	ns := nanos(n.At)
	return &n.EventID, &ns, &n.TraceID
}

// GetSecret returns the sealed secret stored under tenant and key, or
// ENOTFOUND. A row that does not decode is an internal error.
func (s *Store) GetSecret(ctx context.Context, tenant, key string) (neostore.SealedSecret, error) {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return neostore.SealedSecret{}, fmt.Errorf("postgres: get secret: %w", err)
	}
	defer cancel()
	var (
		ciphertext []byte
		row        timesRow
	)
	err = s.pool.QueryRow(ctx, `SELECT ciphertext, `+timesColumns+`
		FROM secrets WHERE tenant = $1 AND key = $2`, tenant, key).
		Scan(append([]any{&ciphertext}, row.dest()...)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return neostore.SealedSecret{}, neostore.ErrSecretNotFound
	} else if err != nil {
		return neostore.SealedSecret{}, s.fail(ctx, "get secret", err)
	}
	sec, err := row.decode()
	if err != nil {
		return neostore.SealedSecret{}, fmt.Errorf("postgres: secret %q of tenant %q: %w", key, tenant, err)
	}
	sec.Ciphertext = ciphertext // pgx scans into a fresh slice
	return sec, nil
}

// ListSecretAttributes returns the attributes of tenant's secrets in
// ordinal byte order, in one query that reads no ciphertext.
func (s *Store) ListSecretAttributes(ctx context.Context, tenant string) ([]neostore.SecretAttributes, error) {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: list secret attributes: %w", err)
	}
	defer cancel()
	rows, _ := s.pool.Query(ctx, `SELECT key, `+timesColumns+` FROM secrets WHERE tenant = $1 ORDER BY key`, tenant)
	attrs := []neostore.SecretAttributes{}
	var (
		key string
		row timesRow
	)
	_, err = pgx.ForEachRow(rows, append([]any{&key}, row.dest()...), func() error {
		sec, err := row.decode()
		if err != nil {
			return fmt.Errorf("postgres: secret %q of tenant %q: %w", key, tenant, err)
		}
		attrs = append(attrs, neostore.SecretAttributes{Key: key, Validity: sec.Validity, Times: sec.Times})
		return nil
	})
	if err != nil {
		return nil, s.fail(ctx, "list secret attributes", err)
	}
	return attrs, nil
}

// timesColumns are the columns of a secret's window and times, in the
// order of timesRow.dest.
const timesColumns = `not_before_s, not_before_ns, expires_on_s, expires_on_ns,
	created_on_s, created_on_ns, updated_on_s, updated_on_ns`

// timesRow scans timesColumns.
type timesRow struct{ nb, eo, co, uo bound }

func (r *timesRow) dest() []any {
	return []any{&r.nb.s, &r.nb.ns, &r.eo.s, &r.eo.ns, &r.co.s, &r.co.ns, &r.uo.s, &r.uo.ns}
}

// decode returns the row's window and times, without a ciphertext.
func (r *timesRow) decode() (neostore.SealedSecret, error) {
	notBefore, err1 := r.nb.decode()
	expiresOn, err2 := r.eo.decode()
	createdOn, err3 := r.co.decode()
	updatedOn, err4 := r.uo.decode()
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return neostore.SealedSecret{}, err
	}
	return neostore.SealedSecret{
		Validity: neostore.Validity{NotBefore: notBefore, ExpiresOn: expiresOn},
		Times:    neostore.SecretTimes{CreatedOn: createdOn, UpdatedOn: updatedOn},
	}, nil
}

// ChangeJournal returns nil: the PostgreSQL store does not journal audit
// entries (with --audit-sink database the records commit in the database
// anyway), so its write methods refuse a Change that carries records.
func (s *Store) ChangeJournal() neostore.ChangeJournal { return nil }

// PutSecret stores sec under tenant and key, replacing value and window of
// any previous secret in one statement, so that no reader on any node sees
// the value of one put with the window of another; the same statement
// records c.Notice's event (putSecret). A nil return means the
// transaction committed (durable as far as the server's synchronous_commit
// promises).
func (s *Store) PutSecret(ctx context.Context, tenant, key string, sec neostore.SealedSecret, c neostore.Change) error {
	if c.Records() {
		return neostore.ErrChangeRecords
	}
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return fmt.Errorf("postgres: put secret: %w", err)
	}
	defer cancel()
	if s.maxKeys > 0 {
		return s.putWithinQuota(ctx, tenant, key, sec, c.Notice)
	}
	_, err = s.pool.Exec(ctx, putSecret, putArgs(tenant, key, sec, c.Notice)...)
	if err != nil {
		return s.fail(ctx, "put secret", err)
	}
	return nil
}

// quotaLockClass is the first key of the two-key advisory locks that
// serialize one tenant's puts under a quota; the second is a hash of the
// tenant. Two-key locks never collide with Migrate's one-key lock.
const quotaLockClass = 0x6e73 // "ns"

// putWithinQuota is PutSecret under Options.MaxKeysPerTenant: the tenant's
// lock, then the count and the upsert in one transaction, so that two
// nodes putting new keys at once cannot both take the last place.
func (s *Store) putWithinQuota(ctx context.Context, tenant, key string, sec neostore.SealedSecret, n *neostore.ChangeNotice) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, hashtext($2))", quotaLockClass, tenant); err != nil {
			return err
		}
		var full bool
		err := tx.QueryRow(ctx, `SELECT NOT EXISTS (SELECT 1 FROM secrets WHERE tenant = $1 AND key = $2)
			AND (SELECT count(*) FROM (SELECT 1 FROM secrets WHERE tenant = $1 LIMIT $3) AS held) >= $3`,
			tenant, key, s.maxKeys).Scan(&full)
		if err != nil {
			return err
		}
		if full {
			return neostore.ErrTenantFull
		}
		_, err = tx.Exec(ctx, putSecret, putArgs(tenant, key, sec, n)...)
		return err
	})
	if errors.Is(err, neostore.ErrTenantFull) {
		return err
	} else if err != nil {
		return s.fail(ctx, "put secret", err)
	}
	return nil
}

// deleteSecret is one delete in one statement: the row (and so its due
// index entries) and, when the caller passed a notice ($3 not NULL), a row
// was deleted and an enabled subscription covers the tenant, the change's
// event with the deleted window.
const deleteSecret = `WITH del AS (
	DELETE FROM secrets WHERE tenant = $1 AND key = $2
	RETURNING not_before_s, not_before_ns, expires_on_s, expires_on_ns
)
INSERT INTO webhook_outbox (id, type, at_ns, tenant, key, trace_id, created, not_before_s, not_before_ns, expires_on_s, expires_on_ns)
SELECT $3::text, 'secret.deleted', $4::bigint, $1, $2, $5::text, FALSE, del.not_before_s, del.not_before_ns, del.expires_on_s, del.expires_on_ns
FROM del WHERE $3::text IS NOT NULL AND ` + coveredSQL + "\n"

// DeleteSecret removes the secret under tenant and key, with its event
// (c.Notice), in one statement; removing an absent one
// succeeds and records nothing. Like PutSecret it refuses a Change with
// records. A nil return means the deletion committed.
func (s *Store) DeleteSecret(ctx context.Context, tenant, key string, c neostore.Change) error {
	if c.Records() {
		return neostore.ErrChangeRecords
	}
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return fmt.Errorf("postgres: delete secret: %w", err)
	}
	defer cancel()
	id, at, trace := noticeArgs(c.Notice)
	if _, err := s.pool.Exec(ctx, deleteSecret, tenant, key, id, at, trace); err != nil {
		return s.fail(ctx, "delete secret", err)
	}
	return nil
}

// ListSecretKeys returns tenant's key names in ordinal byte order (the
// column is COLLATE "C"), or an empty slice when the tenant has none.
func (s *Store) ListSecretKeys(ctx context.Context, tenant string) ([]string, error) {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: list secret keys: %w", err)
	}
	defer cancel()
	rows, _ := s.pool.Query(ctx, "SELECT key FROM secrets WHERE tenant = $1 ORDER BY key", tenant)
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, s.fail(ctx, "list secret keys", err)
	}
	if keys == nil {
		keys = []string{}
	}
	return keys, nil
}

// ListSecretKeysAfter returns at most limit of tenant's key names after
// after, in ordinal byte order: a range scan of the primary key.
func (s *Store) ListSecretKeysAfter(ctx context.Context, tenant, after string, limit int) ([]string, error) {
	if limit <= 0 {
		return []string{}, nil
	}
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: list secret keys: %w", err)
	}
	defer cancel()
	rows, _ := s.pool.Query(ctx, "SELECT key FROM secrets WHERE tenant = $1 AND key > $2 ORDER BY key LIMIT $3", tenant, after, limit)
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, s.fail(ctx, "list secret keys", err)
	}
	if keys == nil {
		keys = []string{}
	}
	return keys, nil
}

// ListTenants returns every tenant with a data key or a secret, in ordinal
// byte order.
func (s *Store) ListTenants(ctx context.Context) ([]string, error) {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: list tenants: %w", err)
	}
	defer cancel()
	rows, _ := s.pool.Query(ctx, "SELECT tenant FROM tenant_keys UNION SELECT tenant FROM secrets ORDER BY tenant")
	tenants, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, s.fail(ctx, "list tenants", err)
	}
	if tenants == nil {
		tenants = []string{}
	}
	return tenants, nil
}

// bound is the stored form of a neostore.Bound (a validity bound or a
// secret time): seconds since the Unix epoch and nanoseconds, both NULL
// when unset. Years 1 to 9999 and every
// nanosecond round-trip, and year 1 stays distinct from "unset".
type bound struct {
	s  *int64
	ns *int32
}

func encodeBound(b neostore.Bound) bound {
	if !b.Set {
		return bound{}
	}
	sec, ns := b.At.Unix(), int32(b.At.Nanosecond())
	return bound{s: &sec, ns: &ns}
}

func (b bound) decode() (neostore.Bound, error) {
	switch {
	case b.s == nil && b.ns == nil:
		return neostore.Bound{}, nil
	case b.s == nil || b.ns == nil:
		return neostore.Bound{}, errors.New("corrupt secret row: half of a time is NULL")
	case *b.ns < 0 || *b.ns > 999_999_999:
		return neostore.Bound{}, fmt.Errorf("corrupt secret row: %d nanoseconds", *b.ns)
	}
	return neostore.At(time.Unix(*b.s, int64(*b.ns))), nil
}
