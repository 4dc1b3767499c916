-- The product's apps: app keys (only a SHA-256 kept), their webhook settings, the
-- idempotency keys of what they reported, and the outbox of notifications to them.

CREATE TABLE app_keys (
    id             INTEGER PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    key_hash       BLOB NOT NULL UNIQUE,
    webhook_url    TEXT,
    -- The HMAC secret must be kept as it is to sign with; it is shown once at creation.
    webhook_secret TEXT,
    created_by     INTEGER REFERENCES staff(id),
    created_at     INTEGER NOT NULL,
    revoked_at     INTEGER
);

-- One row per (app, idempotency key): a retry with the same key writes nothing new.
CREATE TABLE idempotency_keys (
    app_id       INTEGER NOT NULL REFERENCES app_keys(id),
    key          TEXT NOT NULL,
    request_hash BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (app_id, key)
) WITHOUT ROWID;

-- Notifications waiting for (or given) delivery, written in the same transaction as the
-- event they announce, so a product that is down loses nothing.
CREATE TABLE webhook_outbox (
    id              INTEGER PRIMARY KEY,
    app_id          INTEGER NOT NULL REFERENCES app_keys(id),
    body            TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    delivered_at    INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL
);
CREATE INDEX webhook_outbox_due ON webhook_outbox(next_attempt_at) WHERE delivered_at IS NULL;
