-- Staff sign-in: console sign-in sessions, personal API tokens, failed-attempt counting.

-- One row per console sign-in. Only a SHA-256 of the cookie value is kept.
CREATE TABLE staff_logins (
    token_hash       BLOB PRIMARY KEY,
    staff_id         INTEGER NOT NULL REFERENCES staff(id),
    csrf             TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    authenticated_at INTEGER NOT NULL,  -- the last time the password was checked
    expires_at       INTEGER NOT NULL,
    ended_at         INTEGER
);
CREATE INDEX staff_logins_by_staff ON staff_logins(staff_id);

-- Personal API tokens, shown once, stored as SHA-256.
CREATE TABLE api_tokens (
    id          TEXT PRIMARY KEY,
    staff_id    INTEGER NOT NULL REFERENCES staff(id),
    name        TEXT NOT NULL,
    token_hash  BLOB NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

-- Wrong passwords in a row, and until when sign-in is locked.
ALTER TABLE staff ADD COLUMN failed_sign_ins INTEGER NOT NULL DEFAULT 0;
ALTER TABLE staff ADD COLUMN locked_until INTEGER;
