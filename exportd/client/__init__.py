"""exportd's HTTP client: the API (api.py), downloads checked against the export's sha256
(transfer.py), progress on a terminal or as lines (progress.py), where the server and token
come from (config.py), and the command line's automatic Idempotency-Key (pending.py).

It imports nothing of the server: a client machine needs aiohttp and rich, not PostgreSQL."""
