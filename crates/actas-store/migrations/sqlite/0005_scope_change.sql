-- A scope change during a session is a new request linked to that session.
ALTER TABLE access_requests ADD COLUMN for_session TEXT REFERENCES sessions(id);
