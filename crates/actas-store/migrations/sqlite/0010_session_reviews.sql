-- The weekly review: a lead's verdict on an ended session. A session may be reviewed
-- again (after a follow-up); the newest review counts, and each one is a ledger event.
CREATE TABLE session_reviews (
    id          INTEGER PRIMARY KEY,
    session_id  TEXT NOT NULL REFERENCES sessions(id),
    reviewer    INTEGER NOT NULL REFERENCES staff(id),
    outcome     TEXT NOT NULL CHECK (outcome IN ('fine', 'follow_up')),
    note        TEXT,
    reviewed_at INTEGER NOT NULL
);
CREATE INDEX session_reviews_by_session ON session_reviews(session_id, id);
CREATE INDEX sessions_by_end ON sessions(ended_at) WHERE ended_at IS NOT NULL;
