-- Progress with a denominator (issue 12): the planner's row estimate taken when a build
-- starts, the smoothed rate the worker measures, and which phase the build is in.
ALTER TABLE exports
    ADD COLUMN rows_estimate bigint CHECK (rows_estimate >= 0),
    ADD COLUMN progress_rate double precision CHECK (progress_rate >= 0),
    ADD COLUMN progress_phase text CHECK (progress_phase IN ('building', 'uploading'));

-- A queued export's estimated start needs recent build durations: the newest builds first.
-- result_sha256 is set exactly when a build succeeded (and stays set once it expired).
CREATE INDEX exports_built_idx ON exports (finished_at DESC) WHERE result_sha256 IS NOT NULL;

-- The exports channel's payload carries the new version ("<id>:<version>"): a long-poll that
-- already holds it reads nothing. (A replica of the previous version cannot parse it and
-- falls back to its periodic re-reads until it is replaced.) A status change also moves the
-- queue (a build started or ended, one was canceled): queued exports' long-polls listen for
-- it to recompute their position.
CREATE OR REPLACE FUNCTION exportd_exports_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '_exports', NEW.id::text || ':' || NEW.version);
    IF OLD.status IS DISTINCT FROM NEW.status THEN
        PERFORM pg_notify(TG_TABLE_SCHEMA || '_queue', NEW.status);
    END IF;
    RETURN NULL;
END $$;
