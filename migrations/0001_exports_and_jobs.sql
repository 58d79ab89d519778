-- exports: the resource a user sees, kept until retention ends.
CREATE TABLE exports (
    id              uuid PRIMARY KEY,
    tenant          text NOT NULL,
    owner_sub       text NOT NULL,
    recipient       text,
    export_name     text NOT NULL,
    params          jsonb NOT NULL DEFAULT '{}',
    format          text NOT NULL,
    compression     text NOT NULL DEFAULT 'none',
    file_name       text NOT NULL,
    status          text NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'canceled')),
    progress_rows   bigint NOT NULL DEFAULT 0,
    progress_bytes  bigint NOT NULL DEFAULT 0,
    attempts        integer NOT NULL DEFAULT 0,
    error_code      text,
    error_message   text,
    object_key      text,
    result_size     bigint,
    result_rows     bigint,
    result_sha256   text,
    content_type    text,
    as_of           timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    notified_at     timestamptz,
    expires_at      timestamptz,
    -- bumped on every visible change: the long-poll ETag
    version         bigint NOT NULL DEFAULT 1
);

-- The caller's list, newest first, keyset-paged on (created_at, id).
CREATE INDEX exports_owner_created_idx ON exports (tenant, owner_sub, created_at DESC, id DESC);

-- The per-tenant queued cap counts these on every create.
CREATE INDEX exports_tenant_queued_idx ON exports (tenant) WHERE status = 'queued';

-- Idempotency-Key: per tenant, kept until expires_at; the export it made answers replays.
CREATE TABLE idempotency_keys (
    tenant        text NOT NULL,
    key           text NOT NULL,
    request_hash  text NOT NULL,
    -- deferred: the key is taken first (it serializes concurrent retries), the export after
    export_id     uuid NOT NULL REFERENCES exports (id) ON DELETE CASCADE
                  DEFERRABLE INITIALLY DEFERRED,
    expires_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant, key)
);

CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);

-- jobs: the work queue. A finished job is deleted, so this table stays small.
CREATE TABLE jobs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind             text NOT NULL CHECK (kind IN ('build', 'notify')),
    export_id        uuid NOT NULL REFERENCES exports (id) ON DELETE CASCADE,
    tenant           text NOT NULL,
    -- when the job may next be claimed: its due time while queued, its lease
    -- expiry while running, so one indexed column answers "claimable now?"
    ready_at         timestamptz NOT NULL DEFAULT now(),
    attempts         integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL,
    lease_owner      text,
    lease_token      uuid,
    last_error_code  text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (export_id, kind)
);

-- The claim walks this in order and stops after $free rows.
CREATE INDEX jobs_claim_idx ON jobs (ready_at, id);

-- Running builds per tenant (the fairness cap) come from the few leased rows only.
CREATE INDEX jobs_leased_idx ON jobs (tenant) WHERE lease_token IS NOT NULL AND kind = 'build';

-- A queue table churns: vacuum it early and often so dead tuples never pile up.
ALTER TABLE jobs SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 100,
    autovacuum_analyze_scale_factor = 0.02,
    fillfactor = 80
);

-- New work wakes dispatchers; the payload is only a hint and coalesces per transaction.
CREATE FUNCTION exportd_jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('exportd_jobs', NEW.kind);
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_notify AFTER INSERT OR UPDATE OF ready_at ON jobs
    FOR EACH ROW WHEN (NEW.lease_owner IS NULL) EXECUTE FUNCTION exportd_jobs_notify();

-- Every visible change of an export wakes its long-poll waiters (and a running build on cancel).
CREATE FUNCTION exportd_exports_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('exportd_exports', NEW.id::text);
    RETURN NULL;
END $$;

CREATE TRIGGER exports_notify AFTER UPDATE OF version ON exports
    FOR EACH ROW WHEN (OLD.version IS DISTINCT FROM NEW.version)
    EXECUTE FUNCTION exportd_exports_notify();
