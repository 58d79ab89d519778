"""Turning measurements into numbers people compare: throughput, CPU per GB, ratios, targets."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from bench.procstats import MIB
from bench.variants import Measurement, matching

MB: Final = 1e6
GB: Final = 1e9
RSS_LIMIT_MIB: Final = 64
# Outside CPU (other processes, hypervisor steal) above this many cores marks a run disturbed.
DISTURBED_CORES: Final = 0.15
# exportd's CPU per GB against the script's client CPU per GB, and JSONL/Parquet against CSV.
CPU_VS_SCRIPT_MAX: Final = 1.5
CPU_VS_CSV_MAX: Final = {"jsonl": 2.0, "parquet": 3.0}
FORMAT_NAMES: Final = {"csv": "CSV", "jsonl": "JSONL", "parquet": "Parquet"}
CPU_GROUPS: Final = ("postgres", "s3", "psql", "gzip", "zstd", "uploader", "exportd")

Summary = dict[str, Any]


def summarize(m: Measurement, csv_bytes: int, cores: int) -> Summary:
    """One variant's measured and derived numbers, JSON-ready (None where not measured)."""
    out: Summary = {
        "key": m.variant.key,
        "label": m.variant.label,
        "kind": m.variant.kind,
        "format": m.variant.fmt,
        "compression": m.variant.compression,
        "status": m.status,
        "note": m.note,
    }
    if not m.ok or m.wall_s is None:
        return out
    gb = csv_bytes / GB
    client = sum(m.cpu.get(g, 0.0) for g in m.client)
    total = sum(m.cpu.values())
    out |= {
        "wall_s": m.wall_s,
        "wall_s_runs": list(m.walls) or [m.wall_s],
        "mb_s": csv_bytes / MB / m.wall_s,
        "out_bytes": m.out_bytes,
        "rows": m.rows,
        "cpu_s": dict(m.cpu),
        "cpu_s_per_gb": {g: s / gb for g, s in m.cpu.items()},
        "client_groups": list(m.client),
        "client_cpu_s": client,
        "client_cpu_s_per_gb": client / gb,
        "total_cpu_s": total,
        "total_cpu_s_per_gb": total / gb,
        "cores_used": total / m.wall_s,
        # CPU the machine spent outside the measured processes (other jobs, this benchmark's
        # own polling): when it is large, the run shared the cores and is not trustworthy.
        "other_cpu_s": m.outside_cpu,
        "steal_s": m.steal,
        # What the machine did besides: the kernel (writeback of what weed wrote, loopback
        # networking), this benchmark's own polling, and processes that came and went.
        "unattributed_cpu_s": (
            max(0.0, m.machine_cpu - total - (m.outside_cpu or 0.0))
            if m.machine_cpu is not None
            else None
        ),
        # What this variant could reach if it had the machine's cores to itself and nothing
        # else limited it: cores / CPU seconds per MB.
        "cpu_ceiling_mb_s": cores * csv_bytes / MB / total if total else None,
        "build_s": m.build_s,
    }
    if m.rss_peak is not None and m.rss_growth is not None and m.rss_idle is not None:
        out["rss_idle_mib"] = m.rss_idle / MIB
        out["rss_peak_mib"] = m.rss_peak / MIB
        out["rss_growth_mib"] = m.rss_growth / MIB
        out["rss_over_idle_mib"] = (m.rss_peak - m.rss_idle) / MIB
    return out


def add_ratios(summaries: Sequence[Summary], measurements: Sequence[Measurement]) -> None:
    """exportd ÷ matching script and ÷ matching COPY limit (throughput), and CPU ÷ script."""
    by_key = {s["key"]: s for s in summaries}
    for summary, m in zip(summaries, measurements, strict=True):
        if m.variant.kind != "exportd" or "mb_s" not in summary:
            continue
        script = by_key.get(matching(m.variant, "script"), {})
        limit = by_key.get(matching(m.variant, "limit"), {})
        summary["vs_script_key"] = script.get("key")
        summary["vs_limit_key"] = limit.get("key")
        summary["vs_script"] = _ratio(summary.get("mb_s"), script.get("mb_s"))
        summary["vs_limit"] = _ratio(summary.get("mb_s"), limit.get("mb_s"))
        summary["cpu_vs_script"] = _ratio(
            summary.get("client_cpu_s_per_gb"), script.get("client_cpu_s_per_gb")
        )


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def targets(summaries: Sequence[Summary], csv_bytes: int) -> list[Summary]:
    """The issue's targets, each with what was measured and PASS / FAIL / pending."""
    by_key = {s["key"]: s for s in summaries}
    exportd = [s for s in summaries if s["kind"] == "exportd"]
    out = [_throughput_target(s) for s in exportd]
    out.append(_csv_cpu_target(by_key.get("exportd/csv", {})))
    for fmt, limit in CPU_VS_CSV_MAX.items():
        out.append(_format_cpu_target(by_key.get(f"exportd/{fmt}", {}), by_key, fmt, limit))
    out.extend(_rss_target(s, csv_bytes) for s in exportd)
    return out


def _target(name: str, goal: str, measured: str, ok: bool | None, why: str = "") -> Summary:
    verdict = "pending" if ok is None else ("PASS" if ok else "FAIL")
    return {"target": name, "goal": goal, "measured": measured, "verdict": verdict, "why": why}


def _throughput_target(s: Summary) -> Summary:
    name = f"{s['label']}: throughput vs script"
    ratio = s.get("vs_script")
    if ratio is None:
        why = s["status"] if s["status"] != "ok" else "its script variant did not run"
        return _target(name, "≥ 1.00x", "—", None, why)
    return _target(name, "≥ 1.00x", f"{ratio:.2f}x {s['vs_script_key']}", ratio >= 1.0)


def _csv_cpu_target(s: Summary) -> Summary:
    name = "exportd CSV: CPU/GB vs script client (psql + uploader)"
    goal = f"≤ {CPU_VS_SCRIPT_MAX:.2f}x"
    ratio = s.get("cpu_vs_script")
    if ratio is None:
        why = s.get("status", "not run")
        return _target(name, goal, "—", None, "script/csv did not run" if why == "ok" else why)
    text = f"{ratio:.2f}x ({s['client_cpu_s_per_gb']:.2f} CPU-s/GB)"
    return _target(name, goal, text, ratio <= CPU_VS_SCRIPT_MAX)


def _format_cpu_target(
    s: Summary, by_key: Mapping[str, Summary], fmt: str, limit: float
) -> Summary:
    name = f"exportd {FORMAT_NAMES[fmt]}: CPU vs exportd CSV"
    csv = by_key.get("exportd/csv", {})
    ratio = _ratio(s.get("client_cpu_s"), csv.get("client_cpu_s"))
    if ratio is None:
        return _target(name, f"≤ {limit:.1f}x", "—", None, s.get("status", "not run"))
    return _target(name, f"≤ {limit:.1f}x", f"{ratio:.2f}x", ratio <= limit)


def _rss_target(s: Summary, csv_bytes: int) -> Summary:
    name = f"{s['label']}: peak RSS growth"
    goal = f"< {RSS_LIMIT_MIB} MiB"
    growth = s.get("rss_growth_mib")
    if growth is None:
        return _target(name, goal, "—", None, s["status"])
    why = "" if csv_bytes >= 0.5 * GB else "small run: meaningful with the 1 GB export"
    return _target(name, goal, f"{growth:.1f} MiB", growth < RSS_LIMIT_MIB, why)


def budget(summaries: Sequence[Summary], cores: int) -> Summary:
    """The CPU budget: what the server side costs per GB, and what that leaves for a client."""
    by_key = {s["key"]: s for s in summaries}
    pg = by_key.get("limit/csv", {}).get("cpu_s_per_gb", {}).get("postgres")
    s3 = by_key.get("script/csv", {}).get("cpu_s_per_gb", {}).get("s3")
    out: Summary = {"cores": cores, "postgres_copy_cpu_s_per_gb": pg, "s3_put_cpu_s_per_gb": s3}
    if pg is not None and s3 is not None:
        # cores CPU-s per second ÷ (CPU-s per GB) = GB per second, with a free client.
        out["free_client_ceiling_mb_s"] = cores * 1000 / (pg + s3)
    return out


def budget_lines(b: Summary, summaries: Iterable[Summary]) -> list[str]:
    cores = b["cores"]
    lines = [f"CPU budget: {cores} cores = {cores} CPU-seconds per second of wall time."]
    if "free_client_ceiling_mb_s" in b:
        lines.append(
            f"PostgreSQL COPY costs {b['postgres_copy_cpu_s_per_gb']:.2f} CPU-s/GB of CSV; "
            f"the S3 server storing it {b['s3_put_cpu_s_per_gb']:.2f} CPU-s/GB. With a client "
            f"that cost nothing, {cores} cores carry at most "
            f"{b['free_client_ceiling_mb_s']:.0f} MB/s end to end; every client CPU-s/GB "
            "comes out of the same budget."
        )
    for s in summaries:
        if s["kind"] == "exportd" and "cores_used" in s:
            bound = "CPU-bound" if s["cores_used"] >= 0.85 * cores else "not CPU-bound"
            lines.append(
                f"{s['label']}: {s['cores_used']:.2f} of {cores} cores busy ({bound}); "
                f"all processes {s['total_cpu_s_per_gb']:.2f} CPU-s/GB, "
                f"exportd {s['client_cpu_s_per_gb']:.2f}."
            )
    return lines


# --- tables ---------------------------------------------------------------------------------

COLUMNS: Final = (
    ("variant", "label", "{}"),
    ("status", "status", "{}"),
    ("wall s", "wall_s", "{:.2f}"),
    ("MB/s", "mb_s", "{:.1f}"),
    ("out MB", "out_mb", "{:.1f}"),
    ("pg CPU s", "pg_cpu", "{:.2f}"),
    ("s3 CPU s", "s3_cpu", "{:.2f}"),
    ("client CPU s", "client_cpu_s", "{:.2f}"),
    ("client s/GB", "client_cpu_s_per_gb", "{:.2f}"),
    ("total CPU s", "total_cpu_s", "{:.2f}"),
    ("cores", "cores_used", "{:.2f}"),
    ("other CPU s", "other_cpu_s", "{:.2f}"),
    ("ceiling MB/s", "cpu_ceiling_mb_s", "{:.0f}"),
    ("RSS Δ MiB", "rss_growth_mib", "{:.1f}"),
    ("RSS>idle MiB", "rss_over_idle_mib", "{:.1f}"),
    ("÷script", "vs_script", "{:.2f}x"),
    ("÷limit", "vs_limit", "{:.2f}x"),
)


def _cells(s: Summary) -> list[str]:
    cpu = s.get("cpu_s", {})
    values = s | {
        "out_mb": s["out_bytes"] / MB if s.get("out_bytes") is not None else None,
        "pg_cpu": cpu.get("postgres"),
        "s3_cpu": cpu.get("s3"),
    }
    return [fmt.format(values[k]) if values.get(k) is not None else "" for _, k, fmt in COLUMNS]


def text_table(summaries: Sequence[Summary]) -> str:
    rows = [[title for title, _, _ in COLUMNS], *(_cells(s) for s in summaries)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = []
    for n, row in enumerate(rows):
        parts = [
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def targets_text(items: Sequence[Summary]) -> str:
    width = max(len(t["target"]) for t in items)
    return "\n".join(
        f"{t['verdict']:<8} {t['target']:<{width}}  {t['goal']:<9} {t['measured']}"
        + (f"  ({t['why']})" if t["why"] else "")
        for t in items
    )


def cpu_breakdown(summaries: Sequence[Summary]) -> str:
    header = ["variant", *(f"{g} s/GB" for g in CPU_GROUPS), "total s/GB"]
    rows = []
    for s in summaries:
        if "cpu_s_per_gb" not in s:
            continue
        per_gb = s["cpu_s_per_gb"]
        cells = [f"{per_gb[g]:.2f}" if g in per_gb else "" for g in CPU_GROUPS]
        rows.append([s["label"], *cells, f"{s['total_cpu_s_per_gb']:.2f}"])
    return markdown_table(header, rows)


def notes(summaries: Sequence[Summary]) -> list[str]:
    out = [f"{s['label']}: {s['status']}: {s['note']}" for s in summaries if s["note"]]
    return out + [line for s in summaries if (line := _disturbed(s))]


def _disturbed(s: Summary) -> str:
    """A warning when other processes (or the hypervisor) took a real share of the cores."""
    wall, other, steal = s.get("wall_s"), s.get("other_cpu_s"), s.get("steal_s")
    if not wall or other is None:
        return ""
    other_cores, steal_cores = other / wall, (steal or 0.0) / wall
    if other_cores < DISTURBED_CORES and steal_cores < DISTURBED_CORES:
        return ""
    return (
        f"{s['label']}: disturbed: processes outside the benchmark used {other_cores:.2f} "
        f"cores and the hypervisor stole {steal_cores:.2f} during this run"
    )


LEGEND: Final = (
    "MB/s is uncompressed CSV-equivalent bytes per second of wall time (POST to `succeeded` "
    "for exportd). CPU is user + system seconds: `pg` = every PostgreSQL process, `s3` = "
    "weed, `client` = psql + compressor + uploader (limits, scripts) or the exportd process. "
    "`cores` = all CPU ÷ wall; `other` = CPU of user-space processes that are not part of the "
    "benchmark, in the same span (other jobs: large values mean a disturbed run; the kernel's "
    "share is `unattributed_cpu_s` in the JSON); `ceiling` = what the "
    "machine's cores could carry at this CPU cost per MB. `RSS Δ` = exportd's peak RSS "
    "during the export minus its RSS just before the POST; `RSS>idle` = that peak minus the "
    "service's RSS after start (it includes what earlier exports, run in table order, left "
    "allocated). With --repeat, the run with the median wall time is shown, and the RSS "
    "columns are the largest over the runs. `÷script` and `÷limit` are exportd's throughput "
    "over the matching variant's."
)


def markdown(result: Summary) -> str:
    meta = result["meta"]
    summaries = result["variants"]
    parts = [
        f"# exportd export benchmark: {meta['rows']:,} rows, "
        f"{result['csv_bytes'] / MB:,.0f} MB of CSV",
        "",
        "\n".join(f"- {k}: {v}" for k, v in meta.items()),
        "",
        LEGEND,
        "",
        markdown_table([title for title, _, _ in COLUMNS], (_cells(s) for s in summaries)),
        "",
        "## Targets",
        "",
        markdown_table(
            ["verdict", "target", "goal", "measured", "note"],
            (
                [t["verdict"], t["target"], t["goal"], t["measured"], t["why"]]
                for t in result["targets"]
            ),
        ),
        "",
        "## CPU budget",
        "",
        *(f"- {line}" for line in budget_lines(result["budget"], summaries)),
        "",
        "## CPU per GB of CSV, by process",
        "",
        cpu_breakdown(summaries),
    ]
    if notes(summaries):
        parts += ["", "## Notes", "", *(f"- {n}" for n in notes(summaries))]
    return "\n".join(parts) + "\n"


def _rounded(value: Any) -> Any:
    """Floats to 4 decimals, all the way down (CPU times are only good to 10 ms anyway)."""
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value


def write(result: Summary, out_dir: Path, stem: str) -> tuple[Path, Path]:
    """Write `stem`.json and `stem`.md into `out_dir` (each via a .tmp file and a rename)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = (out_dir / f"{stem}.json", out_dir / f"{stem}.md")
    texts = (json.dumps(_rounded(result), indent=2) + "\n", markdown(result))
    for path, text in zip(paths, texts, strict=True):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return paths
