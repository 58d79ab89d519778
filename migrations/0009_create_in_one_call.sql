-- Creating an export is one round trip (issue 13): the tenant's lock, its queued count, the
-- export and its build job in one call, not a transaction of six statements. The function
-- is VOLATILE, so each of its statements takes a fresh snapshot (READ COMMITTED): the count,
-- taken after the lock, sees every create of the tenant that committed before, which one
-- plain statement could not (its snapshot would predate the lock). Called outside a
-- transaction the call is its own, and the lock ends with it; inside one (an
-- Idempotency-Key), the lock lasts to its commit. The lock key is the one earlier versions
-- take, so replicas of both versions keep the cap during a rolling upgrade.
-- No row comes back when the tenant already has p_queued_cap queued exports.
CREATE FUNCTION exportd_create_export(
    p_id uuid, p_tenant text, p_owner_sub text, p_recipient text, p_export_name text,
    p_params jsonb, p_format text, p_compression text, p_file_name text, p_options jsonb,
    p_max_attempts integer, p_queued_cap bigint
) RETURNS SETOF exports LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('exportd.queued:' || p_tenant, 0));
    IF (SELECT count(*) FROM exports WHERE tenant = p_tenant AND status = 'queued')
        >= p_queued_cap THEN
        RETURN;
    END IF;
    RETURN QUERY
        INSERT INTO exports (id, tenant, owner_sub, recipient, export_name, params, format,
                             compression, file_name, options)
        VALUES (p_id, p_tenant, p_owner_sub, p_recipient, p_export_name, p_params, p_format,
                p_compression, p_file_name, p_options)
        RETURNING *;
    -- Its INSERT trigger wakes the dispatchers when the call commits.
    INSERT INTO jobs (kind, export_id, tenant, max_attempts)
    VALUES ('build', p_id, p_tenant, p_max_attempts);
END $$;
