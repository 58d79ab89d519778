-- An Idempotency-Key belongs to its caller (tenant and sub), not to the whole tenant: a
-- colleague's key neither replays nor reveals the other's export.
ALTER TABLE idempotency_keys ADD COLUMN owner_sub text;

UPDATE idempotency_keys k SET owner_sub = e.owner_sub FROM exports e WHERE e.id = k.export_id;

ALTER TABLE idempotency_keys
    ALTER COLUMN owner_sub SET NOT NULL,
    DROP CONSTRAINT idempotency_keys_pkey,
    ADD PRIMARY KEY (tenant, owner_sub, key);
