-- Signed actions held for the agent's confirmation: the exact request the gateway will
-- send once they confirm it (proving again who they are), and what it changes. A held
-- action is confirmed once (a send token's SHA-256 is kept) and sent once.
CREATE TABLE held_actions (
    id             text PRIMARY KEY,
    session_id     text NOT NULL REFERENCES sessions(id),
    staff_id       bigint NOT NULL REFERENCES staff(id),
    method         text NOT NULL,
    path           text NOT NULL,
    query          text,
    content_type   text,
    body           bytea NOT NULL,
    description    text NOT NULL,
    changes        text NOT NULL,
    held_at        bigint NOT NULL,
    expires_at     bigint NOT NULL,
    token_hash     bytea,
    confirmed_with text,
    sent_at        bigint
);
CREATE INDEX held_actions_by_session ON held_actions(session_id);
