"""The export pipeline: the catalog (TOML and Python hooks), source → encoder → compressor →
S3 streaming, and the `build` job that runs it."""

import os

# Arrow's C++ default allocator is chosen once, when pyarrow loads, so this must come before
# any import of it. `pa.set_memory_pool` (export/arrow.py) reaches pyarrow's own calls only:
# the Parquet writer went on allocating from mimalloc, which keeps what it frees (a first
# Parquet export grew RSS by 81 MiB; 57 MiB with jemalloc throughout). An operator's own
# choice stands.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
