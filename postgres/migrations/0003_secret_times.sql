-- 0003: when each secret was first put (created_on) and last put
-- (updated_on), by the service's clock, stored like the validity bounds:
-- seconds since the Unix epoch plus nanoseconds, so that both stores keep
-- the same instant. Rows written before this migration get NULL, which
-- means unknown (the API shows null): no time would be true for them.
ALTER TABLE secrets
    ADD COLUMN created_on_s  BIGINT,
    ADD COLUMN created_on_ns INTEGER,
    ADD COLUMN updated_on_s  BIGINT,
    ADD COLUMN updated_on_ns INTEGER,
    ADD CONSTRAINT secrets_created_on_pair CHECK ((created_on_s IS NULL) = (created_on_ns IS NULL)),
    ADD CONSTRAINT secrets_updated_on_pair CHECK ((updated_on_s IS NULL) = (updated_on_ns IS NULL)),
    ADD CONSTRAINT secrets_created_on_ns_range CHECK (created_on_ns BETWEEN 0 AND 999999999),
    ADD CONSTRAINT secrets_updated_on_ns_range CHECK (updated_on_ns BETWEEN 0 AND 999999999);
