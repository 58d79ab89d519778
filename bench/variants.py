"""What the benchmark compares: the variants, and what each one measured."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

Kind = Literal["limit", "script", "exportd"]
Status = Literal["ok", "not supported yet", "skipped", "failed"]


@dataclass(frozen=True, slots=True)
class Variant:
    kind: Kind
    fmt: str  # csv | jsonl | parquet
    compression: str = "none"  # none | gzip | zstd
    label: str = ""

    @property
    def key(self) -> str:
        suffix = "" if self.compression == "none" else f"+{self.compression}"
        return f"{self.kind}/{self.fmt}{suffix}"


@dataclass(slots=True)
class Measurement:
    """One variant's run. CPU is in seconds per process group; RSS in bytes (exportd only)."""

    variant: Variant
    status: Status
    note: str = ""
    wall_s: float | None = None
    out_bytes: int | None = None
    rows: int | None = None
    cpu: dict[str, float] = field(default_factory=dict)
    client: tuple[str, ...] = ()  # the groups in `cpu` that are the client side
    # Over the same span: the whole machine's busy CPU seconds (every process and the kernel),
    # the seconds the hypervisor stole, and the CPU of user-space processes that are not part
    # of the benchmark. Much of the last two means the run shared the machine.
    machine_cpu: float | None = None
    steal: float | None = None
    outside_cpu: float | None = None
    build_s: float | None = None  # exportd: started_at to finished_at, as the service saw it
    # exportd, in bytes: RSS once the service had started (before any export); this export's
    # peak RSS minus the RSS just before its POST; and that peak. With --repeat, the growth
    # and the peak are the largest over the runs.
    rss_idle: int | None = None
    rss_growth: int | None = None
    rss_peak: int | None = None
    walls: tuple[float, ...] = ()  # with --repeat: every successful run's wall time

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.wall_s is not None


# In run order: each family's COPY limit, user script and exportd side by side.
VARIANTS: Final = (
    Variant("limit", "csv", label="COPY > /dev/null"),
    Variant("script", "csv", label="COPY | upload_fileobj"),
    Variant("exportd", "csv", label="exportd CSV"),
    Variant("limit", "csv", "gzip", "COPY | gzip -1 > /dev/null"),
    Variant("script", "csv", "gzip", "COPY | gzip -1 | upload_fileobj"),
    Variant("exportd", "csv", "gzip", "exportd CSV+gzip"),
    Variant("limit", "csv", "zstd", "COPY | zstd -1 > /dev/null"),
    Variant("script", "csv", "zstd", "COPY | zstd -1 | upload_fileobj"),
    Variant("exportd", "csv", "zstd", "exportd CSV+zstd"),
    Variant("limit", "jsonl", label="COPY row_to_json > /dev/null"),
    Variant("script", "jsonl", label="COPY row_to_json | upload_fileobj"),
    Variant("exportd", "jsonl", label="exportd JSONL"),
    Variant("exportd", "parquet", label="exportd Parquet"),
)


def matching(variant: Variant, kind: Kind) -> str:
    """The key of the `kind` variant an exportd variant is compared with.

    Compressed CSV is compared with the same compression; JSONL with the script that has
    PostgreSQL build the JSON (`row_to_json`) but with the plain CSV COPY limit (the database's
    speed at handing out the rows); Parquet, which no shell one-liner makes, with plain CSV.
    """
    if variant.fmt == "csv":
        return Variant(kind, "csv", variant.compression).key
    if variant.fmt == "jsonl" and kind == "script":
        return Variant(kind, "jsonl").key
    return Variant(kind, "csv").key
