-- 0004: webhook notifications. Times of subscriptions and deliveries are
-- the dispatcher's clock, stored as nanoseconds since the Unix epoch
-- (BIGINT: years 1678 to 2262, every nanosecond); times that are a secret's
-- window (the events, the due cursor) are seconds plus nanoseconds like the
-- secrets table, so that any window round-trips.

-- Subscriptions, managed by the operator. The signing secrets are sealed
-- by the master key; the store never opens them. secrets_sealed[i] expires
-- at secrets_expires_at_ns[i] (NULL for the current secret).
CREATE TABLE webhook_subscriptions (
    id                    TEXT COLLATE "C" NOT NULL,
    name                  TEXT NOT NULL,
    tenant                TEXT COLLATE "C" NOT NULL,
    url                   TEXT NOT NULL,
    events                TEXT[] NOT NULL,
    leads_ns              BIGINT[] NOT NULL,
    secrets_sealed        BYTEA[] NOT NULL,
    secrets_expires_at_ns BIGINT[] NOT NULL,
    created_at_ns         BIGINT NOT NULL,
    disabled_at_ns        BIGINT,
    CONSTRAINT webhook_subscriptions_pkey PRIMARY KEY (id)
);
-- What every PUT asks: does an enabled subscription cover the tenant?
CREATE INDEX webhook_subscriptions_enabled ON webhook_subscriptions (tenant) WHERE disabled_at_ns IS NULL;

-- Change events, written by the statement that makes the change, until
-- they are fanned out into deliveries.
CREATE TABLE webhook_outbox (
    seq           BIGINT GENERATED ALWAYS AS IDENTITY,
    id            TEXT NOT NULL,
    type          TEXT NOT NULL,
    at_ns         BIGINT NOT NULL,
    tenant        TEXT COLLATE "C" NOT NULL,
    key           TEXT COLLATE "C" NOT NULL,
    trace_id      TEXT NOT NULL,
    created       BOOLEAN NOT NULL,
    not_before_s  BIGINT,
    not_before_ns INTEGER,
    expires_on_s  BIGINT,
    expires_on_ns INTEGER,
    CONSTRAINT webhook_outbox_pkey PRIMARY KEY (seq)
);

-- The index of due times is the secrets table itself, through two partial
-- indexes: an expiry always, an activation when NotBefore lay after the
-- last put (or that put's time is unknown). Being indexes of the rows, they
-- follow every put, replace and delete in its own transaction with no
-- statement of their own, index the secrets stored before this migration,
-- and cannot disagree with the rows under concurrent writes of one key.
-- Rows without a window (most puts) enter neither.
CREATE INDEX secrets_due_expires ON secrets (expires_on_s, expires_on_ns, tenant, key)
    WHERE expires_on_s IS NOT NULL;
CREATE INDEX secrets_due_activates ON secrets (not_before_s, not_before_ns, tenant, key)
    WHERE not_before_s IS NOT NULL
      AND (updated_on_s IS NULL OR (not_before_s, not_before_ns) > (updated_on_s, updated_on_ns));

-- How far the due scan has come: one row, NULL before the first scan. A
-- scan locks it (NOWAIT), so one node scans at a time.
CREATE TABLE webhook_due_cursor (
    id    BOOLEAN NOT NULL DEFAULT TRUE,
    at_s  BIGINT,
    at_ns INTEGER,
    CONSTRAINT webhook_due_cursor_pkey PRIMARY KEY (id),
    CONSTRAINT webhook_due_cursor_single_row CHECK (id)
);
INSERT INTO webhook_due_cursor (id) VALUES (TRUE);

-- Deliveries: one event on its way to one subscription, leased by one
-- node at a time (lease_owner until lease_until_ns).
CREATE TABLE webhook_deliveries (
    id                 TEXT COLLATE "C" NOT NULL,
    subscription_id    TEXT COLLATE "C" NOT NULL,
    event              JSONB NOT NULL,
    state              TEXT NOT NULL,
    attempts           INTEGER NOT NULL,
    created_at_ns      BIGINT NOT NULL,
    next_attempt_at_ns BIGINT NOT NULL,
    last_attempt_at_ns BIGINT,
    last_status        INTEGER NOT NULL,
    last_error         TEXT NOT NULL,
    finished_at_ns     BIGINT,
    lease_owner        TEXT,
    lease_until_ns     BIGINT,
    CONSTRAINT webhook_deliveries_pkey PRIMARY KEY (id),
    CONSTRAINT webhook_deliveries_state CHECK (state IN ('pending', 'delivered', 'failed'))
);
-- The lease query: pending deliveries by next attempt.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at_ns, id) WHERE state = 'pending';
-- `webhook deliveries`: a subscription's, newest first.
CREATE INDEX webhook_deliveries_subscription ON webhook_deliveries (subscription_id, created_at_ns DESC, id DESC);
-- The purge: finished deliveries by finishing time.
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries ((COALESCE(finished_at_ns, created_at_ns))) WHERE state <> 'pending';
