-- Pages as the agent saw them: the masked HTML the gateway served for a request
-- (gzip), kept for the policy's retention and deleted after it. The ledger holds each
-- copy's SHA-256 (`session.page_kept`), so a copy shown later is checked against it.
CREATE TABLE page_copies (
    session_id TEXT NOT NULL REFERENCES sessions(id),
    page_seq   INTEGER NOT NULL,  -- the request's ledger event (page view, data read, change)
    path       TEXT NOT NULL,
    content_type TEXT NOT NULL,   -- as served (the page's own encoding is kept)
    sha256     BLOB NOT NULL,     -- of the bytes served, before compression
    bytes      INTEGER NOT NULL,
    gzip       BLOB NOT NULL,
    kept_at    INTEGER NOT NULL,
    PRIMARY KEY (session_id, page_seq)
);
CREATE INDEX page_copies_by_age ON page_copies(kept_at);
-- Compressed bytes kept per session so far, so the per-session limit is checked in
-- one read rather than by summing every copy.
CREATE TABLE page_copy_use (
    session_id TEXT PRIMARY KEY REFERENCES sessions(id),
    gzip_bytes INTEGER NOT NULL
) WITHOUT ROWID;
