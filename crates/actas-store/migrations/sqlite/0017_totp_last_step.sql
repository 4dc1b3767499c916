-- The last authenticator time step (Unix time / 30 s) a staff member's code was accepted
-- for: a code is good once, so one seen over a shoulder or in a log can't be replayed
-- within its window.
ALTER TABLE staff ADD COLUMN totp_last_step INTEGER;
