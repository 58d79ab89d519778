"""exportd's schema, as numbered SQL files; installed as the `exportd.migrations` package."""
