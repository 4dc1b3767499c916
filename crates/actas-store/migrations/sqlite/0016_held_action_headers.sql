-- The request headers a held signed action is sent with (those the policy lets pass,
-- as the agent's browser sent them), as a JSON list of [name, value] pairs: a product
-- that checks Origin or a CSRF header sees the change as it was made. Emptied, with the
-- body, once it is sent or its time has passed.
ALTER TABLE held_actions ADD COLUMN headers TEXT NOT NULL DEFAULT '[]';
CREATE INDEX held_actions_by_expiry ON held_actions(expires_at);
