"""Turn tessellated pieces into the published table: one feature per BV with ids, counts and flags.

Also draws the communes that could not be split (no usable address, not in the roll) and lists every BV
that has no polygon of its own, with its reason.
"""

from __future__ import annotations

from collections import Counter

import geopandas as gpd
import numpy as np
import shapely

from . import codes
from .points import Points
from .sources import Circonscriptions

COLUMNS = ["code_insee", "nom_commune", "code_bv", "id_bv", "bvu", "circonscription", "id_brut_bv_reu",
           "n_adresses", "n_points", "quality"]

#: Shapefile names (10 characters at most) of the published columns.
SHAPEFILE_FIELDS = {
    "code_insee": "code_insee", "nom_commune": "nom_comm", "code_bv": "code_bv", "id_bv": "id_bv", "bvu": "bvu",
    "circonscription": "circo", "id_brut_bv_reu": "id_brut", "n_adresses": "n_adresses", "n_points": "n_points",
    "quality": "quality",
}


def _reason(counter: Counter | None, n_rows: int) -> str:
    if not counter:
        return "no usable address"
    main = ", ".join(f"{k}: {v}" for k, v in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))
    return f"no usable address (of {n_rows} rows: {main})"


def assemble(points: Points, pieces: dict, communes: gpd.GeoDataFrame,
             circonscriptions: Circonscriptions | None = None) -> tuple[gpd.GeoDataFrame, list]:
    """Build the output GeoDataFrame (in the points' metric CRS) and the list of BVs not drawn."""
    names = dict(zip(communes["code"], communes["nom"]))
    unit_geom = dict(zip(points.units["unit"], points.units.geometry.values))
    unit_name = dict(zip(points.units["unit"], points.units["nom"]))
    table = points.bvs
    # row access by BV index through plain lists: .loc, iterrows and groupby cost more than the whole loop
    fields = {c: table[c].tolist() for c in ("code_insee", "id_brut_bv_reu", "code_bv", "code_note", "n_adresses",
                                              "n_rows", "n_points")}
    bvs = {b: {c: v[i] for c, v in fields.items()} | {"bv": b} for i, b in enumerate(table["bv"].tolist())}
    rows, not_drawn = [], []
    by_unit: dict = {}
    for b, u in zip(table["bv"].tolist(), table["unit"].tolist()):
        by_unit.setdefault(u, []).append(b)
    for unit in sorted(unit_geom):
        drawn = pieces.get(unit, {})
        unit_bvs = by_unit.get(unit)
        if unit_bvs is None:
            rows.append(_row(unit, names.get(unit, unit_name[unit]), None, unit_geom[unit], ["commune_not_in_roll"]))
            continue
        whole = len(drawn) == 1
        for b in sorted(drawn):
            flags = []
            r = bvs[b]
            if whole:
                flags.append("whole_commune")
            elif r["n_points"] < 3:
                flags.append("few_points")
            if r["code_note"]:
                flags.append(f"code_bv_{r['code_note']}")
            if drawn[b].geom_type == "MultiPolygon":
                flags.append("multipart")
            rows.append(_row(r["code_insee"], names.get(r["code_insee"], unit_name[unit]), r, drawn[b], flags))
        missing = [bvs[b] for b in unit_bvs if b not in drawn]
        if not drawn and len(unit_bvs) == 1:
            r = bvs[unit_bvs[0]]
            flags = ["no_usable_address"] + ([f"code_bv_{r['code_note']}"] if r["code_note"] else [])
            rows.append(_row(r["code_insee"], names.get(r["code_insee"], unit_name[unit]), r, unit_geom[unit], flags))
            continue
        if not drawn:
            rows.append(_row(unit, names.get(unit, unit_name[unit]), None, unit_geom[unit], ["no_usable_address"]))
        for r in missing:
            reason = _reason(points.bv_drops.get(int(r["bv"])), int(r["n_rows"]))
            if r["n_points"] > 0:
                reason = "its cells fall outside the commune outline"
            not_drawn.append({"code_insee": r["code_insee"], "id_brut_bv_reu": r["id_brut_bv_reu"],
                              "code_bv": r["code_bv"], "n_adresses": int(r["n_adresses"]), "reason": reason})
    gdf = gpd.GeoDataFrame(rows, columns=COLUMNS + ["geometry"], geometry="geometry", crs=points.crs)
    if "repair" in communes:
        repaired = set(communes.loc[communes["repair"] != "", "code"])
        hit = gdf["code_insee"].isin(repaired) | gdf["code_insee"].map(
            lambda c: codes.arrondissement_parent(c) in repaired)
        gdf.loc[hit, "quality"] = [",".join([q, "outline_repaired"]) if q else "outline_repaired"
                                   for q in gdf.loc[hit, "quality"]]
    gdf = _add_circonscriptions(gdf, circonscriptions)
    gdf = gdf.sort_values(["code_insee", "code_bv"], na_position="first", kind="stable").reset_index(drop=True)
    gdf["quality"] = gdf["quality"].where(gdf["quality"] != "", "ok")
    not_drawn.sort(key=lambda d: (d["code_insee"], str(d["code_bv"]), d["id_brut_bv_reu"]))
    return gdf, not_drawn


def _row(code_insee, nom, r, geom, flags):
    if r is None:
        return [code_insee, nom, None, None, None, None, None, 0, 0, ",".join(flags), geom]
    code_bv = r["code_bv"]
    return [code_insee, nom, code_bv, f"{code_insee}_{code_bv}", f"{code_insee}.{code_bv}", None,
            r["id_brut_bv_reu"], int(r["n_adresses"]), int(r["n_points"]), ",".join(flags), geom]


def _add_circonscriptions(gdf: gpd.GeoDataFrame, circ: Circonscriptions | None) -> gpd.GeoDataFrame:
    """A BV's constituency: its commune's when the table gives one, else the polygon covering most of it."""
    if circ is None or len(gdf) == 0:
        return gdf
    out = [None] * len(gdf)
    todo = []
    for i, code in enumerate(gdf["code_insee"]):
        labels = None
        if circ.by_commune:
            labels = circ.by_commune.get(code) or circ.by_commune.get(codes.arrondissement_parent(code) or "")
        if labels and len(labels) == 1:
            out[i] = labels[0]
        else:
            todo.append(i)
    flag_ambiguous, flag_nearest = [], []
    if todo and circ.polygons is not None and len(circ.polygons):
        polys = circ.polygons.to_crs(gdf.crs)
        geoms = polys.geometry.values
        tree = shapely.STRtree(geoms)
        for i in todo:
            g = gdf.geometry.iloc[i]
            cand = tree.query(g, predicate="intersects")
            areas = shapely.area(shapely.intersection(geoms[cand], g)) if len(cand) else np.zeros(0)
            if not len(cand) or areas.max() == 0:
                # an island (Batz, Sein, Molène) outside every constituency polygon: the nearest one
                near = tree.query_nearest(g)
                near = near[np.argsort(polys["circonscription"].to_numpy()[near], kind="stable")]
                if len(near):
                    out[i] = polys["circonscription"].iloc[near[0]]
                    flag_nearest.append(i)
                continue
            order = np.lexsort((polys["circonscription"].to_numpy()[cand], -areas))
            out[i] = polys["circonscription"].iloc[cand[order[0]]]
    else:
        flag_ambiguous = [i for i in todo if circ.by_commune and (circ.by_commune.get(gdf["code_insee"].iloc[i]))]
    gdf = gdf.copy()
    gdf["circonscription"] = out
    for flagged, name in ((flag_ambiguous, "circonscription_ambiguous"), (flag_nearest, "circonscription_nearest")):
        for i in flagged:
            q = gdf.at[i, "quality"]
            gdf.at[i, "quality"] = ",".join([x for x in [q, name] if x])
    return gdf
