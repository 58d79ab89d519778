"""The embedded stack: PostgreSQL, S3 and an SMTP sink on loopback, and the demo. Used by
`exportd dev` (imported lazily by the CLI), the tests and the benchmarks; never by production
code."""
