-- Revocations belong to a tenant (issue 19 item 7): an admin revokes the tokens of its own
-- tenant, and a token is refused only by a revocation of its own tenant, so one tenant's admin
-- cannot log another tenant's agents out of a shared store. Revocations made before this keep
-- applying to every tenant (tenant '*'), as they did.
ALTER TABLE revoked_jti ADD COLUMN tenant text NOT NULL DEFAULT '*';
ALTER TABLE revoked_jti DROP CONSTRAINT revoked_jti_pkey;
ALTER TABLE revoked_jti ADD PRIMARY KEY (tenant, jti);
ALTER TABLE revoked_jti ALTER COLUMN tenant DROP DEFAULT;
