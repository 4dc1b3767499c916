-- One-time confirmation codes (invariant 12) and gateway hand-off tokens.

-- Codes the customer gives the agent. Only a salted SHA-256 of each code is kept; a code
-- is single use and short-lived.
CREATE TABLE confirmation_codes (
    id         TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    salt       BLOB NOT NULL,
    code_hash  BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    used_for   TEXT REFERENCES access_requests(id)
);
CREATE INDEX confirmation_codes_by_account ON confirmation_codes(account_id, expires_at);

-- Wrong codes entered per request; at 5 the request is locked.
ALTER TABLE access_requests ADD COLUMN code_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE access_requests ADD COLUMN locked_at INTEGER;

-- Single-use tokens the gateway exchanges for its own cookie. Only a SHA-256 is kept.
CREATE TABLE handoff_tokens (
    token_hash BLOB PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id),
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
