package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/neostore/neostore-secrets"
)

// Webhook notifications (neostore.WebhookStore), in the tables of
// migrations/0004_webhooks.sql. Every time comes from the caller's clock,
// never from the database's now(): the dispatcher's clock is injectable,
// and nodes compare leases by the times they wrote.

// nanos is t as nanoseconds since the Unix epoch, the form of the
// dispatcher's times (years 1678 to 2262); the zero time, which a caller
// may leave in a field it does not use, is the smallest value, so that it
// round-trips (fromNanosOrZero) and sorts first as in the bolt store.
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return math.MinInt64
	}
	return t.UnixNano()
}

// fromNanosOrZero is the inverse of nanos.
func fromNanosOrZero(n int64) time.Time {
	if n == math.MinInt64 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// nanosOf is an optional time as nanoseconds, NULL for the zero time or
// an unset Bound.
func nanosOf(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	n := t.UnixNano()
	return &n
}

func boundNanos(b neostore.Bound) *int64 {
	if !b.Set {
		return nil
	}
	return nanosOf(b.At)
}

func boundFromNanos(n *int64) neostore.Bound {
	if n == nil {
		return neostore.Bound{}
	}
	return neostore.At(time.Unix(0, *n))
}

// --- subscriptions ---

const webhookColumns = `id, name, tenant, url, events, leads_ns, secrets_sealed, secrets_expires_at_ns, created_at_ns, disabled_at_ns`

func webhookArgs(w neostore.WebhookSubscription) []any {
	leads := make([]int64, 0, len(w.Leads))
	for _, l := range w.Leads {
		leads = append(leads, int64(l))
	}
	sealed := make([][]byte, 0, len(w.Secrets))
	expires := make([]*int64, 0, len(w.Secrets))
	for _, sec := range w.Secrets {
		sealed = append(sealed, nonNil(sec.Sealed))
		expires = append(expires, boundNanos(sec.ExpiresAt))
	}
	return []any{w.ID, w.Name, w.Tenant, w.URL, nonNilStrings(w.Events), leads, sealed, expires, nanos(w.CreatedAt), boundNanos(w.DisabledAt)}
}

func scanWebhook(row pgx.CollectableRow) (neostore.WebhookSubscription, error) {
	var (
		w        neostore.WebhookSubscription
		leads    []int64
		sealed   [][]byte
		expires  []*int64
		created  int64
		disabled *int64
	)
	if err := row.Scan(&w.ID, &w.Name, &w.Tenant, &w.URL, &w.Events, &leads, &sealed, &expires, &created, &disabled); err != nil {
		return w, err
	}
	if len(sealed) != len(expires) {
		return w, fmt.Errorf("corrupt webhook row %q: %d secrets, %d expiry times", w.ID, len(sealed), len(expires))
	}
	if len(w.Events) == 0 {
		w.Events = nil
	}
	for _, l := range leads {
		w.Leads = append(w.Leads, time.Duration(l))
	}
	for i := range sealed {
		w.Secrets = append(w.Secrets, neostore.WebhookSecret{Sealed: sealed[i], ExpiresAt: boundFromNanos(expires[i])})
	}
	w.CreatedAt, w.DisabledAt = fromNanosOrZero(created), boundFromNanos(disabled)
	return w, nil
}

// CreateWebhook stores a new subscription, or returns EINVALID when the id
// is taken or empty.
func (s *Store) CreateWebhook(ctx context.Context, w neostore.WebhookSubscription) error {
	if w.ID == "" {
		return neostore.ErrWebhookIDTaken
	}
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return fmt.Errorf("postgres: create webhook: %w", err)
	}
	defer cancel()
	_, err = s.pool.Exec(ctx, "INSERT INTO webhook_subscriptions ("+webhookColumns+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)", webhookArgs(w)...)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" { // unique_violation: the primary key is the only one
		return neostore.ErrWebhookIDTaken
	} else if err != nil {
		return s.fail(ctx, "create webhook", err)
	}
	return nil
}

// ListWebhooks returns every subscription by creation time, then id.
func (s *Store) ListWebhooks(ctx context.Context) ([]neostore.WebhookSubscription, error) {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: list webhooks: %w", err)
	}
	defer cancel()
	rows, _ := s.pool.Query(ctx, "SELECT "+webhookColumns+" FROM webhook_subscriptions ORDER BY created_at_ns, id")
	ws, err := pgx.CollectRows(rows, scanWebhook)
	if err != nil {
		return nil, s.fail(ctx, "list webhooks", err)
	}
	if ws == nil {
		ws = []neostore.WebhookSubscription{}
	}
	return ws, nil
}

// GetWebhook returns a subscription, or ENOTFOUND.
func (s *Store) GetWebhook(ctx context.Context, id string) (neostore.WebhookSubscription, error) {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return neostore.WebhookSubscription{}, fmt.Errorf("postgres: get webhook: %w", err)
	}
	defer cancel()
	rows, _ := s.pool.Query(ctx, "SELECT "+webhookColumns+" FROM webhook_subscriptions WHERE id = $1", id)
	w, err := pgx.CollectExactlyOneRow(rows, scanWebhook)
	if errors.Is(err, pgx.ErrNoRows) {
		return neostore.WebhookSubscription{}, neostore.ErrWebhookNotFound
	} else if err != nil {
		return neostore.WebhookSubscription{}, s.fail(ctx, "get webhook", err)
	}
	return w, nil
}

// UpdateWebhook replaces a subscription, or returns ENOTFOUND.
func (s *Store) UpdateWebhook(ctx context.Context, w neostore.WebhookSubscription) error {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return fmt.Errorf("postgres: update webhook: %w", err)
	}
	defer cancel()
	tag, err := s.pool.Exec(ctx, `UPDATE webhook_subscriptions SET name = $2, tenant = $3, url = $4, events = $5, leads_ns = $6,
		secrets_sealed = $7, secrets_expires_at_ns = $8, created_at_ns = $9, disabled_at_ns = $10 WHERE id = $1`, webhookArgs(w)...)
	if err != nil {
		return s.fail(ctx, "update webhook", err)
	}
	if tag.RowsAffected() == 0 {
		return neostore.ErrWebhookNotFound
	}
	return nil
}

// DeleteWebhook removes a subscription and its deliveries in one
// statement, or returns ENOTFOUND.
func (s *Store) DeleteWebhook(ctx context.Context, id string) error {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return fmt.Errorf("postgres: delete webhook: %w", err)
	}
	defer cancel()
	var n int
	err = s.pool.QueryRow(ctx, `WITH w AS (DELETE FROM webhook_subscriptions WHERE id = $1 RETURNING id),
		d AS (DELETE FROM webhook_deliveries WHERE subscription_id = $1 AND EXISTS (SELECT 1 FROM w))
		SELECT count(*) FROM w`, id).Scan(&n)
	if err != nil {
		return s.fail(ctx, "delete webhook", err)
	}
	if n == 0 {
		return neostore.ErrWebhookNotFound
	}
	return nil
}

// --- the outbox and the due index ---

// OutboxEvents returns at most limit outbox events, oldest first.
func (s *Store) OutboxEvents(ctx context.Context, limit int) ([]neostore.OutboxEvent, error) {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: outbox events: %w", err)
	}
	defer cancel()
	rows, _ := s.pool.Query(ctx, `SELECT seq, id, type, at_ns, tenant, key, trace_id, created,
		not_before_s, not_before_ns, expires_on_s, expires_on_ns FROM webhook_outbox ORDER BY seq LIMIT $1`, max(limit, 0))
	evs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (neostore.OutboxEvent, error) {
		var (
			e      neostore.OutboxEvent
			seq    int64
			at     int64
			nb, eo bound
		)
		if err := row.Scan(&seq, &e.Event.ID, &e.Event.Type, &at, &e.Event.Tenant, &e.Event.Key, &e.Event.TraceID, &e.Event.Created,
			&nb.s, &nb.ns, &eo.s, &eo.ns); err != nil {
			return e, err
		}
		notBefore, err1 := nb.decode()
		expiresOn, err2 := eo.decode()
		if err := errors.Join(err1, err2); err != nil {
			return e, fmt.Errorf("outbox event %d: %w", seq, err)
		}
		e.Seq, e.Event.Timestamp = uint64(seq), fromNanosOrZero(at)
		e.Event.Validity = neostore.Validity{NotBefore: notBefore, ExpiresOn: expiresOn}
		return e, nil
	})
	if err != nil {
		return nil, s.fail(ctx, "outbox events", err)
	}
	if evs == nil {
		evs = []neostore.OutboxEvent{}
	}
	return evs, nil
}

// FanOut stores ds (skipping stored ids) and removes the outbox events
// seqs, in one transaction and one round trip.
func (s *Store) FanOut(ctx context.Context, seqs []uint64, ds []neostore.Delivery) error {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return fmt.Errorf("postgres: fan out: %w", err)
	}
	defer cancel()
	args, err := deliveryArrays(ds)
	if err != nil {
		return fmt.Errorf("postgres: fan out: %w", err)
	}
	ss := make([]int64, 0, len(seqs))
	for _, seq := range seqs {
		ss = append(ss, int64(seq))
	}
	_, err = s.pool.Exec(ctx, `WITH ins AS (`+insertDeliveries+`)
		DELETE FROM webhook_outbox WHERE seq = ANY($12::bigint[])`, append(args, ss)...)
	if err != nil {
		return s.fail(ctx, "fan out", err)
	}
	return nil
}

// insertDeliveries inserts the deliveries in the arrays $1-$11
// (deliveryArrays) whose id is not stored yet.
const insertDeliveries = `INSERT INTO webhook_deliveries (id, subscription_id, event, state, attempts, created_at_ns, next_attempt_at_ns,
		last_attempt_at_ns, last_status, last_error, finished_at_ns)
	SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::text[], $5::integer[], $6::bigint[], $7::bigint[],
		$8::bigint[], $9::integer[], $10::text[], $11::bigint[])
	ON CONFLICT (id) DO NOTHING`

// deliveryArrays are the arrays insertDeliveries reads, one element per
// delivery, so that any number of them is one statement.
func deliveryArrays(ds []neostore.Delivery) ([]any, error) {
	var (
		ids, subs, states, lastErrors []string
		events                        [][]byte
		attempts, statuses            []int32
		created, next                 []int64
		lastAttempt, finished         []*int64
	)
	for _, d := range ds {
		ev, err := json.Marshal(eventToRow(d.Event))
		if err != nil {
			return nil, err
		}
		ids, subs, states, events = append(ids, d.ID), append(subs, d.SubscriptionID), append(states, string(d.State)), append(events, ev)
		attempts, created, next = append(attempts, int32(d.Attempts)), append(created, nanos(d.CreatedAt)), append(next, nanos(d.NextAttemptAt))
		lastAttempt, statuses, lastErrors = append(lastAttempt, boundNanos(d.LastAttemptAt)), append(statuses, int32(d.LastStatus)), append(lastErrors, d.LastError)
		finished = append(finished, boundNanos(d.FinishedAt))
	}
	return []any{ids, subs, events, states, attempts, created, next, lastAttempt, statuses, lastErrors, finished}, nil
}

// dueQueries scan the due index, the partial indexes secrets_due_expires
// and secrets_due_activates (0004): each repeats its index's predicate so
// that the planner uses it. $1-$4 are (after, upTo] as seconds and
// nanoseconds, $5 the limit.
var dueQueries = map[neostore.DueKind]string{
	neostore.DueExpires: `SELECT tenant, key, expires_on_s, expires_on_ns, ` + timesColumns + ` FROM secrets
		WHERE expires_on_s IS NOT NULL
		  AND (expires_on_s, expires_on_ns) > ($1, $2) AND (expires_on_s, expires_on_ns) <= ($3, $4)
		ORDER BY expires_on_s, expires_on_ns, tenant, key LIMIT $5`,
	neostore.DueActivates: `SELECT tenant, key, not_before_s, not_before_ns, ` + timesColumns + ` FROM secrets
		WHERE not_before_s IS NOT NULL
		  AND (updated_on_s IS NULL OR (not_before_s, not_before_ns) > (updated_on_s, updated_on_ns))
		  AND (not_before_s, not_before_ns) > ($1, $2) AND (not_before_s, not_before_ns) <= ($3, $4)
		ORDER BY not_before_s, not_before_ns, tenant, key LIMIT $5`,
}

// DueEntries returns at most limit due entries of kind with At in
// (after, upTo], by At, tenant, key: a range scan of the kind's index.
func (s *Store) DueEntries(ctx context.Context, kind neostore.DueKind, after, upTo time.Time, limit int) ([]neostore.DueEntry, error) {
	query, ok := dueQueries[kind]
	if !ok {
		return []neostore.DueEntry{}, nil
	}
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: due entries: %w", err)
	}
	defer cancel()
	a, u := encodeBound(neostore.At(after)), encodeBound(neostore.At(upTo))
	rows, _ := s.pool.Query(ctx, query, *a.s, *a.ns, *u.s, *u.ns, max(limit, 0))
	es, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (neostore.DueEntry, error) {
		e := neostore.DueEntry{Kind: kind}
		var (
			at  bound
			sec timesRow
		)
		if err := row.Scan(append([]any{&e.Tenant, &e.Key, &at.s, &at.ns}, sec.dest()...)...); err != nil {
			return e, err
		}
		atB, err1 := at.decode()
		stored, err2 := sec.decode()
		if err := errors.Join(err1, err2); err != nil {
			return e, fmt.Errorf("due entry %q of tenant %q: %w", e.Key, e.Tenant, err)
		}
		e.At, e.Validity, e.CreatedOn = atB.At, stored.Validity, stored.Times.CreatedOn
		return e, nil
	})
	if err != nil {
		return nil, s.fail(ctx, "due entries", err)
	}
	if es == nil {
		es = []neostore.DueEntry{}
	}
	return es, nil
}

// DueCursor returns how far the due scan has come; unset before the first
// scan.
func (s *Store) DueCursor(ctx context.Context) (neostore.Bound, error) {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return neostore.Bound{}, fmt.Errorf("postgres: due cursor: %w", err)
	}
	defer cancel()
	var b bound
	if err := s.pool.QueryRow(ctx, "SELECT at_s, at_ns FROM webhook_due_cursor").Scan(&b.s, &b.ns); err != nil {
		return neostore.Bound{}, s.fail(ctx, "due cursor", err)
	}
	c, err := b.decode()
	if err != nil {
		return neostore.Bound{}, fmt.Errorf("postgres: due cursor: %w", err)
	}
	return c, nil
}

// AdvanceDueCursor stores ds and moves the cursor from old to upTo in one
// transaction. The cursor row is locked NOWAIT: a row another node holds,
// or a cursor that is no longer old, is ECONFLICT, and nothing is stored.
func (s *Store) AdvanceDueCursor(ctx context.Context, old neostore.Bound, upTo time.Time, ds []neostore.Delivery) error {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return fmt.Errorf("postgres: advance due cursor: %w", err)
	}
	defer cancel()
	args, err := deliveryArrays(ds)
	if err != nil {
		return fmt.Errorf("postgres: advance due cursor: %w", err)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var b bound
		if err := tx.QueryRow(ctx, "SELECT at_s, at_ns FROM webhook_due_cursor FOR UPDATE NOWAIT").Scan(&b.s, &b.ns); err != nil {
			return err
		}
		cur, err := b.decode()
		if err != nil {
			return err
		}
		if cur.Set != old.Set || (cur.Set && !cur.At.Equal(old.At)) {
			return neostore.ErrDueCursorMoved
		}
		u := encodeBound(neostore.At(upTo))
		_, err = tx.Exec(ctx, `WITH ins AS (`+insertDeliveries+`)
			UPDATE webhook_due_cursor SET at_s = $12, at_ns = $13`, append(args, *u.s, *u.ns)...)
		return err
	})
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, neostore.ErrDueCursorMoved):
		return err
	case errors.As(err, &pgErr) && pgErr.Code == "55P03": // lock_not_available: another node is scanning
		return neostore.ErrDueCursorMoved
	case err != nil:
		return s.fail(ctx, "advance due cursor", err)
	}
	return nil
}

// --- deliveries ---

// eventRow is the stored form of a delivery's event (JSONB), apart from
// the domain type so that renaming a field cannot change what is stored.
type eventRow struct {
	ID        string     `json:"id"`
	Type      string     `json:"type"`
	Timestamp time.Time  `json:"timestamp"`
	Tenant    string     `json:"tenant"`
	Key       string     `json:"key"`
	NotBefore *time.Time `json:"notBefore,omitempty"`
	ExpiresOn *time.Time `json:"expiresOn,omitempty"`
	DueAt     *time.Time `json:"dueAt,omitempty"`
	TraceID   string     `json:"traceId,omitempty"`
	Created   bool       `json:"created,omitempty"`
}

func eventToRow(e neostore.Event) eventRow {
	return eventRow{ID: e.ID, Type: e.Type, Timestamp: e.Timestamp.UTC(), Tenant: e.Tenant, Key: e.Key,
		NotBefore: e.Validity.NotBefore.Ptr(), ExpiresOn: e.Validity.ExpiresOn.Ptr(), DueAt: e.DueAt.Ptr(),
		TraceID: e.TraceID, Created: e.Created}
}

func (r eventRow) event() neostore.Event {
	return neostore.Event{ID: r.ID, Type: r.Type, Timestamp: r.Timestamp.UTC(), Tenant: r.Tenant, Key: r.Key,
		Validity: neostore.Validity{NotBefore: neostore.BoundOf(r.NotBefore), ExpiresOn: neostore.BoundOf(r.ExpiresOn)},
		DueAt:    neostore.BoundOf(r.DueAt), TraceID: r.TraceID, Created: r.Created}
}

const deliveryColumns = `id, subscription_id, event, state, attempts, created_at_ns, next_attempt_at_ns,
	last_attempt_at_ns, last_status, last_error, finished_at_ns`

func scanDelivery(row pgx.CollectableRow) (neostore.Delivery, error) {
	var (
		d                     neostore.Delivery
		ev                    []byte
		state                 string
		attempts, status      int32
		created, next         int64
		lastAttempt, finished *int64
	)
	if err := row.Scan(&d.ID, &d.SubscriptionID, &ev, &state, &attempts, &created, &next, &lastAttempt, &status, &d.LastError, &finished); err != nil {
		return d, err
	}
	var e eventRow
	if err := json.Unmarshal(ev, &e); err != nil {
		return d, fmt.Errorf("delivery %q: event: %w", d.ID, err)
	}
	d.Event, d.State, d.Attempts, d.LastStatus = e.event(), neostore.DeliveryState(state), int(attempts), int(status)
	d.CreatedAt, d.NextAttemptAt = fromNanosOrZero(created), fromNanosOrZero(next)
	d.LastAttemptAt, d.FinishedAt = boundFromNanos(lastAttempt), boundFromNanos(finished)
	return d, nil
}

// LeaseDeliveries takes at most limit pending deliveries due at now that no
// live lease holds, for owner until now+lease, oldest due first, in one
// statement: rows another node is leasing at this moment are skipped
// (FOR UPDATE SKIP LOCKED), and a row it has leased fails the lease
// condition once PostgreSQL rechecks it, so two nodes never take the same.
func (s *Store) LeaseDeliveries(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]neostore.Delivery, error) {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: lease deliveries: %w", err)
	}
	defer cancel()
	rows, _ := s.pool.Query(ctx, `UPDATE webhook_deliveries SET lease_owner = $1, lease_until_ns = $3
		WHERE id IN (
			SELECT id FROM webhook_deliveries
			WHERE state = 'pending' AND next_attempt_at_ns <= $2 AND (lease_until_ns IS NULL OR lease_until_ns <= $2)
			ORDER BY next_attempt_at_ns, id LIMIT $4
			FOR UPDATE SKIP LOCKED)
		RETURNING `+deliveryColumns, owner, nanos(now), nanos(now.Add(lease)), max(limit, 0))
	ds, err := pgx.CollectRows(rows, scanDelivery)
	if err != nil {
		return nil, s.fail(ctx, "lease deliveries", err)
	}
	// RETURNING follows no order.
	slices.SortFunc(ds, func(a, b neostore.Delivery) int {
		if c := a.NextAttemptAt.Compare(b.NextAttemptAt); c != 0 {
			return c
		}
		return compareStrings(a.ID, b.ID)
	})
	if ds == nil {
		ds = []neostore.Delivery{}
	}
	return ds, nil
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// CompleteAttempt stores the outcome d of an attempt on a delivery owner
// leased and releases the lease, or returns ECONFLICT when owner no longer
// holds it. Id, subscription, event and creation time stay as stored.
func (s *Store) CompleteAttempt(ctx context.Context, owner string, d neostore.Delivery) error {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return fmt.Errorf("postgres: complete attempt: %w", err)
	}
	defer cancel()
	tag, err := s.pool.Exec(ctx, `UPDATE webhook_deliveries SET state = $3, attempts = $4, next_attempt_at_ns = $5,
		last_attempt_at_ns = $6, last_status = $7, last_error = $8, finished_at_ns = $9, lease_owner = NULL, lease_until_ns = NULL
		WHERE id = $1 AND lease_owner = $2`,
		d.ID, owner, string(d.State), int32(d.Attempts), nanos(d.NextAttemptAt), boundNanos(d.LastAttemptAt), int32(d.LastStatus), d.LastError, boundNanos(d.FinishedAt))
	if err != nil {
		return s.fail(ctx, "complete attempt", err)
	}
	if tag.RowsAffected() == 0 {
		return neostore.ErrLeaseLost
	}
	return nil
}

// GetDelivery returns a delivery, or ENOTFOUND.
func (s *Store) GetDelivery(ctx context.Context, id string) (neostore.Delivery, error) {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return neostore.Delivery{}, fmt.Errorf("postgres: get delivery: %w", err)
	}
	defer cancel()
	rows, _ := s.pool.Query(ctx, "SELECT "+deliveryColumns+" FROM webhook_deliveries WHERE id = $1", id)
	d, err := pgx.CollectExactlyOneRow(rows, scanDelivery)
	if errors.Is(err, pgx.ErrNoRows) {
		return neostore.Delivery{}, neostore.ErrDeliveryNotFound
	} else if err != nil {
		return neostore.Delivery{}, s.fail(ctx, "get delivery", err)
	}
	return d, nil
}

// ListDeliveries returns at most limit of a subscription's deliveries,
// newest first; only failed ones when failedOnly.
func (s *Store) ListDeliveries(ctx context.Context, subscriptionID string, failedOnly bool, limit int) ([]neostore.Delivery, error) {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: list deliveries: %w", err)
	}
	defer cancel()
	rows, _ := s.pool.Query(ctx, "SELECT "+deliveryColumns+` FROM webhook_deliveries
		WHERE subscription_id = $1 AND (NOT $2 OR state = 'failed')
		ORDER BY created_at_ns DESC, id DESC LIMIT $3`, subscriptionID, failedOnly, max(limit, 0))
	ds, err := pgx.CollectRows(rows, scanDelivery)
	if err != nil {
		return nil, s.fail(ctx, "list deliveries", err)
	}
	if ds == nil {
		ds = []neostore.Delivery{}
	}
	return ds, nil
}

// Redeliver makes a delivery pending again, next attempt at at, attempts
// reset, its retry window restarted at at, and lease released, or returns
// ENOTFOUND.
func (s *Store) Redeliver(ctx context.Context, id string, at time.Time) error {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return fmt.Errorf("postgres: redeliver: %w", err)
	}
	defer cancel()
	tag, err := s.pool.Exec(ctx, `UPDATE webhook_deliveries SET state = 'pending', attempts = 0, next_attempt_at_ns = $2,
		created_at_ns = $2, finished_at_ns = NULL, lease_owner = NULL, lease_until_ns = NULL WHERE id = $1`, id, nanos(at))
	if err != nil {
		return s.fail(ctx, "redeliver", err)
	}
	if tag.RowsAffected() == 0 {
		return neostore.ErrDeliveryNotFound
	}
	return nil
}

// PendingDeliveries returns how many deliveries are pending and the
// creation time of the oldest.
func (s *Store) PendingDeliveries(ctx context.Context) (int, neostore.Bound, error) {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return 0, neostore.Bound{}, fmt.Errorf("postgres: pending deliveries: %w", err)
	}
	defer cancel()
	var (
		n      int64
		oldest *int64
	)
	if err := s.pool.QueryRow(ctx, "SELECT count(*), min(created_at_ns) FROM webhook_deliveries WHERE state = 'pending'").Scan(&n, &oldest); err != nil {
		return 0, neostore.Bound{}, s.fail(ctx, "pending deliveries", err)
	}
	return int(n), boundFromNanos(oldest), nil
}

// PurgeDeliveries removes delivered and failed deliveries finished before
// before, and returns how many it removed.
func (s *Store) PurgeDeliveries(ctx context.Context, before time.Time) (int, error) {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return 0, fmt.Errorf("postgres: purge deliveries: %w", err)
	}
	defer cancel()
	tag, err := s.pool.Exec(ctx, `DELETE FROM webhook_deliveries
		WHERE state <> 'pending' AND COALESCE(finished_at_ns, created_at_ns) < $1`, nanos(before))
	if err != nil {
		return 0, s.fail(ctx, "purge deliveries", err)
	}
	return int(tag.RowsAffected()), nil
}
