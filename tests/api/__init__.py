"""API tests: exportd in-process (aiohttp's test server) on real PostgreSQL, S3 and SMTP."""
