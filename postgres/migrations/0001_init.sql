-- 0001: the initial schema. Tenant ids, key names and API-key ids are
-- COLLATE "C" so that ORDER BY and the primary-key indexes sort them by
-- byte, whatever collation the database was created with.

-- Each tenant's data key, wrapped by the master key. Never deleted.
CREATE TABLE tenant_keys (
    tenant  TEXT COLLATE "C" NOT NULL,
    wrapped BYTEA NOT NULL,
    CONSTRAINT tenant_keys_pkey PRIMARY KEY (tenant)
);

-- Sealed secrets. A validity bound is seconds since the Unix epoch plus
-- nanoseconds, both NULL when the bound is unset: TIMESTAMPTZ keeps only
-- microseconds and cannot tell year 1 from "no bound".
CREATE TABLE secrets (
    tenant        TEXT COLLATE "C" NOT NULL,
    key           TEXT COLLATE "C" NOT NULL,
    ciphertext    BYTEA NOT NULL,
    not_before_s  BIGINT,
    not_before_ns INTEGER,
    expires_on_s  BIGINT,
    expires_on_ns INTEGER,
    CONSTRAINT secrets_pkey PRIMARY KEY (tenant, key),
    CONSTRAINT secrets_not_before_pair CHECK ((not_before_s IS NULL) = (not_before_ns IS NULL)),
    CONSTRAINT secrets_expires_on_pair CHECK ((expires_on_s IS NULL) = (expires_on_ns IS NULL)),
    CONSTRAINT secrets_not_before_ns_range CHECK (not_before_ns BETWEEN 0 AND 999999999),
    CONSTRAINT secrets_expires_on_ns_range CHECK (expires_on_ns BETWEEN 0 AND 999999999)
);

-- The key-check record: at most one row, whose id is always TRUE.
CREATE TABLE key_check (
    id     BOOLEAN NOT NULL DEFAULT TRUE,
    record BYTEA NOT NULL,
    CONSTRAINT key_check_pkey PRIMARY KEY (id),
    CONSTRAINT key_check_single_row CHECK (id)
);

-- API-key records: the SHA-256 of the key, never the key. Scopes are
-- stored by name so that their bit values in the code may change.
CREATE TABLE api_keys (
    id         TEXT COLLATE "C" NOT NULL,
    hash       BYTEA NOT NULL,
    tenant     TEXT COLLATE "C" NOT NULL,
    name       TEXT NOT NULL,
    scopes     TEXT[] NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ,
    last_used  TIMESTAMPTZ,
    CONSTRAINT api_keys_pkey PRIMARY KEY (id),
    CONSTRAINT api_keys_hash_key UNIQUE (hash),
    CONSTRAINT api_keys_id_not_empty CHECK (id <> ''),
    CONSTRAINT api_keys_hash_not_empty CHECK (octet_length(hash) > 0)
);

CREATE INDEX api_keys_tenant_created ON api_keys (tenant, created_at, id);
