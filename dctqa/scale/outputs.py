"""The output folder of a ``score-many`` run, and its resume check.

Layout of ``DIR``:

- ``logs/<key>.json``: one libvmaf-style log per scored pair (:func:`dctqa.log.build_log`),
  its ``params.scale`` holding the input stamps and options the resume check compares;
- ``pairs/<key>.parquet``: that pair's rows of ``frames.parquet``;
- ``frames.parquet``: one row per scored frame pair of the run's pairs, in manifest order;
- ``summary.csv``: one row per scored pair (pooled statistics); ``errors.csv``: one row per
  pair that could not be scored.

A pair's two files are written together, all or none (:class:`dctqa.fileio.OutputSet`), the
moment its last segment is scored, so an interrupted run keeps every finished pair. The three
tables are rebuilt from the pair files at the end of every run (also an interrupted one):
a rerun never duplicates a row.
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

from ..constants import METRIC_VERSION
from ..fileio import OutputSet, check_output_dir, strict_json
from ..log import build_log, csv_text
from .manifest import Pair
from .worker import PairPlan, SegmentResult, input_stamp

SUMMARY_STATS = ("mean", "min", "max", "harmonic_mean", "median", "p95", "undefined_frames")


def _stamps(pair: Pair) -> dict:
    return {"ref": input_stamp(pair.ref_path) if pair.ref_path else {}, "dist": input_stamp(pair.dist_path)}


class RunOutputs:
    """The files of one run in ``out_dir``. ``run_key``: the options and metric identity
    that decide the numbers (a pair logged with another key is scored again)."""

    def __init__(self, out_dir: str | os.PathLike, run_key: dict, column: str = "dctqa") -> None:
        self.dir = check_output_dir(out_dir)
        self.column = column  # dctqa, or dctqa_nr for a no-reference run
        self.run_key = dict(run_key)
        self.summary: dict[str, dict] = {}
        self.errors: dict[str, dict] = {}
        self.implementation = None

    def log_path(self, pair: Pair) -> Path:
        return self.dir / "logs" / f"{pair.key}.json"

    def part_path(self, pair: Pair) -> Path:
        return self.dir / "pairs" / f"{pair.key}.parquet"

    def resume(self, pair: Pair) -> bool:
        """``True`` (and its summary row is kept) when ``pair`` was scored by an earlier run of the
        same options from the same inputs (size and mtime) and both its files are complete."""
        import json

        try:
            log = json.loads(self.log_path(pair).read_text(encoding="utf-8"))
            scale = log["params"]["scale"]
            if scale["run"] != self.run_key or scale["inputs"] != _stamps(pair) or not scale["inputs"]["dist"]:
                return False
            import pyarrow.parquet as pq

            if pq.read_metadata(self.part_path(pair)).num_rows != len(log["frames"]):
                return False
        except (OSError, ValueError, KeyError, TypeError):  # absent, partial or foreign: score again
            return False
        self.summary[pair.key] = self._summary_row(pair, log)
        return True

    def write_pair(self, pair: Pair, plan: PairPlan, results: list[SegmentResult], params: dict) -> None:
        """Write the log and rows of a fully scored pair (``results``: every segment, any order)."""
        results = sorted(results, key=lambda r: r.start)
        qk = np.concatenate([r.qk for r in results])
        numbers = np.concatenate([r.numbers for r in results])
        q = qk.mean(axis=1)
        params = {**params, "reference": pair.ref, "distorted": pair.dist,
                  "reference_frames": plan.ref_index.frames if plan.ref_index else None,
                  "distorted_frames": plan.dist_index.frames if plan.dist_index else None,
                  "notes": plan.notes, "scale": {"run": self.run_key, "inputs": _stamps(pair)}}
        per_filter = bool(self.run_key.get("per_filter"))
        log = build_log(q, numbers, params, qk if per_filter else None, metric=self.column)
        table = frame_table(pair, numbers, q, qk if per_filter else None, params["implementation"], self.column)
        with OutputSet() as out:
            out.write_text(self.log_path(pair), strict_json(log, indent=2) + "\n")
            with out.staged(self.part_path(pair)) as tmp:
                import pyarrow.parquet as pq

                pq.write_table(table, tmp)
        self.summary[pair.key] = self._summary_row(pair, log)

    def record_error(self, pair: Pair, stage: str, message: str) -> None:
        """``pair`` could not be scored (``stage``: plan or score)."""
        self.summary.pop(pair.key, None)
        self.errors[pair.key] = {"ref": pair.ref, "dist": pair.dist, **pair.extra, "stage": stage, "error": message}

    def _summary_row(self, pair: Pair, log: dict) -> dict:
        p, pool = log["params"], log["pooled_metrics"][self.column]
        return {"ref": pair.ref, "dist": pair.dist, **pair.extra, "frames": len(log["frames"]),
                **{k: pool[k] for k in SUMMARY_STATS}, "implementation": p.get("implementation"),
                "metric_version": p.get("metric_version", METRIC_VERSION),
                "reference_frames": p.get("reference_frames"), "distorted_frames": p.get("distorted_frames"),
                "notes": "; ".join(p.get("notes") or []), "log": f"logs/{pair.key}.json"}

    def finish(self, pairs: list[Pair]) -> None:
        """Write ``frames.parquet``, ``summary.csv`` and ``errors.csv`` (all or none) for the
        pairs scored (in this run or a resumed one), in manifest order."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        done = [p for p in pairs if p.key in self.summary]
        tables = [pq.read_table(self.part_path(p)) for p in done]
        with OutputSet() as out:
            with out.staged(self.dir / "frames.parquet") as tmp:
                table = pa.concat_tables(tables, promote_options="default") if tables else empty_table(self.column)
                pq.write_table(table, tmp)
            out.write_text(self.dir / "summary.csv", _csv([self.summary[p.key] for p in done], _header(pairs, "s")))
            errs = [self.errors[p.key] for p in pairs if p.key in self.errors]
            out.write_text(self.dir / "errors.csv", _csv(errs, _header(pairs, "e")))


def _header(pairs: list[Pair], which: str) -> list[str]:
    extra = list(pairs[0].extra) if pairs else []
    if which == "e":
        return ["ref", "dist", *extra, "stage", "error"]
    return ["ref", "dist", *extra, "frames", *SUMMARY_STATS, "implementation", "metric_version",
            "reference_frames", "distorted_frames", "notes", "log"]


def _csv(rows: list[dict], header: list[str]) -> str:
    if rows:
        return csv_text(rows)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow(header)
    return buf.getvalue()


def frame_table(pair: Pair, numbers: np.ndarray, q: np.ndarray, qk: np.ndarray | None, implementation: str,
                column: str = "dctqa"):
    """The rows of ``frames.parquet`` for one pair (a pyarrow Table); ``column``: the value's name."""
    import pyarrow as pa

    n = len(q)
    cols = {"ref": pa.array([pair.ref] * n, pa.string()), "dist": pa.array([pair.dist] * n, pa.string())}
    cols.update({k: pa.array([v] * n, pa.string()) for k, v in pair.extra.items()})
    cols.update({"frame": pa.array(numbers, pa.int64()), column: pa.array(q, pa.float64()),
                 "implementation": pa.array([implementation] * n, pa.string()),
                 "metric_version": pa.array([METRIC_VERSION] * n, pa.int64())})
    if qk is not None:
        cols.update({f"q_{k}": pa.array(qk[:, k], pa.float64()) for k in range(qk.shape[1])})
    return pa.table(cols)


def empty_table(column: str = "dctqa"):
    """``frames.parquet`` of a run that scored nothing: the columns, no row."""
    import pyarrow as pa

    return pa.table({"ref": pa.array([], pa.string()), "dist": pa.array([], pa.string()),
                     "frame": pa.array([], pa.int64()), column: pa.array([], pa.float64()),
                     "implementation": pa.array([], pa.string()), "metric_version": pa.array([], pa.int64())})
