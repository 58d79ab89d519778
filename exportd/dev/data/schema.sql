-- Demo data for `exportd dev`: an orders-like table across three tenants.
CREATE SCHEMA IF NOT EXISTS demo;

CREATE TABLE IF NOT EXISTS demo.orders (
    id          bigint PRIMARY KEY,
    tenant      text NOT NULL,
    customer    text NOT NULL,
    status      text NOT NULL,
    total       numeric(12, 2) NOT NULL,
    currency    text NOT NULL,
    paid        boolean NOT NULL,
    created_at  timestamptz NOT NULL,
    note        text
);

CREATE INDEX IF NOT EXISTS orders_tenant_created_idx ON demo.orders (tenant, created_at);

INSERT INTO demo.orders (id, tenant, customer, status, total, currency, paid, created_at, note)
SELECT g,
       (ARRAY['acme', 'globex', 'initech'])[1 + g % 3],
       'customer-' || (g * 7919 % 5000),
       (ARRAY['placed', 'paid', 'shipped', 'refunded'])[1 + (g / 3) % 4],
       round((g * 37 % 100000) / 100.0 + 1, 2),
       (ARRAY['EUR', 'USD', 'GBP'])[1 + (g / 7) % 3],
       (g / 3) % 4 IN (1, 2),
       timestamptz '2025-01-01 00:00:00+00' + (g * interval '4 minutes'),
       CASE WHEN g % 50 = 0 THEN 'gift, wrap "nicely"' WHEN g % 97 = 0 THEN 'Grüße
zweizeilig' END
FROM generate_series(1, 150000) AS g
ON CONFLICT (id) DO NOTHING;
