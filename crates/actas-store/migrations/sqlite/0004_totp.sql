-- Optional two-step sign-in with an authenticator app (TOTP, RFC 6238).
ALTER TABLE staff ADD COLUMN totp_secret BLOB;   -- in use
ALTER TABLE staff ADD COLUMN totp_pending BLOB;  -- shown to the staff member, not yet confirmed
