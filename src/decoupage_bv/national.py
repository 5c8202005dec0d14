"""Many départements in one run: the national roll read once and cut per département, one build per
département (memory grows with the largest one, not with the nation), each cached under a key of its inputs
and parameters so that an interrupted run starts again where it stopped, then one layer and one report.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace

import geopandas as gpd
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from . import __version__, codes, sources
from ._errors import DecoupageError, InputError
from .fetch import streets_unavailable
from .outputs import OutputSet
from .pipeline import BuildResult, build
from .settings import Params

#: Every département of the REU: metropolitan 01–95 with 2A/2B, overseas 971–974 and 976, and
#: Saint-Pierre-et-Miquelon (975), which votes in polling stations too.
ALL_DEPTS = tuple([f"{i:02d}" for i in range(1, 20)] + ["2A", "2B"] + [f"{i:02d}" for i in range(21, 96)]
                  + [str(i) for i in range(971, 977)])


def parse_depts(value: str) -> list[str]:
    """``'all'`` or a comma-separated list (``'29,31,2A,974'``) as canonical codes, in the national order."""
    if value.strip().lower() in ("all", "france", "*"):
        return list(ALL_DEPTS)
    out = {codes.normalise_dept(v) for v in value.split(",") if v.strip()}
    if not out:
        raise InputError("--dept: no département given")
    return [d for d in ALL_DEPTS if d in out]


def split_roll(path: str, depts: list[str], folder: str, columns: dict | None = None) -> dict:
    """Cut a national address table into one canonical CSV per département in one pass: ``{dept: path}``.

    The cut is kept under *folder*, keyed by the source's size and modification time, and reused.
    """
    st = os.stat(path)
    key = hashlib.sha256(f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}|{columns}".encode()).hexdigest()[:16]
    where = os.path.join(folder, f"{os.path.splitext(os.path.basename(path))[0]}.{key}")
    done = os.path.join(where, "done.json")
    if os.path.exists(done):
        with open(done, encoding="utf-8") as fh:
            found = json.load(fh)
        return {d: os.path.join(where, f"{d}.csv") for d in depts if d in found}
    shutil.rmtree(where, ignore_errors=True)  # a cut stopped half-way is started again, not appended to
    os.makedirs(where)
    chunks, found_cols = sources.roll_chunks(path, columns)
    if "commune" not in found_cols:
        raise InputError(f"{path}: a roll of several départements needs a commune code column")
    wanted, found = set(depts), set()
    for chunk in chunks:  # memory: one chunk at a time, whatever the size of the file
        chunk = chunk.rename(columns={v: k for k, v in found_cols.items()})[list(found_cols)]
        dept = sources.dept_of_rows(chunk["commune"])
        for d in sorted(set(dept) & wanted):
            # Arrow writes the text several times faster than pandas (every field quoted; the same values read
            # back)
            with open(os.path.join(where, f"{d}.csv"), "ab") as fh:
                pacsv.write_csv(pa.Table.from_pandas(chunk[dept == d], preserve_index=False), fh,
                                pacsv.WriteOptions(include_header=d not in found))
            found.add(d)
    found = sorted(found)
    with open(done, "w", encoding="utf-8") as fh:
        json.dump(found, fh)
    return {d: os.path.join(where, f"{d}.csv") for d in found}


def cut_columns(path: str) -> dict:
    """The column roles of a département's cut (:func:`split_roll` names its columns by role)."""
    return {c: c for c in pd.read_csv(path, nrows=0).columns if c in sources.ROLL_COLUMNS}


def _file_digest(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _frame_digest(gdf: gpd.GeoDataFrame) -> str:
    h = hashlib.sha256()
    h.update(pd.util.hash_pandas_object(gdf.drop(columns=gdf.geometry.name), index=False).to_numpy().tobytes())
    for wkb in gdf.geometry.to_wkb():
        h.update(wkb)
    return h.hexdigest()


def build_departements(depts: list[str], addresses: str, communes, circonscriptions=None,
                       columns: dict | None = None, params: Params = Params(), cache_dir: str = "data/out/.cache",
                       progress: bool = False, streets=None) -> BuildResult:
    """Build each département of *depts* from a national (or multi-département) roll and outlines.

    Each département's result is cached in *cache_dir* under the hash of its roll rows, outlines,
    constituencies, streets, parameters and version: a run that stops half-way starts again where it
    stopped. The result is the concatenation of the per-département builds (in WGS84 when overseas
    départements, with their own CRS, are among them), and one report with every département's.

    *streets*: ``{dept: line file}``, or a function ``(dept, roll of the département) → line file`` (such as
    :func:`fetch.fetch_streets` with its cache) called once per département; when it fails, that
    département is built without street lines and its report says why.
    """
    os.makedirs(cache_dir, exist_ok=True)
    cut = split_roll(addresses, depts, os.path.join(cache_dir, "rolls"), columns)
    com_all = communes if isinstance(communes, gpd.GeoDataFrame) else sources.read_communes(communes)
    com_all = com_all.assign(_dept=com_all["code"].map(codes.dept_of_commune))
    circ = sources.read_circonscriptions(circonscriptions) if isinstance(circonscriptions, str) else circonscriptions
    circ_digest = _file_digest(circonscriptions) if isinstance(circonscriptions, str) else None
    tasks, missing = [], []
    for d in depts:
        com = com_all[com_all["_dept"] == d].drop(columns="_dept")
        if d not in cut or not len(com):
            missing.append({"departement": d, "reason": "no address row" if d not in cut else "no commune outline"})
            continue
        street, note = _streets_of(streets, d, cut[d])
        key = hashlib.sha256(json.dumps({
            "version": __version__, "params": params.as_dict(), "roll": _file_digest(cut[d]),
            "communes": _frame_digest(com), "circ": circ_digest, "streets": _file_digest(street) if street else None,
            "columns": sorted((columns or {}).items())}, sort_keys=True).encode()).hexdigest()[:20]
        tasks.append((d, cut[d], com, circ, params, street, note, os.path.join(cache_dir, f"{d}.{key}")))
    bar = None
    if progress:
        from ._progress import bar as progress_bar

        bar = progress_bar(total=len(depts), desc="départements", unit="dépt")
        bar.update(len(missing))
    done = {}
    jobs = max(1, min(params.jobs or os.cpu_count() or 1, len(tasks)))
    if jobs == 1:
        for t in tasks:
            done[t[0]] = _build_one(t)
            if bar:
                bar.update(1)
    else:  # départements side by side, each on one core: memory follows the largest ones, not the nation
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(_build_one, (*t[:4], replace(t[4], jobs=1), *t[5:])) for t in tasks]
            for f in as_completed(futures):
                d, gdf, report = f.result()
                done[d] = (d, gdf, report)
                if bar:
                    bar.update(1)
    if bar:
        bar.close()
    order = [t[0] for t in tasks if done[t[0]][1] is not None]
    missing += [{"departement": t[0], "reason": done[t[0]][2]["error"]} for t in tasks if done[t[0]][1] is None]
    missing.sort(key=lambda m: ALL_DEPTS.index(m["departement"]) if m["departement"] in ALL_DEPTS else 999)
    parts = [done[d][1] for d in order]
    reports = {d: done[d][2] for d in order}
    if not parts:
        raise InputError(f"{addresses}: no département of {', '.join(depts[:5])}… could be built")
    if len({p.crs.to_epsg() for p in parts}) > 1:
        parts = [p.to_crs("EPSG:4326") for p in parts]
    polygons = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=parts[0].crs)
    return BuildResult(polygons=polygons, report=_national_report(depts, reports, missing, params))


def _build_one(task) -> tuple:
    """One département: from its cache entry when there is one, else built and cached."""
    d, roll, com, circ, params, street, note, stem = task
    poly_path, rep_path = stem + ".parquet", stem + ".json"
    if os.path.exists(poly_path) and os.path.exists(rep_path):
        with open(rep_path, encoding="utf-8") as fh:
            report = json.load(fh)
        return d, gpd.read_parquet(poly_path).set_crs(report["crs"], allow_override=True), report
    try:
        res = build(roll, com, dept=d, circonscriptions=circ, params=params, streets=street, streets_note=note,
                    columns=cut_columns(roll))
    except InputError as exc:  # one bad département does not stop the nation: it is reported
        return d, None, {"error": str(exc)}
    except Exception as exc:  # noqa: BLE001 — nor does a fault of ours: reported, for the others to go on
        return d, None, {"error": f"internal error, please report it: {type(exc).__name__}: {exc}"}
    with OutputSet() as out:
        out.polygons(res.polygons, poly_path)
        out.json(res.report, rep_path)
    return d, res.polygons, res.report


def _streets_of(streets, dept: str, roll: str) -> tuple:
    """The street line file of *dept* and, when there is none, why (see :func:`build_departements`)."""
    if not callable(streets):
        return (streets or {}).get(dept), None
    try:
        return streets(dept, roll), None
    except DecoupageError as exc:
        return None, streets_unavailable(exc)


def _national_report(depts, reports: dict, missing: list, params: Params) -> dict:
    counts: dict = {}
    for rep in reports.values():
        for k, v in rep["counts"].items():
            counts[k] = counts.get(k, 0) + v
    return {
        "decoupage_bv": __version__,
        "departements_asked": depts,
        "departements_built": sorted(reports, key=ALL_DEPTS.index),
        "departements_missing": missing,
        "parameters": params.as_dict(),
        "counts": counts,
        "bv_not_drawn": [dict(b, departement=d) for d, rep in reports.items() for b in rep["bv_not_drawn"]],
        "bv_multipart": [dict(b, departement=d) for d, rep in reports.items() for b in rep.get("bv_multipart", [])],
        "per_departement": reports,
    }
