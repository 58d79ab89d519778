-- After an export succeeds: links that last as long as its file, downloads on record, files
-- that expire, rows purged after the history window, and webhooks.

ALTER TABLE exports DROP CONSTRAINT exports_status_check;
ALTER TABLE exports ADD CONSTRAINT exports_status_check
    CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'canceled', 'expired'));
ALTER TABLE exports
    ADD COLUMN download_count bigint NOT NULL DEFAULT 0,
    ADD COLUMN last_download_at timestamptz;

-- The history purge walks finished rows oldest first.
CREATE INDEX exports_finished_idx ON exports (finished_at)
    WHERE status IN ('failed', 'canceled', 'expired');

-- The mail's link (/d/{token}): a random token stored as its SHA-256, so the table holds
-- nothing that downloads. Valid until the file expires, unless revoked.
CREATE TABLE download_links (
    token_sha256  bytea PRIMARY KEY,
    export_id     uuid NOT NULL REFERENCES exports (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);
CREATE INDEX download_links_export_idx ON download_links (export_id);

-- Every download, through the API or a link; client_ip as seen behind trusted proxies.
CREATE TABLE downloads (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    export_id   uuid NOT NULL REFERENCES exports (id) ON DELETE CASCADE,
    at          timestamptz NOT NULL DEFAULT now(),
    route       text NOT NULL CHECK (route IN ('api', 'link')),
    client_ip   inet,
    user_agent  text
);
CREATE INDEX downloads_export_idx ON downloads (export_id, at DESC, id DESC);

-- A tenant's webhook endpoints. The secret signs deliveries: it is shown to the caller once
-- and kept here because signing needs it.
CREATE TABLE webhooks (
    id          uuid PRIMARY KEY,
    tenant      text NOT NULL,
    created_by  text NOT NULL,
    url         text NOT NULL,
    events      text[] NOT NULL,
    secret      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_tenant_idx ON webhooks (tenant, created_at DESC, id DESC);

-- One event for one endpoint, delivered at least once by a `webhook` job. Its id is the
-- Standard Webhooks `webhook-id`, the same on every attempt, so a receiver can deduplicate.
CREATE TABLE webhook_deliveries (
    id            uuid PRIMARY KEY,
    webhook_id    uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    export_id     uuid NOT NULL REFERENCES exports (id) ON DELETE CASCADE,
    event         text NOT NULL,
    state         text NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'delivered', 'failed')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    attempts      integer NOT NULL DEFAULT 0,
    last_status   integer,
    last_error    text,
    last_at       timestamptz,
    delivered_at  timestamptz
);
CREATE INDEX webhook_deliveries_webhook_idx
    ON webhook_deliveries (webhook_id, created_at DESC, id DESC);
CREATE INDEX webhook_deliveries_export_idx ON webhook_deliveries (export_id);

-- Jobs: an expire and a webhook kind; a webhook job names its delivery. Builds, mails and
-- expiries stay one per export.
ALTER TABLE jobs DROP CONSTRAINT jobs_kind_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_kind_check
    CHECK (kind IN ('build', 'notify', 'expire', 'webhook'));
ALTER TABLE jobs ADD COLUMN delivery_id uuid REFERENCES webhook_deliveries (id) ON DELETE CASCADE;
ALTER TABLE jobs ADD CONSTRAINT jobs_webhook_delivery_check
    CHECK ((kind = 'webhook') = (delivery_id IS NOT NULL));
ALTER TABLE jobs DROP CONSTRAINT jobs_export_id_kind_key;
CREATE UNIQUE INDEX jobs_one_per_export_idx ON jobs (export_id, kind) WHERE kind <> 'webhook';
CREATE UNIQUE INDEX jobs_one_per_delivery_idx ON jobs (delivery_id) WHERE delivery_id IS NOT NULL;

-- Files finished before this migration expire like the rest (5: the default attempts).
INSERT INTO jobs (kind, export_id, tenant, max_attempts, ready_at)
SELECT 'expire', id, tenant, 5, coalesce(expires_at, now()) FROM exports
WHERE status = 'succeeded';
