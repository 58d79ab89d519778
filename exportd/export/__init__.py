"""The export pipeline: the catalog (TOML and Python hooks), source → encoder → compressor →
S3 streaming, and the `build` job that runs it."""

import os

# Arrow's default allocator is chosen once, when pyarrow loads, so this must come before any
# import of it; it serves pyarrow's calls and the C++ side (the Parquet writer) alike.
# `pa.set_memory_pool` would reach pyarrow's own calls only: the writer went on allocating
# from mimalloc, which keeps what it frees (a first Parquet export grew RSS by 81 MiB; 57 MiB
# with jemalloc throughout). An operator's own choice stands, for both.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
