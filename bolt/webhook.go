package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/neostore/neostore-secrets"
)

// Webhook notifications (neostore.WebhookStore). Layout:
//
//	webhooks/<id>                      subscription, JSON
//	webhookcover/<tenant>\0<id>        one line per enabled subscription, so a put asks "is the tenant covered?" with one seek
//	outbox/<seq>                       change event, JSON; seq is 8 bytes big-endian (the bucket's sequence)
//	due/<kind><at><tenant>\0<key>      the due index; the value is a secret header (window and CreatedOn, no ciphertext)
//	meta/duecursor                     how far the due scan has come, 12 bytes (see appendSortable)
//	deliveries/<id>                    delivery, JSON, with its lease
//	dlvdue/<next attempt><id>          pending deliveries by next attempt; the value is the creation time
//	dlvsub/<subscription>\0<created><id>  a subscription's deliveries by creation time
//	dlvdone/<finished><id>             delivered and failed deliveries by finishing time, for the purge
//
// Every time in a key is appendSortable's 12 bytes, so that bbolt's byte
// order is time order. Tenant ids and key names never contain a 0 byte.
var (
	bucketWebhooks     = []byte("webhooks")
	bucketWebhookCover = []byte("webhookcover")
	bucketOutbox       = []byte("outbox")
	bucketDue          = []byte("due")
	bucketDeliveries   = []byte("deliveries")
	bucketDlvDue       = []byte("dlvdue")
	bucketDlvSub       = []byte("dlvsub")
	bucketDlvDone      = []byte("dlvdone")

	metaDueCursor = []byte("duecursor")
)

// webhookBuckets are created by init; bucketDue is not among them because
// its creation also indexes the secrets already stored (indexExisting).
var webhookBuckets = [][]byte{bucketWebhooks, bucketWebhookCover, bucketOutbox, bucketDeliveries, bucketDlvDue, bucketDlvSub, bucketDlvDone}

// appendSortable appends t as 8 bytes of Unix seconds with the sign bit
// flipped (so that negative seconds sort first) and 4 of nanoseconds, all
// big-endian: byte order is time order for every year.
func appendSortable(buf []byte, t time.Time) []byte {
	buf = binary.BigEndian.AppendUint64(buf, uint64(t.Unix())^(1<<63))
	return binary.BigEndian.AppendUint32(buf, uint32(t.Nanosecond()))
}

func decodeSortable(b []byte) (time.Time, error) {
	if len(b) < boundSize {
		return time.Time{}, fmt.Errorf("corrupt time: %d bytes", len(b))
	}
	sec := int64(binary.BigEndian.Uint64(b) ^ (1 << 63))
	ns := binary.BigEndian.Uint32(b[8:])
	if ns > 999_999_999 {
		return time.Time{}, fmt.Errorf("corrupt time: %d nanoseconds", ns)
	}
	return time.Unix(sec, int64(ns)).UTC(), nil
}

// --- records ---

type webhookRecord struct {
	ID         string                `json:"id"`
	Name       string                `json:"name"`
	Tenant     string                `json:"tenant"`
	URL        string                `json:"url"`
	Events     []string              `json:"events,omitempty"`
	Leads      []time.Duration       `json:"leads,omitempty"` // nanoseconds
	Secrets    []webhookSecretRecord `json:"secrets,omitempty"`
	CreatedAt  time.Time             `json:"createdAt"`
	DisabledAt *time.Time            `json:"disabledAt,omitempty"`
}

type webhookSecretRecord struct {
	Sealed    []byte     `json:"sealed"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
}

func webhookToRecord(w neostore.WebhookSubscription) webhookRecord {
	r := webhookRecord{ID: w.ID, Name: w.Name, Tenant: w.Tenant, URL: w.URL, Events: w.Events, Leads: w.Leads,
		CreatedAt: w.CreatedAt.UTC(), DisabledAt: w.DisabledAt.Ptr()}
	for _, sec := range w.Secrets {
		r.Secrets = append(r.Secrets, webhookSecretRecord{Sealed: sec.Sealed, ExpiresAt: sec.ExpiresAt.Ptr()})
	}
	return r
}

func (r webhookRecord) webhook() neostore.WebhookSubscription {
	w := neostore.WebhookSubscription{ID: r.ID, Name: r.Name, Tenant: r.Tenant, URL: r.URL, Events: r.Events, Leads: r.Leads,
		CreatedAt: r.CreatedAt.UTC(), DisabledAt: neostore.BoundOf(r.DisabledAt)}
	for _, sec := range r.Secrets {
		w.Secrets = append(w.Secrets, neostore.WebhookSecret{Sealed: sec.Sealed, ExpiresAt: neostore.BoundOf(sec.ExpiresAt)})
	}
	return w
}

type eventRecord struct {
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

func eventToRecord(e neostore.Event) eventRecord {
	return eventRecord{ID: e.ID, Type: e.Type, Timestamp: e.Timestamp.UTC(), Tenant: e.Tenant, Key: e.Key,
		NotBefore: e.Validity.NotBefore.Ptr(), ExpiresOn: e.Validity.ExpiresOn.Ptr(), DueAt: e.DueAt.Ptr(),
		TraceID: e.TraceID, Created: e.Created}
}

func (r eventRecord) event() neostore.Event {
	return neostore.Event{ID: r.ID, Type: r.Type, Timestamp: r.Timestamp.UTC(), Tenant: r.Tenant, Key: r.Key,
		Validity: neostore.Validity{NotBefore: neostore.BoundOf(r.NotBefore), ExpiresOn: neostore.BoundOf(r.ExpiresOn)},
		DueAt:    neostore.BoundOf(r.DueAt), TraceID: r.TraceID, Created: r.Created}
}

type deliveryRecord struct {
	ID             string      `json:"id"`
	SubscriptionID string      `json:"subscriptionId"`
	Event          eventRecord `json:"event"`
	State          string      `json:"state"`
	Attempts       int         `json:"attempts"`
	CreatedAt      time.Time   `json:"createdAt"`
	NextAttemptAt  time.Time   `json:"nextAttemptAt"`
	LastAttemptAt  *time.Time  `json:"lastAttemptAt,omitempty"`
	LastStatus     int         `json:"lastStatus,omitempty"`
	LastError      string      `json:"lastError,omitempty"`
	FinishedAt     *time.Time  `json:"finishedAt,omitempty"`
	LeaseOwner     string      `json:"leaseOwner,omitempty"`
	LeaseUntil     *time.Time  `json:"leaseUntil,omitempty"`
}

func deliveryToRecord(d neostore.Delivery) deliveryRecord {
	return deliveryRecord{ID: d.ID, SubscriptionID: d.SubscriptionID, Event: eventToRecord(d.Event), State: string(d.State),
		Attempts: d.Attempts, CreatedAt: d.CreatedAt.UTC(), NextAttemptAt: d.NextAttemptAt.UTC(),
		LastAttemptAt: d.LastAttemptAt.Ptr(), LastStatus: d.LastStatus, LastError: d.LastError, FinishedAt: d.FinishedAt.Ptr()}
}

func (r deliveryRecord) delivery() neostore.Delivery {
	return neostore.Delivery{ID: r.ID, SubscriptionID: r.SubscriptionID, Event: r.Event.event(), State: neostore.DeliveryState(r.State),
		Attempts: r.Attempts, CreatedAt: r.CreatedAt.UTC(), NextAttemptAt: r.NextAttemptAt.UTC(),
		LastAttemptAt: neostore.BoundOf(r.LastAttemptAt), LastStatus: r.LastStatus, LastError: r.LastError, FinishedAt: neostore.BoundOf(r.FinishedAt)}
}

// --- subscriptions ---

// CreateWebhook stores a new subscription, or returns EINVALID when the id
// is taken or empty.
func (s *Store) CreateWebhook(ctx context.Context, w neostore.WebhookSubscription) error {
	return s.update(ctx, "create webhook", func(tx *bbolt.Tx) error {
		if w.ID == "" || tx.Bucket(bucketWebhooks).Get([]byte(w.ID)) != nil {
			return neostore.ErrWebhookIDTaken
		}
		return putWebhook(tx, nil, w)
	})
}

// ListWebhooks returns every subscription by creation time, then id.
func (s *Store) ListWebhooks(ctx context.Context) ([]neostore.WebhookSubscription, error) {
	tx, err := s.begin(ctx, false)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	ws := []neostore.WebhookSubscription{}
	err = tx.Bucket(bucketWebhooks).ForEach(func(k, v []byte) error {
		var r webhookRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("bolt: webhook %q: %w", k, err)
		}
		ws = append(ws, r.webhook())
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(ws, func(a, b neostore.WebhookSubscription) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return ws, nil
}

// GetWebhook returns a subscription, or ENOTFOUND.
func (s *Store) GetWebhook(ctx context.Context, id string) (neostore.WebhookSubscription, error) {
	tx, err := s.begin(ctx, false)
	if err != nil {
		return neostore.WebhookSubscription{}, err
	}
	defer func() { _ = tx.Rollback() }()
	r, err := getWebhook(tx, id)
	if err != nil {
		return neostore.WebhookSubscription{}, err
	}
	return r.webhook(), nil
}

// UpdateWebhook replaces a subscription, or returns ENOTFOUND.
func (s *Store) UpdateWebhook(ctx context.Context, w neostore.WebhookSubscription) error {
	return s.update(ctx, "update webhook", func(tx *bbolt.Tx) error {
		old, err := getWebhook(tx, w.ID)
		if err != nil {
			return err
		}
		return putWebhook(tx, &old, w)
	})
}

// DeleteWebhook removes a subscription and its deliveries, or returns
// ENOTFOUND.
func (s *Store) DeleteWebhook(ctx context.Context, id string) error {
	return s.update(ctx, "delete webhook", func(tx *bbolt.Tx) error {
		old, err := getWebhook(tx, id)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bucketWebhookCover).Delete(coverKey(old.Tenant, old.ID)); err != nil {
			return err
		}
		if err := tx.Bucket(bucketWebhooks).Delete([]byte(id)); err != nil {
			return err
		}
		prefix := append([]byte(id), 0)
		var ids []string
		c := tx.Bucket(bucketDlvSub).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			ids = append(ids, string(k[len(prefix)+boundSize:]))
		}
		for _, dID := range ids {
			r, err := getDelivery(tx, dID)
			if err != nil {
				return err
			}
			if err := deleteDelivery(tx, r); err != nil {
				return err
			}
		}
		return nil
	})
}

func coverKey(tenant, id string) []byte {
	return append(append([]byte(tenant), 0), id...)
}

func getWebhook(tx *bbolt.Tx, id string) (webhookRecord, error) {
	v := tx.Bucket(bucketWebhooks).Get([]byte(id))
	if v == nil {
		return webhookRecord{}, neostore.ErrWebhookNotFound
	}
	var r webhookRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return webhookRecord{}, fmt.Errorf("bolt: webhook %q: %w", id, err)
	}
	return r, nil
}

// putWebhook stores w over old (nil for a new one), keeping the cover
// index to the enabled subscriptions.
func putWebhook(tx *bbolt.Tx, old *webhookRecord, w neostore.WebhookSubscription) error {
	cover := tx.Bucket(bucketWebhookCover)
	if old != nil {
		if err := cover.Delete(coverKey(old.Tenant, old.ID)); err != nil {
			return err
		}
	}
	if !w.DisabledAt.Set {
		if err := cover.Put(coverKey(w.Tenant, w.ID), nil); err != nil {
			return err
		}
	}
	data, err := json.Marshal(webhookToRecord(w))
	if err != nil {
		return err
	}
	return tx.Bucket(bucketWebhooks).Put([]byte(w.ID), data)
}

// covered reports whether an enabled subscription covers tenant, by
// tenant or by "*": two seeks, so that a put costs nothing measurable
// without subscriptions.
func covered(tx *bbolt.Tx, tenant string) bool {
	c := tx.Bucket(bucketWebhookCover).Cursor()
	for _, t := range []string{tenant, "*"} {
		prefix := append([]byte(t), 0)
		if k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}

// --- the outbox and the due index, written by PutSecret and DeleteSecret ---

// recordEvent appends the change's event to the outbox when an enabled
// subscription covers the tenant.
func recordEvent(tx *bbolt.Tx, n *neostore.ChangeNotice, typ, tenant, key string, v neostore.Validity, created bool) error {
	if n == nil || !covered(tx, tenant) {
		return nil
	}
	b := tx.Bucket(bucketOutbox)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	data, err := json.Marshal(eventToRecord(neostore.Event{ID: n.EventID, Type: typ, Timestamp: n.At, Tenant: tenant, Key: key,
		Validity: v, TraceID: n.TraceID, Created: created}))
	if err != nil {
		return err
	}
	b.FillPercent = 1 // keys only grow
	return b.Put(binary.BigEndian.AppendUint64(nil, seq), data)
}

// dueTimes returns the due index entries of a stored secret: its
// ExpiresOn, and its NotBefore when that lay after the put (or the put's
// time is unknown). The index is a function of the stored record, so that
// every write keeps it by removing the old record's entries and adding the
// new one's.
func dueTimes(sec neostore.SealedSecret) []dueTime {
	var ts []dueTime
	if sec.Validity.ExpiresOn.Set {
		ts = append(ts, dueTime{neostore.DueExpires, sec.Validity.ExpiresOn.At})
	}
	if nb := sec.Validity.NotBefore; nb.Set && (!sec.Times.UpdatedOn.Set || nb.At.After(sec.Times.UpdatedOn.At)) {
		ts = append(ts, dueTime{neostore.DueActivates, nb.At})
	}
	return ts
}

type dueTime struct {
	kind neostore.DueKind
	at   time.Time
}

func dueKey(kind neostore.DueKind, at time.Time, tenant, key string) []byte {
	k := make([]byte, 0, 1+boundSize+len(tenant)+1+len(key))
	k = appendSortable(append(k, byte(kind)), at)
	return append(append(append(k, tenant...), 0), key...)
}

// reindex moves tenant/key's due entries from those of old (nil: none) to
// those of sec (nil: none).
func reindex(tx *bbolt.Tx, tenant, key string, old, sec *neostore.SealedSecret) error {
	b := tx.Bucket(bucketDue)
	if old != nil {
		for _, d := range dueTimes(*old) {
			if err := b.Delete(dueKey(d.kind, d.at, tenant, key)); err != nil {
				return err
			}
		}
	}
	if sec != nil {
		for _, d := range dueTimes(*sec) {
			val := encodeSecret(neostore.SealedSecret{Validity: sec.Validity, Times: neostore.SecretTimes{CreatedOn: sec.Times.CreatedOn}})
			if err := b.Put(dueKey(d.kind, d.at, tenant, key), val); err != nil {
				return err
			}
		}
	}
	return nil
}

// indexExisting creates the due bucket and indexes every stored secret:
// the upgrade of a file written before the index existed.
func indexExisting(tx *bbolt.Tx) error {
	if tx.Bucket(bucketDue) != nil {
		return nil
	}
	if _, err := tx.CreateBucket(bucketDue); err != nil {
		return err
	}
	return tx.Bucket(bucketSecrets).ForEachBucket(func(tenant []byte) error {
		return tx.Bucket(bucketSecrets).Bucket(tenant).ForEach(func(key, v []byte) error {
			if v == nil {
				return nil
			}
			sec, _, err := decodeHeader(v)
			if err != nil {
				return nil // a damaged record gets no entry; reading it reports the damage
			}
			return reindex(tx, string(tenant), string(key), nil, &sec)
		})
	})
}

// OutboxEvents returns at most limit outbox events, oldest first.
func (s *Store) OutboxEvents(ctx context.Context, limit int) ([]neostore.OutboxEvent, error) {
	tx, err := s.begin(ctx, false)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	evs := []neostore.OutboxEvent{}
	c := tx.Bucket(bucketOutbox).Cursor()
	for k, v := c.First(); k != nil && len(evs) < limit; k, v = c.Next() {
		var r eventRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return nil, fmt.Errorf("bolt: outbox event %x: %w", k, err)
		}
		evs = append(evs, neostore.OutboxEvent{Seq: binary.BigEndian.Uint64(k), Event: r.event()})
	}
	return evs, nil
}

// FanOut stores ds (skipping stored ids) and removes the outbox events
// seqs, in one transaction.
func (s *Store) FanOut(ctx context.Context, seqs []uint64, ds []neostore.Delivery) error {
	return s.update(ctx, "fan out", func(tx *bbolt.Tx) error {
		if err := insertDeliveries(tx, ds); err != nil {
			return err
		}
		b := tx.Bucket(bucketOutbox)
		for _, seq := range seqs {
			if err := b.Delete(binary.BigEndian.AppendUint64(nil, seq)); err != nil {
				return err
			}
		}
		return nil
	})
}

// DueEntries returns at most limit due entries of kind with At in
// (after, upTo], by At, tenant, key.
func (s *Store) DueEntries(ctx context.Context, kind neostore.DueKind, after, upTo time.Time, limit int) ([]neostore.DueEntry, error) {
	tx, err := s.begin(ctx, false)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	es := []neostore.DueEntry{}
	b := tx.Bucket(bucketDue)
	if b == nil || !upTo.After(after) {
		return es, nil
	}
	// (after, upTo] is [after+1ns, upTo]: the stored instants are whole
	// nanoseconds.
	start := appendSortable([]byte{byte(kind)}, after.Add(time.Nanosecond))
	end := appendSortable([]byte{byte(kind)}, upTo)
	c := b.Cursor()
	for k, v := c.Seek(start); k != nil && len(es) < limit; k, v = c.Next() {
		if len(k) < 1+boundSize || bytes.Compare(k[:1+boundSize], end) > 0 {
			break
		}
		at, err := decodeSortable(k[1:])
		if err != nil {
			return nil, fmt.Errorf("bolt: due entry %x: %w", k, err)
		}
		tenant, key, ok := bytes.Cut(k[1+boundSize:], []byte{0})
		if !ok {
			return nil, fmt.Errorf("bolt: due entry %x: no tenant", k)
		}
		sec, _, err := decodeHeader(v)
		if err != nil {
			return nil, fmt.Errorf("bolt: due entry %x: %w", k, err)
		}
		es = append(es, neostore.DueEntry{Kind: kind, At: at, Tenant: string(tenant), Key: string(key), Validity: sec.Validity, CreatedOn: sec.Times.CreatedOn})
	}
	return es, nil
}

// DueCursor returns how far the due scan has come; unset before the first
// scan.
func (s *Store) DueCursor(ctx context.Context) (neostore.Bound, error) {
	tx, err := s.begin(ctx, false)
	if err != nil {
		return neostore.Bound{}, err
	}
	defer func() { _ = tx.Rollback() }()
	return dueCursor(tx)
}

func dueCursor(tx *bbolt.Tx) (neostore.Bound, error) {
	v := tx.Bucket(bucketMeta).Get(metaDueCursor)
	if v == nil {
		return neostore.Bound{}, nil
	}
	t, err := decodeSortable(v)
	if err != nil {
		return neostore.Bound{}, fmt.Errorf("bolt: due cursor: %w", err)
	}
	return neostore.At(t), nil
}

// AdvanceDueCursor stores ds and moves the cursor from old to upTo in one
// transaction, or returns ECONFLICT when the cursor is no longer old.
// bbolt runs one writer at a time, so the comparison and the move are one.
func (s *Store) AdvanceDueCursor(ctx context.Context, old neostore.Bound, upTo time.Time, ds []neostore.Delivery) error {
	return s.update(ctx, "advance due cursor", func(tx *bbolt.Tx) error {
		cur, err := dueCursor(tx)
		if err != nil {
			return err
		}
		if cur.Set != old.Set || (cur.Set && !cur.At.Equal(old.At)) {
			return neostore.ErrDueCursorMoved
		}
		if err := insertDeliveries(tx, ds); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(metaDueCursor, appendSortable(nil, upTo))
	})
}

// --- deliveries ---

func getDelivery(tx *bbolt.Tx, id string) (deliveryRecord, error) {
	v := tx.Bucket(bucketDeliveries).Get([]byte(id))
	if v == nil {
		return deliveryRecord{}, neostore.ErrDeliveryNotFound
	}
	var r deliveryRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return deliveryRecord{}, fmt.Errorf("bolt: delivery %q: %w", id, err)
	}
	return r, nil
}

// deliveryIndex returns the index lines of r: bucket, key, value.
func deliveryIndex(r deliveryRecord) [][3][]byte {
	lines := [][3][]byte{{bucketDlvSub, appendSortable(append([]byte(r.SubscriptionID), 0), r.CreatedAt), nil}}
	lines[0][1] = append(lines[0][1], r.ID...)
	if r.State == string(neostore.DeliveryPending) {
		lines = append(lines, [3][]byte{bucketDlvDue, append(appendSortable(nil, r.NextAttemptAt), r.ID...), appendSortable(nil, r.CreatedAt)})
	} else {
		finished := r.CreatedAt
		if r.FinishedAt != nil {
			finished = *r.FinishedAt
		}
		lines = append(lines, [3][]byte{bucketDlvDone, append(appendSortable(nil, finished), r.ID...), nil})
	}
	return lines
}

// putDelivery stores r over old (nil for a new one), moving its index lines.
func putDelivery(tx *bbolt.Tx, old *deliveryRecord, r deliveryRecord) error {
	if old != nil {
		for _, l := range deliveryIndex(*old) {
			if err := tx.Bucket(l[0]).Delete(l[1]); err != nil {
				return err
			}
		}
	}
	for _, l := range deliveryIndex(r) {
		if err := tx.Bucket(l[0]).Put(l[1], l[2]); err != nil {
			return err
		}
	}
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketDeliveries).Put([]byte(r.ID), data)
}

func deleteDelivery(tx *bbolt.Tx, r deliveryRecord) error {
	for _, l := range deliveryIndex(r) {
		if err := tx.Bucket(l[0]).Delete(l[1]); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketDeliveries).Delete([]byte(r.ID))
}

// insertDeliveries stores the deliveries of ds whose id is not stored yet.
func insertDeliveries(tx *bbolt.Tx, ds []neostore.Delivery) error {
	b := tx.Bucket(bucketDeliveries)
	for _, d := range ds {
		if b.Get([]byte(d.ID)) != nil {
			continue
		}
		if err := putDelivery(tx, nil, deliveryToRecord(d)); err != nil {
			return err
		}
	}
	return nil
}

// LeaseDeliveries takes at most limit pending deliveries due at now that
// no live lease holds, for owner until now+lease, oldest due first.
func (s *Store) LeaseDeliveries(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]neostore.Delivery, error) {
	// A read first: the dispatcher asks several times a second while a
	// delivery waits for a later retry, and a write transaction that finds
	// nothing would still cost a commit and its fsync.
	tx, err := s.begin(ctx, false)
	if err != nil {
		return nil, err
	}
	rs, err := leasable(tx, now, limit)
	_ = tx.Rollback()
	if err != nil {
		return nil, fmt.Errorf("bolt: lease deliveries: %w", err)
	}
	if len(rs) == 0 {
		return []neostore.Delivery{}, nil
	}
	var taken []neostore.Delivery
	err = s.update(ctx, "lease deliveries", func(tx *bbolt.Tx) error {
		taken = taken[:0]
		rs, err := leasable(tx, now, limit)
		if err != nil {
			return err
		}
		until := now.Add(lease).UTC()
		for _, r := range rs {
			r.LeaseOwner, r.LeaseUntil = owner, &until
			data, err := json.Marshal(r)
			if err != nil {
				return err
			}
			if err := tx.Bucket(bucketDeliveries).Put([]byte(r.ID), data); err != nil {
				return err
			}
			taken = append(taken, r.delivery())
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if taken == nil {
		taken = []neostore.Delivery{}
	}
	return taken, nil
}

// leasable returns at most limit deliveries due at now that no live lease
// holds, oldest due first.
func leasable(tx *bbolt.Tx, now time.Time, limit int) ([]deliveryRecord, error) {
	var rs []deliveryRecord
	c := tx.Bucket(bucketDlvDue).Cursor()
	for k, _ := c.First(); k != nil && len(rs) < limit; k, _ = c.Next() {
		next, err := decodeSortable(k)
		if err != nil {
			return nil, fmt.Errorf("delivery index %x: %w", k, err)
		}
		if next.After(now) {
			break
		}
		r, err := getDelivery(tx, string(k[boundSize:]))
		if err != nil {
			return nil, err
		}
		if r.LeaseOwner != "" && r.LeaseUntil != nil && r.LeaseUntil.After(now) {
			continue
		}
		rs = append(rs, r)
	}
	return rs, nil
}

// CompleteAttempt stores the outcome d of an attempt on a delivery owner
// leased, and releases the lease; ECONFLICT when owner no longer holds it.
// The delivery's id, subscription, event and creation time stay as stored.
func (s *Store) CompleteAttempt(ctx context.Context, owner string, d neostore.Delivery) error {
	return s.update(ctx, "complete attempt", func(tx *bbolt.Tx) error {
		old, err := getDelivery(tx, d.ID)
		if neostore.ErrorCode(err) == neostore.ENOTFOUND {
			return neostore.ErrLeaseLost // deleted with its subscription while in flight
		} else if err != nil {
			return err
		}
		if old.LeaseOwner != owner || owner == "" {
			return neostore.ErrLeaseLost
		}
		r := deliveryToRecord(d)
		r.SubscriptionID, r.Event, r.CreatedAt = old.SubscriptionID, old.Event, old.CreatedAt
		return putDelivery(tx, &old, r)
	})
}

// GetDelivery returns a delivery, or ENOTFOUND.
func (s *Store) GetDelivery(ctx context.Context, id string) (neostore.Delivery, error) {
	tx, err := s.begin(ctx, false)
	if err != nil {
		return neostore.Delivery{}, err
	}
	defer func() { _ = tx.Rollback() }()
	r, err := getDelivery(tx, id)
	if err != nil {
		return neostore.Delivery{}, err
	}
	return r.delivery(), nil
}

// ListDeliveries returns at most limit of a subscription's deliveries,
// newest first; only failed ones when failedOnly.
func (s *Store) ListDeliveries(ctx context.Context, subscriptionID string, failedOnly bool, limit int) ([]neostore.Delivery, error) {
	tx, err := s.begin(ctx, false)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	ds := []neostore.Delivery{}
	prefix := append([]byte(subscriptionID), 0)
	// The last key with the prefix: seek past it, then step back.
	c := tx.Bucket(bucketDlvSub).Cursor()
	k, _ := c.Seek(append([]byte(subscriptionID), 1))
	if k == nil {
		k, _ = c.Last()
	} else {
		k, _ = c.Prev()
	}
	for ; k != nil && bytes.HasPrefix(k, prefix) && len(ds) < limit; k, _ = c.Prev() {
		r, err := getDelivery(tx, string(k[len(prefix)+boundSize:]))
		if err != nil {
			return nil, err
		}
		if failedOnly && r.State != string(neostore.DeliveryFailed) {
			continue
		}
		ds = append(ds, r.delivery())
	}
	return ds, nil
}

// Redeliver makes a delivery pending again, next attempt at at, attempts
// reset, its retry window restarted at at, and lease released; ENOTFOUND
// for an unknown id.
func (s *Store) Redeliver(ctx context.Context, id string, at time.Time) error {
	return s.update(ctx, "redeliver", func(tx *bbolt.Tx) error {
		old, err := getDelivery(tx, id)
		if err != nil {
			return err
		}
		r := old
		r.State, r.Attempts, r.NextAttemptAt, r.FinishedAt = string(neostore.DeliveryPending), 0, at.UTC(), nil
		r.CreatedAt = at.UTC()
		r.LeaseOwner, r.LeaseUntil = "", nil
		return putDelivery(tx, &old, r)
	})
}

// PendingDeliveries returns how many deliveries are pending and the
// creation time of the oldest, from the pending index alone.
func (s *Store) PendingDeliveries(ctx context.Context) (int, neostore.Bound, error) {
	tx, err := s.begin(ctx, false)
	if err != nil {
		return 0, neostore.Bound{}, err
	}
	defer func() { _ = tx.Rollback() }()
	n, oldest := 0, neostore.Bound{}
	err = tx.Bucket(bucketDlvDue).ForEach(func(k, v []byte) error {
		created, err := decodeSortable(v)
		if err != nil {
			return fmt.Errorf("bolt: delivery index %x: %w", k, err)
		}
		n++
		if !oldest.Set || created.Before(oldest.At) {
			oldest = neostore.At(created)
		}
		return nil
	})
	return n, oldest, err
}

// PurgeDeliveries removes delivered and failed deliveries finished before
// before, and returns how many it removed.
func (s *Store) PurgeDeliveries(ctx context.Context, before time.Time) (int, error) {
	var n int
	err := s.update(ctx, "purge deliveries", func(tx *bbolt.Tx) error {
		n = 0
		var ids []string
		end := appendSortable(nil, before)
		c := tx.Bucket(bucketDlvDone).Cursor()
		for k, _ := c.First(); k != nil && bytes.Compare(k[:boundSize], end) < 0; k, _ = c.Next() {
			ids = append(ids, string(k[boundSize:]))
		}
		for _, id := range ids {
			r, err := getDelivery(tx, id)
			if err != nil {
				return err
			}
			if err := deleteDelivery(tx, r); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// update runs fn in the group commit (batch), so that the dispatcher's
// writes share their commit and fsync with the PUTs and with each other
// rather than each paying its own: on a busy store a delivery costs several
// of them (fan-out, lease, outcome). A failing fn is rerun alone after the
// others of its transaction commit (commit.go), so its error rolls back
// only its own changes. fn may run more than once and must reset whatever
// it reports at its start. Faults are wrapped; the domain errors fn
// returns (ECONFLICT, ENOTFOUND, ...) are returned as they are.
func (s *Store) update(ctx context.Context, op string, fn func(tx *bbolt.Tx) error) error {
	var domain error // the domain error of fn's last run, nil when none
	err := s.batch(ctx, func(tx *bbolt.Tx) error {
		err := fn(tx)
		domain = nil
		if err != nil && neostore.ErrorCode(err) != neostore.EINTERNAL {
			domain = err
		}
		return err
	})
	if domain != nil {
		return domain
	}
	if err != nil {
		return fmt.Errorf("bolt: %s: %w", op, err)
	}
	return nil
}
