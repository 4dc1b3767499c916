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
-- Which share of quiet sessions is sampled for review: a random number 0-99 drawn by the
-- database when the session is written, kept from the agent (a hash of the session id
-- would let them know in advance).
ALTER TABLE sessions ADD COLUMN review_bucket INTEGER NOT NULL DEFAULT 0;
UPDATE sessions SET review_bucket = abs(random() % 100);
CREATE INDEX access_requests_by_session ON access_requests(for_session) WHERE for_session IS NOT NULL;
