-- A failure's correlation id: the export's owner sees it beside a plain message, the
-- operator finds the details under it in the logs.
ALTER TABLE exports ADD COLUMN error_id text;
