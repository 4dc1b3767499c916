-- Sign-ins through the company's identity provider (OpenID Connect) between actas sending
-- the browser there and the browser coming back: in the database, so whichever instance
-- the browser returns to can finish it, and deleted by the first that does, so a `state`
-- works once. Rows live minutes; each new sign-in deletes the expired ones.
CREATE TABLE sign_on_flows (
    state_hash   bytea   PRIMARY KEY,
    binding_hash bytea   NOT NULL,   -- SHA-256 of the browser's binding cookie
    nonce        text    NOT NULL,
    verifier     text    NOT NULL,   -- PKCE code verifier
    purpose      text    NOT NULL CHECK (purpose IN ('sign_in', 'step_up')),
    login_hash   bytea,              -- step-up: the console login it refreshes
    then_to      text,               -- where to go after, or the request a step-up starts
    created_at   bigint  NOT NULL,
    expires_at   bigint  NOT NULL
);
CREATE INDEX sign_on_flows_expiry ON sign_on_flows(expires_at);
