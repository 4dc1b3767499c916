-- actas schema, SQLite. Times are milliseconds since the Unix epoch (UTC).

CREATE TABLE staff (
    id            INTEGER PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('agent', 'lead', 'director', 'auditor')),
    password_hash TEXT NOT NULL,
    active        INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    created_at    INTEGER NOT NULL
);

-- Who may act as customers, up to which risk; who granted it, when and why.
-- A revoked grant keeps its row, with who revoked it and why.
CREATE TABLE allow_list (
    staff_id      INTEGER PRIMARY KEY REFERENCES staff(id),
    max_risk      TEXT NOT NULL CHECK (max_risk IN ('low', 'medium', 'high')),
    granted_by    INTEGER NOT NULL REFERENCES staff(id),
    granted_at    INTEGER NOT NULL,
    reason        TEXT NOT NULL,
    revoked_by    INTEGER REFERENCES staff(id),
    revoked_at    INTEGER,
    revoke_reason TEXT
);

CREATE TABLE accounts (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    flags      TEXT NOT NULL DEFAULT '[]',  -- JSON array of flag names
    consent    TEXT NOT NULL DEFAULT 'allowed' CHECK (consent IN ('allowed', 'code_required', 'revoked')),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE access_requests (
    id             TEXT PRIMARY KEY,
    requester      INTEGER NOT NULL REFERENCES staff(id),
    account_id     TEXT NOT NULL REFERENCES accounts(id),
    ticket         TEXT NOT NULL,
    reason         TEXT NOT NULL,
    scope          TEXT NOT NULL,           -- JSON array of capability names
    minutes        INTEGER NOT NULL,
    mode           TEXT NOT NULL,
    risk           TEXT NOT NULL,
    needs_code     INTEGER NOT NULL,
    code_confirmed INTEGER NOT NULL DEFAULT 0,
    status         TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'expired', 'cancelled', 'used')),
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    approved_by    INTEGER REFERENCES staff(id),  -- NULL with approver = 'policy'
    approver       TEXT CHECK (approver IN ('policy', 'lead')),
    decided_by     INTEGER REFERENCES staff(id),
    note           TEXT,
    -- A lead can never approve their own request, whatever the code above does.
    CHECK (approved_by IS NULL OR approved_by <> requester)
);
CREATE INDEX access_requests_by_status ON access_requests(status, created_at);

-- Every decision on a request, in order (approvals may narrow scope or time).
CREATE TABLE approvals (
    id         INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL REFERENCES access_requests(id),
    decision   TEXT NOT NULL CHECK (decision IN ('approved', 'denied')),
    decided_by INTEGER REFERENCES staff(id),  -- NULL when approved by policy
    scope      TEXT NOT NULL,
    minutes    INTEGER NOT NULL,
    note       TEXT,
    decided_at INTEGER NOT NULL
);

CREATE TABLE sessions (
    id            TEXT PRIMARY KEY,
    request_id    TEXT NOT NULL UNIQUE REFERENCES access_requests(id),
    staff_id      INTEGER NOT NULL REFERENCES staff(id),
    account_id    TEXT NOT NULL REFERENCES accounts(id),
    scope         TEXT NOT NULL,
    mode          TEXT NOT NULL,
    started_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    idle_limit_ms INTEGER NOT NULL,
    last_seen     INTEGER NOT NULL,
    ended_at      INTEGER,
    end_reason    TEXT
);
-- Sessions never nest: at most one active session per staff member.
CREATE UNIQUE INDEX sessions_one_active_per_staff ON sessions(staff_id) WHERE ended_at IS NULL;
CREATE INDEX sessions_by_account ON sessions(account_id, started_at);

-- The ledger. `body` is the exact JSON that is hashed; the other columns index it.
CREATE TABLE ledger_events (
    seq       INTEGER PRIMARY KEY,
    time      INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    account   TEXT,
    session   TEXT,
    body      TEXT NOT NULL,
    leaf_hash BLOB NOT NULL
);
CREATE INDEX ledger_events_by_account ON ledger_events(account, seq);
CREATE INDEX ledger_events_by_session ON ledger_events(session, seq);

-- Hashes of every perfect subtree (level 0 = leaves), so any proof reads O(log n) rows.
CREATE TABLE merkle_nodes (
    level INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    hash  BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;

CREATE TABLE tree_heads (
    size      INTEGER PRIMARY KEY,
    time      INTEGER NOT NULL,
    root      BLOB NOT NULL,
    key_id    TEXT NOT NULL,
    signature BLOB NOT NULL
);

-- Append-only, enforced by the database too. (Someone with the file can drop these;
-- that is what the hash chain, the Merkle tree and the signed heads are for.)
CREATE TRIGGER ledger_events_no_update BEFORE UPDATE ON ledger_events
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER ledger_events_no_delete BEFORE DELETE ON ledger_events
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER merkle_nodes_no_update BEFORE UPDATE ON merkle_nodes
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER tree_heads_no_update BEFORE UPDATE ON tree_heads
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
