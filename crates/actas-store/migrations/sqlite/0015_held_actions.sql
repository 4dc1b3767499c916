-- Signed actions held for the agent's confirmation: the exact request the gateway will
-- send once they confirm it (proving again who they are), and what it changes. A held
-- action is confirmed once (a send token's SHA-256 is kept) and sent once.
CREATE TABLE held_actions (
    id             TEXT PRIMARY KEY,
    session_id     TEXT NOT NULL REFERENCES sessions(id),
    staff_id       INTEGER NOT NULL REFERENCES staff(id),
    method         TEXT NOT NULL,
    path           TEXT NOT NULL,
    query          TEXT,
    content_type   TEXT,
    body           BLOB NOT NULL,
    description    TEXT NOT NULL,
    changes        TEXT NOT NULL,
    held_at        INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    token_hash     BLOB,
    confirmed_with TEXT,
    sent_at        INTEGER
);
CREATE INDEX held_actions_by_session ON held_actions(session_id);
