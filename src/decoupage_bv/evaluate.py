"""Score predicted polling-station polygons against official ones.

Figures: the share of official area given to the right BV, the spatial V-measure (homogeneity and
completeness of the area contingency table between official and predicted BVs), the share of predicted BVs
in several pieces (official ones never are), and, with held-out addresses, the share of them falling in the
polygon of their own BV (also weighted by electors when the roll has ``nb_electeurs``).

:func:`outline_leak` guards the evaluation itself: a commune outline derived from official polygons must
not carry their limits (an outline that falls apart along BV limits gives the answer away).
"""

from __future__ import annotations

import math
import re

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from . import codes, sources
from ._errors import InputError

_ID_COLUMNS = ("id_bv", "codebureauvote", "code_bureau_vote", "bureau_id", "id_bureau")


def normalise_code_bv(value) -> str | None:
    """Comparable BV code: ``'0035'``, ``'35'`` and ``35`` all give ``'35'``; letters are kept."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    v = re.sub(r"[^0-9A-Z-]", "", str(value).strip().upper())
    if v.endswith(".0") or re.fullmatch(r"\d+\.0", str(value)):
        v = str(value)[:-2]
    v = v.lstrip("0") or ("0" if v else "")
    return v or None


def bv_keys(gdf: pd.DataFrame, path: str = "polygons", commune: str | None = None) -> pd.Series:
    """``'<insee>_<code>'`` keys of a polygon layer, from ``code_insee``+``code_bv`` or an id column.

    Recognises our outputs, ``id_bv`` (``75110_35``), ``codeBureauVote`` (``29019_0076``), and a bare BV
    code column (``uniq_bdv``, ``code_bv``) when *commune* gives the INSEE code.
    """
    lower = {c.lower(): c for c in gdf.columns}
    if "code_insee" in lower and "code_bv" in lower:
        insee = gdf[lower["code_insee"]].map(codes.normalise_commune)
        code = gdf[lower["code_bv"]].map(normalise_code_bv)
    else:
        col = next((lower[c] for c in _ID_COLUMNS if c in lower), None)
        if col is not None:
            parts = gdf[col].astype(str).str.extract(r"^\s*(\d{5}|2[AB]\d{3})[_.\-]?(.*)$")
            insee, code = parts[0], parts[1].map(normalise_code_bv)
        elif commune:
            bare = next((lower[c] for c in ("uniq_bdv", "code_bv", "bureau", "numero_bureau") if c in lower), None)
            if bare is None:
                raise InputError(f"{path}: no BV code column (looked for uniq_bdv, code_bv, bureau)")
            insee = pd.Series(codes.normalise_commune(commune), index=gdf.index)
            code = gdf[bare].map(normalise_code_bv)
        else:
            raise InputError(f"{path}: no BV key: expected code_insee+code_bv, or one of {', '.join(_ID_COLUMNS)}"
                             " (or give the commune for a bare BV code)")
    key = insee.astype(str) + "_" + code.astype(str)
    return key.where(insee.notna() & code.notna())


def _read(obj, path_label, commune=None):
    gdf = obj if isinstance(obj, gpd.GeoDataFrame) else sources.read_vector(obj)
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty].copy()
    gdf["_key"] = bv_keys(gdf, path_label, commune)
    return gdf[gdf["_key"].notna()]


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def v_measure(table: pd.DataFrame) -> tuple[float, float, float]:
    """(homogeneity, completeness, V) of a contingency table of areas (rows: official, columns: predicted)."""
    n = table.to_numpy(dtype=float)
    total = n.sum()
    h_c = _entropy(n.sum(axis=1))
    h_k = _entropy(n.sum(axis=0))
    nz = n > 0
    joint = n[nz] / total
    h_c_given_k = float(-(joint * np.log(n[nz] / np.broadcast_to(n.sum(axis=0), n.shape)[nz])).sum())
    h_k_given_c = float(-(joint * np.log(n[nz] / np.broadcast_to(n.sum(axis=1)[:, None], n.shape)[nz])).sum())
    hom = 1.0 if h_c == 0 else 1 - h_c_given_k / h_c
    com = 1.0 if h_k == 0 else 1 - h_k_given_c / h_k
    v = 0.0 if hom + com == 0 else 2 * hom * com / (hom + com)
    return hom, com, v


def evaluate(predicted, official, test_addresses=None, columns: dict | None = None,
             official_commune: str | None = None, crs: str = codes.LAMBERT93) -> dict:
    """Compare *predicted* to *official* polygons (paths or GeoDataFrames); see the module docstring.

    *test_addresses*: a roll (path or canonical DataFrame, see :func:`sources.read_roll`) of addresses
    labelled with their BV, left out of the build.
    """
    pred = _read(predicted, "predicted").to_crs(crs)
    off = _read(official, "official", official_commune).to_crs(crs)
    if not len(off):
        raise InputError("official: no polygon with a BV key")
    pred = pred.dissolve("_key", as_index=False)[["_key", "geometry"]]
    off = off.dissolve("_key", as_index=False)[["_key", "geometry"]]
    off_area = float(off.area.sum())
    tree = shapely.STRtree(pred.geometry.values)
    oi, pi = tree.query(off.geometry.values, predicate="intersects")
    inter = shapely.area(shapely.intersection(off.geometry.values[oi], pred.geometry.values[pi]))
    table = pd.DataFrame({"official": off["_key"].to_numpy()[oi], "predicted": pred["_key"].to_numpy()[pi],
                          "area": inter})
    table = table[table["area"] > 0]
    right = table.loc[table["official"] == table["predicted"], "area"].sum()
    ct = table.pivot_table(index="official", columns="predicted", values="area", aggfunc="sum", fill_value=0.0)
    hom, com, v = v_measure(ct) if len(ct) else (0.0, 0.0, 0.0)
    per_bv = table.assign(right=table["official"] == table["predicted"]).groupby("official").apply(
        lambda g: g.loc[g["right"], "area"].sum() / g["area"].sum(), include_groups=False)
    result = {
        "official_bv": int(len(off)),
        "predicted_bv": int(len(pred)),
        "official_bv_matched": int(off["_key"].isin(pred["_key"]).sum()),
        "area_agreement": float(right / off_area),
        "homogeneity": hom,
        "completeness": com,
        "v_measure": v,
        "official_bv_over_90pct_right": float((per_bv > 0.9).mean()) if len(per_bv) else 0.0,
        "multipart_share": float(np.mean(shapely.get_num_geometries(pred.geometry.values) > 1)),
    }
    if test_addresses is not None:
        result.update(address_accuracy(pred, test_addresses, columns, crs, official_keys=off["_key"]))
    return result


def address_accuracy(pred: gpd.GeoDataFrame, test_addresses, columns=None, crs=codes.LAMBERT93,
                     official_keys=None) -> dict:
    """Share of labelled addresses lying in the predicted polygon of their own BV.

    With *official_keys*, also the share of them (``test_bv_unmapped``; ``test_electors_bv_unmapped`` weighted
    by electors) whose BV the official map lacks: wrong for every method, they cap the accuracies below 1.
    """
    if isinstance(test_addresses, pd.DataFrame):
        roll = test_addresses
    else:
        roll = sources.read_roll(str(test_addresses), columns=columns).rows
    lon = pd.to_numeric(roll["lon"], errors="coerce")
    lat = pd.to_numeric(roll["lat"], errors="coerce")
    ok = lon.notna() & lat.notna()
    roll = roll[ok]
    insee = roll["commune"].map(codes.normalise_commune)
    label = roll["bv"].astype(str).map(lambda r: codes.split_raw_bv(r)[1]).map(normalise_code_bv)
    key = (insee + "_" + label).to_numpy()
    pts = gpd.GeoSeries(gpd.points_from_xy(lon[ok], lat[ok]), crs="EPSG:4326").to_crs(crs)
    if "_key" not in pred:
        pred = pred.assign(_key=bv_keys(pred))
    tree = shapely.STRtree(pred.geometry.values)
    pi, gi = tree.query(pts.values, predicate="within")
    found = np.full(len(pts), None, dtype=object)
    found[pi] = pred["_key"].to_numpy()[gi]
    right = found == key
    out = {"test_addresses": int(len(pts)), "address_accuracy": float(np.mean(right)) if len(pts) else 0.0}
    unmapped = None if official_keys is None else ~np.isin(key, np.asarray(official_keys, dtype=object))
    if unmapped is not None:
        out["test_bv_unmapped"] = float(np.mean(unmapped)) if len(pts) else 0.0
    if "electors" in roll:
        electors = pd.to_numeric(roll["electors"], errors="coerce").fillna(0).to_numpy()
        total = electors.sum()
        out["electors"] = int(total)
        out["elector_accuracy"] = float((electors * right).sum() / total) if total else 0.0
        if unmapped is not None:
            out["test_electors_bv_unmapped"] = float((electors * unmapped).sum() / total) if total else 0.0
    return out


def outline_leak(outlines, official, crs: str = codes.LAMBERT93, tolerance: float = 1.0) -> pd.DataFrame:
    """Per commune outline: its pieces, and the share of the official limits inside it that it runs along.

    An honest outline follows the commune's own limit only: ``interior_limit_share`` (the length of official
    BV limits, away from the closed outer edge of the official polygons, lying within *tolerance* metres of
    the outline's boundary, over their total length) stays near 0. An outline that falls apart along BV
    limits (a raw union of official polygons with gaps between them) scores far above.
    """
    com = (outlines if isinstance(outlines, gpd.GeoDataFrame) else sources.read_vector(outlines)).to_crs(crs)
    code_col = next((c for c in com.columns if c.lower() in ("code", "code_insee", "insee_com")), None)
    if code_col is None:
        raise InputError("outlines: no commune code column (code, code_insee)")
    off = _read(official, "official").to_crs(crs)
    off["_insee"] = off["_key"].str.split("_").str[0]
    rows = []
    for code, geom in zip(com[code_col].astype(str), com.geometry.values):
        own = off.geometry.values[(off["_insee"] == code).to_numpy()]
        if not len(own):
            continue
        closed = shapely.buffer(shapely.buffer(shapely.union_all(own), 10.0), -10.0)
        interior = shapely.difference(shapely.union_all(shapely.boundary(own)),
                                      shapely.buffer(shapely.boundary(closed), 2 * tolerance))
        total = shapely.length(interior)
        along = shapely.length(shapely.intersection(interior, shapely.buffer(shapely.boundary(geom), tolerance)))
        rows.append({"code": code, "pieces": int(shapely.get_num_geometries(geom)),
                     "interior_limit_share": float(along / total) if total else 0.0})
    return pd.DataFrame(rows, columns=["code", "pieces", "interior_limit_share"])
