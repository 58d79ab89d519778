"""exportd's HTTP client: the API (api.py), downloads checked against the export's sha256
(transfer.py), progress on a terminal (bar.py) or as lines (progress.py), where the server
and token come from (config.py), and the command line's automatic Idempotency-Key
(pending.py).

It imports nothing of the server: a client machine needs aiohttp and rich, not PostgreSQL.
And it imports those two only when it uses them (a request; a bar or a table): they are most
of a command's start-up."""
