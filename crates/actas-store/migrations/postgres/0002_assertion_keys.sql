-- The keys that sign the gateway's assertions, shared by every actas instance on the
-- database: a rotation made through one is picked up by all within seconds. Each seed is
-- sealed (ChaCha20-Poly1305, the key id as associated data) under a key derived from the
-- ledger signing key, which stays in each instance's key file: the database alone never
-- yields a signing key, nor can a row written behind actas's back put a key in use. Replaced keys keep their row (public half) so they stay
-- published until their last assertion has expired.
CREATE TABLE assertion_keys (
    kid        text    PRIMARY KEY,
    public     bytea   NOT NULL,
    sealed     bytea,             -- NULL for a replaced key brought over from a key file
    -- A tag (ChaCha20-Poly1305 over the id, public key, time and sealed seed, under the
    -- same derived key): a row someone put in the database without that key (a key of
    -- their own, to be published) is ignored.
    mac        bytea   NOT NULL,
    created_at bigint  NOT NULL,
    retired_at bigint
);
-- At most one key signs at a time.
CREATE UNIQUE INDEX assertion_keys_one_current ON assertion_keys((retired_at IS NULL)) WHERE retired_at IS NULL;
