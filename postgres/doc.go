// Package postgres is the shared store: every node of a deployment opens
// the same PostgreSQL database, so a write acknowledged by one node is read
// by any other on its next request. Like the embedded store it keeps
// ciphertext and metadata only; sealing and authorization happen a layer
// up, and the database never sees a plaintext value or an API key (only
// its SHA-256).
//
// Tables (migrations/0001_init.sql): tenant_keys, secrets, key_check (one
// row), api_keys, and schema_migrations (version, applied_at). Tenant ids,
// key names and API-key ids are COLLATE "C", so lists come back in byte
// order whatever the database's collation. Validity bounds are stored as
// seconds and nanoseconds since the Unix epoch (NULL when unset), so that
// nanoseconds, years 1 to 9999 and "unset" all survive; API-key times are
// TIMESTAMPTZ, which keeps microseconds.
//
// Every write is one statement (an upsert, a conditional update or an
// insert with ON CONFLICT DO NOTHING), so there are no multi-statement
// transactions to retry and no torn records across nodes. The exceptions
// are a put under a per-tenant quota and the advance of the webhook due
// cursor, each one short transaction.
//
// Webhook notifications (migrations/0004_webhooks.sql, webhook.go):
// webhook_subscriptions, webhook_outbox (change events, written by the
// put's or delete's own statement), webhook_due_cursor (one row, locked
// NOWAIT by the node that scans), webhook_deliveries (leased with FOR
// UPDATE SKIP LOCKED; a lease is an owner and an end time of the caller's
// clock). The index of due times is two partial indexes of secrets. The
// outbox's seq is an identity column (a sequence), and SKIP LOCKED and
// NOWAIT need a recent CockroachDB.
//
// # Faults
//
// Every call is bounded by Options.ConnectTimeout + Options.StatementTimeout,
// even with a context that has no deadline; the server also enforces the
// statement timeout. A database that is down, unreachable, restarting,
// failing over, out of connections or too slow yields an EUNAVAILABLE
// error (503 with Retry-After), never EINTERNAL; the pgx error stays in the
// chain for the log, and clients see a generic message. The pool drops
// broken connections and opens new ones when the database returns: no
// restart is needed.
//
// # CockroachDB and other PostgreSQL-compatible engines
//
// The queries use only SQL that CockroachDB also accepts: upserts with
// INSERT ... ON CONFLICT DO UPDATE, put-if-absent with INSERT ... ON
// CONFLICT DO NOTHING RETURNING followed by a SELECT, UPDATE ... FROM
// unnest(...), no PL/pgSQL, no triggers, no sequences. This package is
// tested against PostgreSQL only. Where it could not stay within the common
// subset:
//
//   - COLLATE "C" on columns. CockroachDB's own string order is already
//     byte order, but it rejects COLLATE "C" in column definitions (it
//     accepts it only in expressions, from v22.2/v23.1 on), so migration
//     0001 fails there as written. A CockroachDB variant would declare the
//     same columns as plain STRING; it is not provided.
//   - Advisory locks. Migrate takes pg_advisory_lock so that nodes starting
//     at once migrate one after the other. CockroachDB's pg_advisory_lock
//     is a no-op stub. Correctness does not rest on it: each migration's
//     transaction first inserts its version into schema_migrations, whose
//     primary key lets one concurrent runner through and sends the others
//     back to reread the version before their DDL runs. On CockroachDB,
//     still, run `neostore-secrets migrate` once before starting the nodes
//     (and use Options.SkipMigrate): its schema changes inside transactions
//     have restrictions of their own.
//   - statement_timeout is sent as a startup parameter. CockroachDB knows
//     the session variable; whether it accepts it at startup is not
//     verified here. The client-side bound (the call's context) applies on
//     any engine.
//   - Behind PgBouncer in transaction mode older than 1.21, pgx's cached
//     prepared statements fail; add default_query_exec_mode=exec to the URL.
//
// Durability is the server's: a nil error means the transaction committed,
// which on PostgreSQL is on disk (and on synchronous standbys) only when
// synchronous_commit is on, its default. Do not turn it off for this
// database.
package postgres
