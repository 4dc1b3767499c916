-- The gateway's own cookie, exchanged once for a hand-off token. Only a SHA-256 is kept.
CREATE TABLE gateway_logins (
    token_hash BLOB PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id),
    csrf       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
