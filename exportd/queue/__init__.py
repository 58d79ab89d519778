"""The queue: one LISTEN connection, the dispatcher that claims, and the bounded worker pool.
It knows job kinds only through the `JobHandler` table the composition root hands it."""
