-- Sign-ins through the company's identity provider (OpenID Connect) between actas sending
-- the browser there and the browser coming back: in the database, so whichever instance
-- the browser returns to can finish it, and deleted by the first that does, so a `state`
-- works once. Rows live minutes; each new sign-in deletes the expired ones.
CREATE TABLE sign_on_flows (
    state_hash   BLOB    PRIMARY KEY,
    binding_hash BLOB    NOT NULL,   -- SHA-256 of the browser's binding cookie
    nonce        TEXT    NOT NULL,
    verifier     TEXT    NOT NULL,   -- PKCE code verifier
    purpose      TEXT    NOT NULL CHECK (purpose IN ('sign_in', 'step_up')),
    login_hash   BLOB,               -- step-up: the console login it refreshes
    then_to      TEXT,               -- where to go after, or the request a step-up starts
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX sign_on_flows_expiry ON sign_on_flows(expires_at);
