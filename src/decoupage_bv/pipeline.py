"""The build: sources → points → tessellation → attributes, as one callable for notebooks and the CLI."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, replace

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from . import __version__, codes, sources
from ._errors import InputError
from .attributes import SHAPEFILE_FIELDS, assemble
from .outputs import OutputSet, check_build_outputs
from .points import prepare_points
from .settings import Params
from .tessellation import tessellate


@dataclass
class BuildResult:
    """Polygons (metric CRS) and the build report (a JSON-ready dict)."""

    polygons: gpd.GeoDataFrame
    report: dict

    @property
    def not_drawn(self) -> list:
        return self.report["bv_not_drawn"]

    def write(self, *paths: str) -> list[str]:
        """Write the polygons to each path and the report beside each, all or none; returns the files."""
        reports = check_build_outputs(paths)
        with OutputSet() as out:
            for p in paths:
                out.polygons(self.polygons, p)
            for r in reports:
                out.json(self.report, r)
        return list(paths) + reports


def _infer_dept(roll: pd.DataFrame, dept: str | None) -> str | None:
    if dept:
        return codes.normalise_dept(dept)
    if "commune" not in roll:
        return None
    communes = codes.map_distinct(roll["commune"], codes.normalise_commune).dropna().unique()
    found = sorted({codes.dept_of_commune(c) for c in communes})
    overseas = [d for d in found if d.startswith("97")]
    if overseas and len(found) > 1:
        raise InputError(f"the roll spans départements {', '.join(found[:6])}…; choose one with --dept")
    if len(found) != 1:
        return None
    try:
        return codes.normalise_dept(found[0])
    except InputError:  # not a département (the demo's made-up 99xxx communes)
        return None


def build(addresses, communes, dept: str | None = None, circonscriptions=None, columns: dict | None = None,
          commune_code_column: str | None = None, commune_name_column: str | None = None,
          bv_table: str | None = None, params: Params = Params(), progress: bool = False,
          streets=None, streets_source: str | None = None, streets_note: str | None = None) -> BuildResult:
    """Build polling-station polygons for one département (or whatever the inputs cover).

    Parameters
    ----------
    addresses : str or pandas.DataFrame
        Path of the address table (see :func:`sources.read_roll`) or a DataFrame already in canonical
        columns (``bv``, ``commune`` or ``commune_name``, ``lon``, ``lat``, optional ``geo_type``,
        ``geo_score``, ``count``, ``citycode``).
    communes : str or geopandas.GeoDataFrame
        Commune outlines (path, or a GeoDataFrame with ``code``, ``nom``).
    dept : str, optional
        Keeps only this département (``'31'``, ``'2A'``, ``'974'``) and picks the metric CRS.
    circonscriptions : str or sources.Circonscriptions, optional
        Constituency polygons or commune → constituency table.
    bv_table : str, optional
        INSEE ``table-bv-reu``: its ``id_brut_miom`` gives the Ministry's BV codes.
    progress : bool
        Show a progress bar on stderr.
    streets : str or geopandas.GeoDataFrame, optional
        Street lines for ``params.method == "streets"`` (``auto`` picks it when lines are given).
    streets_source, streets_note : str, optional
        Where the lines come from, and why there are none; both go to the report.
    """
    dept = codes.normalise_dept(dept) if dept else None
    if params.method not in ("auto", "voronoi", "streets"):
        raise InputError(f"unknown method {params.method!r}: use auto, voronoi or streets")
    if params.method == "auto":
        params = replace(params, method="streets" if streets is not None else "voronoi")
    if params.method == "streets" and streets is None:
        raise InputError("the streets method needs street lines (--streets FILE)")
    if isinstance(addresses, (str, os.PathLike)):
        read = sources.read_roll(str(addresses), dept=dept, columns=columns)
        roll, roll_info = read.rows, {"file": os.path.basename(str(addresses)), "rows_read": read.rows_read,
                                      "rows_other_departements": read.rows_other_dept, "columns": read.columns}
    else:
        roll = addresses.copy()
        if "row" not in roll:
            roll["row"] = np.arange(2, len(roll) + 2)
        other = 0
        if dept and "commune" in roll:
            mask = sources.in_dept(roll["commune"], dept)
            other, roll = int((~mask).sum()), roll[mask]
        roll_info = {"file": None, "rows_read": len(roll) + other, "rows_other_departements": other}
    dept = _infer_dept(roll, dept)
    if isinstance(communes, (str, os.PathLike)):
        com = sources.read_communes(str(communes), dept=dept, code_column=commune_code_column,
                                    name_column=commune_name_column)
        com_file = os.path.basename(str(communes))
    else:
        com, com_file = sources.prepare_communes(communes, "communes", dept, commune_code_column,
                                                 commune_name_column), None
    if len(com) == 0:
        raise InputError(f"{com_file or 'communes'}: no commune of département {dept}")
    if len(roll) == 0:
        raise InputError(f"{roll_info['file'] or 'addresses'}: no address row"
                         + (f" for département {dept}" if dept else ""))
    if dept is None:
        depts = sorted(set(com["code"].map(codes.dept_of_commune)))
        if len(depts) == 1 and depts[0].startswith("97"):
            dept = depts[0]
    crs = codes.metric_crs(dept) if dept else codes.LAMBERT93
    circ = circonscriptions
    if isinstance(circ, (str, os.PathLike)):
        circ = sources.read_circonscriptions(str(circ), dept=dept)
    bv_codes = None
    if bv_table:
        t = sources.read_bv_table(bv_table, dept=dept)
        if "miom" in t:
            t = t[t["miom"].notna()]
            bv_codes = dict(zip(t["bv"], t["miom"]))

    source = roll_info["file"] or "addresses"
    pts = prepare_points(roll, com, crs, params, bv_codes=bv_codes, source=source)
    used = len(roll) - sum(pts.drops.values())
    if used == 0 or used < 0.1 * len(roll):
        reasons = ", ".join(f"{k} {v}" for k, v in pts.drops.most_common(4))
        raise InputError(f"{source}: only {used} of {len(roll)} rows are usable positions ({reasons}); "
                         "nothing worth drawing — check the coordinate and commune columns")
    unit_geom = dict(zip(pts.units["unit"], pts.units.geometry.values))
    bar = _bar(len(pts.seeds["unit"].unique()), progress)
    try:
        lines = None
        if params.method == "streets":
            from .streets import read_streets

            lines = read_streets(streets, crs)
        stats = {}
        pieces = tessellate(unit_geom, pts.seeds, params, progress=bar.update if bar else None, lines=lines,
                            guide_rows=pts.guide_rows, stats=stats)
    finally:
        if bar:
            bar.close()
    gdf, not_drawn = assemble(pts, pieces, com, circ)
    report = _report(dept, crs, params, roll_info, com_file, pts, gdf, not_drawn, len(roll))
    if "repair" in com:
        rep = com[com["repair"] != ""]
        report["communes_repaired"] = [{"code": c, "reason": r, "area_ha": round(float(a) / 1e4, 2)}
                                       for c, r, a in zip(rep["code"], rep["repair"], rep.to_crs(crs).area)]
    report["streets"] = {
        "source": streets_source or (os.path.basename(str(streets)) if isinstance(streets, (str, os.PathLike))
                                     else ("GeoDataFrame" if streets is not None else None)),
        "lines": int(len(lines)) if lines is not None else 0,
        "note": streets_note,
    }
    report["guides"] = {"used": stats["guide_points"] > 0, "points": stats["guide_points"],
                        "address_axes": stats["address_axes"]}
    report["bv_multipart"] = multipart_reasons(pts.bvs, stats["detached"], params)
    return BuildResult(polygons=gdf, report=report)


_DETACHED = {
    "island": "an island of the commune: no other BV touches it",
    "far": "farther than {gap} m from its main piece",
    "cuts": "joining it would cut BV {others} into pieces: the roll puts it among that BV's addresses",
    "narrow": "no strip to its main piece passes clear of the other BVs' addresses",
    "unjoined": "no join tried (a piece left by a later step, or one without a neighbour)",
}


def multipart_reasons(bvs: pd.DataFrame, detached: dict, params: Params) -> list:
    """The report's ``bv_multipart``: each BV drawn in several pieces, with each detached piece's addresses,
    its distance to the main piece and why it was not joined (:func:`joins.detached_reasons`)."""
    code = dict(zip(bvs["bv"].tolist(), zip(bvs["code_insee"].tolist(), bvs["code_bv"].tolist())))
    out = []
    for unit_why in detached.values():
        for bv, items in unit_why.items():
            insee, code_bv = code[int(bv)]
            pieces = []
            for n, gap, reason, others in items:
                text = _DETACHED[reason].format(gap=f"{params.join_max_gap:g}",
                                                others=", ".join(str(code[int(o)][1]) for o in others))
                pieces.append({"addresses": n, "distance_m": gap, "reason": reason, "why": text})
            out.append({"code_insee": insee, "code_bv": code_bv, "pieces": len(items) + 1, "detached": pieces})
    out.sort(key=lambda d: (d["code_insee"], str(d["code_bv"])))
    return out


def _bar(total, enabled):
    if not enabled:
        return None
    from ._progress import bar as progress_bar

    return progress_bar(total=total, desc="communes", unit="commune")


def tiling_errors(polygons: gpd.GeoDataFrame, units: gpd.GeoDataFrame) -> pd.DataFrame:
    """Per unit (commune): relative area of the gaps and overlaps between its BV polygons and its outline."""
    unit_codes = set(units["unit"])
    unit_of = polygons["code_insee"].map(lambda c: c if c in unit_codes else codes.arrondissement_parent(c))
    rows = []
    for unit, geom in zip(units["unit"], units.geometry.values):
        parts = polygons.geometry.values[(unit_of == unit).to_numpy()]
        if len(parts) == 0:
            continue
        union = shapely.union_all(parts)
        a = geom.area
        rows.append({"unit": unit, "gap": shapely.difference(geom, union).area / a,
                     "overlap": (shapely.area(parts).sum() - union.area) / a})
    return pd.DataFrame(rows, columns=["unit", "gap", "overlap"])


def _report(dept, crs, params, roll_info, com_file, pts, gdf, not_drawn, n_rows) -> dict:
    drawn = gdf[gdf["code_bv"].notna()]
    quality = Counter()
    for q in gdf["quality"]:
        for f in q.split(","):
            quality[f] += 1
    return {
        "decoupage_bv": __version__,
        "departement": dept,
        "crs": crs,
        "method": params.method,
        "parameters": params.as_dict(),
        "inputs": {"addresses": roll_info, "communes": com_file},
        "counts": {
            "address_rows": n_rows,
            "rows_used_as_seeds": n_rows - sum(pts.drops.values()),
            "seeds": int(len(pts.seeds)),
            "communes": int(len(pts.units)),
            "bv_in_roll": int(len(pts.bvs)),
            "rows_unknown_commune": sum(u["rows"] for u in pts.unknown_communes),
            "unknown_communes": len(pts.unknown_communes),
            "bv_drawn": int(len(drawn)),
            "bv_not_drawn": len(not_drawn),
            "features": int(len(gdf)),
        },
        "rows_dropped": dict(sorted(pts.drops.items())),
        "notes": dict(sorted(pts.notes.items())),
        "quality_flags": dict(sorted(quality.items())),
        "bv_not_drawn": not_drawn,
        "unknown_communes": pts.unknown_communes,
        "shapefile_fields": SHAPEFILE_FIELDS,
    }
