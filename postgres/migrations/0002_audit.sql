-- 0002: what the audit trail keeps in the database: its HMAC key (wrapped
-- by the master key), each node's checkpoint, and, with the database sink,
-- the records themselves so that every node's chain is in one place.

-- The wrapped audit key: at most one row, whose id is always TRUE.
CREATE TABLE audit_key (
    id      BOOLEAN NOT NULL DEFAULT TRUE,
    wrapped BYTEA NOT NULL,
    CONSTRAINT audit_key_pkey PRIMARY KEY (id),
    CONSTRAINT audit_key_single_row CHECK (id)
);

-- How far each node's chain is known to reach.
CREATE TABLE audit_checkpoints (
    node TEXT COLLATE "C" NOT NULL,
    seq  BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    CONSTRAINT audit_checkpoints_pkey PRIMARY KEY (node)
);

-- Audit records of the database sink: the exact JSON line, so the HMAC
-- chain verifies byte for byte, with the fields searches filter on.
CREATE TABLE audit_log (
    node   TEXT COLLATE "C" NOT NULL,
    seq    BIGINT NOT NULL,
    time   TIMESTAMPTZ NOT NULL,
    tenant TEXT COLLATE "C" NOT NULL DEFAULT '',
    line   TEXT NOT NULL,
    CONSTRAINT audit_log_pkey PRIMARY KEY (node, seq)
);
CREATE INDEX audit_log_tenant_time ON audit_log (tenant, time);
