-- Who a staff member is at the identity provider: its issuer and `sub`, which never
-- change there (an e-mail can). Set at their first sign-in through it; later sign-ins
-- must come from the same subject, so someone who changes their e-mail at the provider
-- to a colleague's does not become that colleague here.
ALTER TABLE staff ADD COLUMN oidc_issuer text;
ALTER TABLE staff ADD COLUMN oidc_subject text;
CREATE UNIQUE INDEX staff_by_subject ON staff(oidc_issuer, oidc_subject) WHERE oidc_subject IS NOT NULL;
