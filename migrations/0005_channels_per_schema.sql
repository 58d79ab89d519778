-- Notifications carry the schema in their channel name (exportd_jobs, exportd_exports for
-- the default schema), so two exportd deployments sharing a database never wake each other.
CREATE OR REPLACE FUNCTION exportd_jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '_jobs', NEW.kind);
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION exportd_exports_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '_exports', NEW.id::text);
    RETURN NULL;
END $$;
