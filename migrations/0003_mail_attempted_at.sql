-- Set (fenced) just before a notify job hands its mail to SMTP, cleared when the SMTP
-- server refused it. A notify job that finds it set, without notified_at, follows a claim
-- that died mid-send: it does not send again (at most one mail per export).
ALTER TABLE exports ADD COLUMN mail_attempted_at timestamptz;
