"""The export pipeline: the catalog (TOML and Python hooks), source → encoder → compressor →
S3 streaming, and the `build` job that runs it."""
