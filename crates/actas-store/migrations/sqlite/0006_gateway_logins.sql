-- The gateway's own cookie, exchanged once for a hand-off token. Only a SHA-256 is kept.
-- The names the banner and the records need are kept with it, so a proxied request reads
-- this row and the session row and nothing else.
CREATE TABLE gateway_logins (
    token_hash BLOB PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id),
    csrf       TEXT NOT NULL,
    staff      TEXT NOT NULL,  -- JSON: the staff member as events name them
    account    TEXT NOT NULL,  -- JSON: the account as events name it
    ticket     TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
