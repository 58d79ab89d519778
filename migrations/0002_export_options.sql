-- Per-export encoding options (CSV header, delimiter, BOM), validated by the API.
ALTER TABLE exports ADD COLUMN options jsonb NOT NULL DEFAULT '{}';
