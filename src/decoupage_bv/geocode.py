"""Geocode raw address lists through a BAN-compatible ``/search/csv/`` endpoint.

The national BAN API (``api-adresse.data.gouv.fr``) and a self-hosted addok with the ``addok-csv`` plugin
speak the same protocol: a CSV posted in chunks, answered with ``latitude``, ``longitude``, ``result_score``,
``result_type``, ``result_citycode``… Rows found with a low score, only at the commune (``municipality``),
or in another commune than expected are flagged in ``geo_reject`` and left out of tessellation by ``build``.
"""

from __future__ import annotations

import io
import time

import numpy as np
import pandas as pd
from . import codes
from ._errors import DownloadError, InputError
from ._http import request

BAN_URL = "https://api-adresse.data.gouv.fr"
RESULT_COLUMNS = ["latitude", "longitude", "result_label", "result_score", "result_type", "result_id",
                  "result_housenumber", "result_name", "result_street", "result_postcode", "result_city",
                  "result_citycode"]


def geocode(df: pd.DataFrame, columns: list[str], url: str = BAN_URL, postcode: str | None = None,
            citycode: str | None = None, chunk_rows: int = 2000, min_interval: float = 0.2, retries: int = 4,
            backoff: float = 1.0, timeout: float = 300, progress: bool = False) -> pd.DataFrame:
    """Geocode *df* on the concatenation of *columns*; returns *df* with the ``result_*`` columns added.

    *postcode* / *citycode* name columns used as filters by the geocoder. Chunks of *chunk_rows* are posted
    at most every *min_interval* seconds, retried with exponential backoff on 429/5xx and lost connections.
    """
    missing = [c for c in columns + [c for c in (postcode, citycode) if c] if c not in df.columns]
    if missing:
        raise InputError(f"geocode: column(s) {missing} not found; columns are {list(df.columns)}")
    endpoint = url.rstrip("/") + "/search/csv/"
    form = [("columns", c) for c in columns]
    if postcode:
        form.append(("postcode", postcode))
    if citycode:
        form.append(("citycode", citycode))
    send = [*columns, *[c for c in (postcode, citycode) if c and c not in columns]]
    out = []
    bar = None
    if progress:
        from ._progress import bar as progress_bar

        bar = progress_bar(total=len(df), unit="row", desc="geocoding")
    last_post = 0.0
    for start in range(0, len(df), chunk_rows):
        chunk = df.iloc[start:start + chunk_rows]
        payload = chunk[send].fillna("").astype(str).assign(_rowid=np.arange(start, start + len(chunk)))
        wait = min_interval - (time.monotonic() - last_post)
        if wait > 0:
            time.sleep(wait)
        last_post = time.monotonic()
        text = request("POST", endpoint, retries, backoff, timeout, parse=lambda r: r.content.decode("utf-8-sig"),
                       files={"data": ("chunk.csv", payload.to_csv(index=False).encode("utf-8"), "text/csv")},
                       data=form)
        got = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        if "_rowid" not in got or len(got) != len(chunk):
            raise DownloadError(f"{endpoint}: answer of {len(got)} rows for a chunk of {len(chunk)}")
        out.append(got)
        if bar:
            bar.update(len(chunk))
    if bar:
        bar.close()
    res = pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=["_rowid"])
    res = res.set_index(res["_rowid"].astype(int)).sort_index()
    result = df.reset_index(drop=True).copy()
    for c in RESULT_COLUMNS:
        result[c] = res[c].to_numpy() if c in res else ""
    return result


def flag(df: pd.DataFrame, min_score: float = 0.5, expected_citycode: pd.Series | None = None) -> pd.Series:
    """Why each geocoded row must not seed a tessellation ('' when it may): not_found, low_score,
    municipality, other_commune."""
    score = pd.to_numeric(df["result_score"], errors="coerce")
    reason = pd.Series("", index=df.index, dtype=object)
    reason[score.isna() | (df["result_type"].fillna("") == "")] = "not_found"
    reason[(reason == "") & (score < min_score)] = "low_score"
    reason[(reason == "") & df["result_type"].isin(["municipality", "city", "town"])] = "municipality"
    if expected_citycode is not None:
        exp = expected_citycode.map(codes.normalise_commune)
        got = df["result_citycode"].map(codes.normalise_commune)
        other = (reason == "") & exp.notna() & (exp != got)
        reason[other] = "other_commune"
    return reason


#: Roll column roles of a file written by :func:`geocode_file`, for :func:`sources.read_roll`.
GEOCODED_ROLES = {"lon": "longitude", "lat": "latitude", "geo_type": "result_type", "geo_score": "result_score",
                  "citycode": "result_citycode"}


WEAK_TYPES = ("municipality", "locality", "street")


def regeocode_weak(df: pd.DataFrame, columns: list[str], url: str = BAN_URL, citycode: str | None = None,
                   weak_types=WEAK_TYPES, min_score: float = 0.5, chunk_rows: int = 2000,
                   progress: bool = False) -> tuple[pd.DataFrame, int]:
    """Re-geocode REU rows whose ``geo_type`` is weak; a row takes the new position when the answer is usable
    and more precise. Returns (table, rows improved); REU columns keep their names."""
    rank = {"housenumber": 4, "interpolation": 3, "street": 2, "locality": 1, "municipality": 0}
    weak = df["geo_type"].fillna("").isin(weak_types).to_numpy()
    out = df.copy()
    if not weak.any():
        return out, 0
    # the expected commune checks answers afterwards (addok-csv 1.1 fails on a per-row citycode filter)
    sub = geocode(df[weak], columns, url=url, chunk_rows=chunk_rows, progress=progress)
    ok = (flag(sub, min_score, sub[citycode] if citycode else None) == "").to_numpy()
    better = ok & (sub["result_type"].map(rank).fillna(-1).to_numpy()
                   > df.loc[weak, "geo_type"].map(rank).fillna(-1).to_numpy())
    idx = np.flatnonzero(weak)[better]
    out.loc[out.index[idx], ["longitude", "latitude", "geo_type", "geo_score"]] = \
        sub.loc[better, ["longitude", "latitude", "result_type", "result_score"]].to_numpy()
    return out, int(better.sum())


def geocode_file(path: str, columns: list[str], output: str, url: str = BAN_URL, postcode: str | None = None,
                 citycode: str | None = None, min_score: float = 0.5, chunk_rows: int = 2000,
                 progress: bool = True, only_weak: bool = False) -> dict:
    """Geocode a CSV (any separator, UTF-8 or Latin-1) into *output* with ``result_*`` and ``geo_reject``
    columns; returns counts of rows by ``geo_reject`` reason ('' = usable).

    With *only_weak*, the file is a REU address table: only rows with a weak ``geo_type`` are sent, and
    improved rows get new ``longitude``/``latitude``/``geo_type``/``geo_score`` (see :func:`regeocode_weak`).
    """
    from .outputs import write_csv
    from .sources import read_table

    df = read_table(path)
    if only_weak:
        for c in ("geo_type", "longitude", "latitude", "geo_score"):
            if c not in df.columns:
                raise InputError(f"{path}: no {c} column (a REU address table is expected with --only-weak)")
        out, improved = regeocode_weak(df, list(columns), url=url, citycode=citycode, min_score=min_score,
                                       chunk_rows=chunk_rows, progress=progress)
        write_csv(out, output)
        return {"improved": improved, "weak": int(df["geo_type"].isin(WEAK_TYPES).sum())}
    df = df.drop(columns=[c for c in RESULT_COLUMNS if c in df.columns])
    got = geocode(df, list(columns), url=url, postcode=postcode, citycode=citycode, chunk_rows=chunk_rows,
                  progress=progress)
    got["geo_reject"] = flag(got, min_score, got[citycode] if citycode else None)
    write_csv(got, output)
    return got["geo_reject"].value_counts().sort_index().to_dict()
