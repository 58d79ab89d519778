-- What the test catalog needs beyond the demo: types a query can only name, not create.
CREATE SCHEMA IF NOT EXISTS test;

DO $$ BEGIN
    CREATE TYPE test.label AS ENUM ('=1+1', '-5', 'plain');
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
