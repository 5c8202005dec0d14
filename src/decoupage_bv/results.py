"""Election results per polling station: read the Ministry's layouts, normalise, join to polygons.

Layouts read (detected from the header): the Ministry of the Interior's 2024 files (5-digit ``Code commune``,
``Code BV``, wide ``Voix N``/``Nuance candidat N`` blocks), its 2017–2022 files (``Code du département``,
3-digit ``Code de la commune``, ``Code du b.vote``, overseas ``ZA…ZM``, unnamed repeated candidate blocks),
Toulouse Métropole's open-data files (``numero_du_bureau``, ``sigle_du_candidatN``), and any CSV through a
column mapping. All become one long table (one row per BV × candidate or list) and one wide table.
"""

from __future__ import annotations

import csv
import os
import re
import unicodedata
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd

from . import codes
from ._errors import InputError
from .evaluate import bv_keys, normalise_code_bv
from .sources import open_maybe_compressed, parse_numbers, read_vector, sniff_csv

# Ministry codes of overseas départements in files before 2024.
OVERSEAS_LETTERS = {"ZA": "971", "ZB": "972", "ZC": "973", "ZD": "974", "ZS": "975", "ZM": "976"}

COUNT_FIELDS = {
    "inscrits": ("inscrits", "nombre_dinscrits", "nb_inscrits"),
    "abstentions": ("abstentions", "nombre_dabstentions"),
    "votants": ("votants", "nombre_de_votants", "nb_votants"),
    "blancs": ("blancs", "nombre_de_bulletins_blancs", "blancs_et_nuls_blancs"),
    "nuls": ("nuls", "nombre_de_bulletins_nuls"),
    "exprimes": ("exprimes", "nombre_dexprimes", "nb_exprimes"),
}
KEY_FIELDS = {
    "dept": ("code_du_departement", "code_departement", "departement"),
    "commune": ("code_commune", "code_de_la_commune", "commune", "code_insee"),
    "code_bv": ("code_bv", "code_du_b_vote", "numero_du_bureau", "code_bureau", "bureau", "bdv", "uniq_bdv"),
    "id_bv": ("id_bv", "codebureauvote", "code_bureau_vote"),
    "circonscription": ("code_de_la_circonscription", "code_circonscription", "circonscription"),
}
# Candidate/list block fields: normalised header stem → canonical field.
BLOCK_FIELDS = {
    "numero_de_panneau": "panneau", "n_panneau": "panneau", "npanneau": "panneau", "n_liste": "panneau",
    "nuance_candidat": "nuance", "nuance_liste": "nuance", "nuance": "nuance", "code_nuance": "nuance",
    "sigle_du_candidat": "nuance",
    "nom_candidat": "nom", "nom": "nom", "prenom_candidat": "prenom", "prenom": "prenom",
    "libelle_de_liste": "liste", "libelle_abrege_de_liste": "liste", "libelle_abrege_liste": "liste",
    "libelle_liste": "liste", "liste": "liste",
    "voix": "voix", "nombre_de_voix_du_candidat": "voix", "elu": "elu", "sexe_candidat": "sexe", "sexe": "sexe",
}
_BLOCK_START = ("numero_de_panneau", "n_panneau", "npanneau", "n_liste", "sigle_du_candidat")
LONG_COLUMNS = ["id_bv", "code_insee", "code_bv", "circonscription", "inscrits", "votants", "abstentions", "blancs",
                "nuls", "exprimes", "panneau", "nuance", "nom", "prenom", "liste", "voix", "pct_exprimes",
                "pct_inscrits", "source", "row"]


def _norm(name: str) -> str:
    s = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode().lower()
    s = s.replace("°", "").replace("'", "")
    return re.sub(r"[^a-z0-9]+", "_", s).strip("_")


@dataclass
class Results:
    """Results of one file: ``long`` (BV × candidate), ``wide`` (one row per BV) and the rows set aside."""

    long: pd.DataFrame
    wide: pd.DataFrame
    source: str
    layout: str
    rejected: list = field(default_factory=list)


def _read_rows(path: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows, rows possibly longer than the header (the Ministry's files before 2024)."""
    encoding, sep = sniff_csv(path)
    try:
        with open_maybe_compressed(path, "rt", encoding=encoding, newline="") as fh:
            reader = csv.reader(fh, delimiter=sep)
            header = next(reader)
            rows = [r for r in reader if any(c.strip() for c in r)]
    except (UnicodeDecodeError, csv.Error, OSError, EOFError) as exc:
        raise InputError(f"{path}: cannot read as CSV ({exc})") from None
    return [h.strip() for h in header], rows


def _expand_header(header: list[str], width: int) -> list[str]:
    """Name the unnamed repeated candidate blocks: ``N°Panneau``… then ``N°Panneau 2``…"""
    normed = [_norm(h) for h in header]
    start = next((i for i, h in enumerate(normed) if h in _BLOCK_START), None)
    if start is None or width <= len(header):
        return header
    block = header[start:]
    # drop trailing empty names a trailing separator creates
    while block and not block[-1]:
        block.pop()
    out = header[: start + len(block)]
    k = 2
    while len(out) < width:
        out += [f"{b} {k}" for b in block]
        k += 1
    return out[:width]


def _find(normed: dict, names) -> str | None:
    for n in names:
        if n in normed:
            return normed[n]
    return None


def read_results(path: str, columns: dict | None = None, vote_columns=None, commune: str | None = None,
                 source: str | None = None) -> Results:
    """Read one results file into long and wide tables.

    *columns* maps canonical roles (``commune``, ``dept``, ``code_bv``, ``id_bv``, ``circonscription``,
    ``inscrits``, ``votants``, ``abstentions``, ``blancs``, ``nuls``, ``exprimes``) to the file's names when
    they are not recognised. *vote_columns* lists columns holding votes of one candidate/list each (wide
    files without blocks); their names become the labels. *commune* is the INSEE code for files that only
    carry a BV number.
    """
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    source = source or os.path.splitext(os.path.basename(path))[0]
    header, rows = _read_rows(path)
    width = max([len(header)] + [len(r) for r in rows])
    header = _expand_header(header, width)
    if len(header) < width:
        header = header + [f"_extra_{i}" for i in range(width - len(header))]
    df = pd.DataFrame([r + [""] * (width - len(r)) for r in rows], columns=_dedupe(header), dtype=str)
    df["_row"] = np.arange(2, len(df) + 2)
    normed = {}
    for c in df.columns:
        normed.setdefault(_norm(c), c)  # 'Votants' before '% Votants'
    given = {k: v for k, v in (columns or {}).items()}
    for role, col in given.items():
        if col not in df.columns:
            raise InputError(f"{path}: column {col!r} (given for {role}) not found")
    col = {role: given.get(role) or _find(normed, names) for role, names in {**KEY_FIELDS, **COUNT_FIELDS}.items()}
    layout = ("ministry_2024" if "code_bv" in normed and "code_commune" in normed else
              "ministry_2017_2022" if "code_du_b_vote" in normed else
              "toulouse_metropole" if "numero_du_bureau" in normed else "generic")
    keys = _keys(df, col, commune, path)
    base = pd.DataFrame({"code_insee": keys[0], "code_bv": keys[1], "row": df["_row"]})
    base["circonscription"] = _circ(df, col, base["code_insee"])
    for field_name in COUNT_FIELDS:
        base[field_name] = parse_numbers(df[col[field_name]], drop_spaces=True) if col[field_name] else np.nan
    if col["abstentions"] is None and col["inscrits"] and col["votants"]:
        base["abstentions"] = base["inscrits"] - base["votants"]
    rejected = []
    bad = base["code_insee"].isna() | base["code_bv"].isna()
    for r in base.loc[bad, "row"]:
        rejected.append({"source": source, "row": int(r), "reason": "no usable commune or BV code"})
    base = base[~bad]
    dup = base.duplicated(["code_insee", "code_bv"], keep="first")
    for r, c, b in zip(base.loc[dup, "row"], base.loc[dup, "code_insee"], base.loc[dup, "code_bv"]):
        rejected.append({"source": source, "row": int(r), "id_bv": f"{c}_{b}", "reason": "BV repeated in the file"})
    base = base[~dup]
    cand = _candidates(df.loc[base.index], vote_columns, path)
    long = base.join(cand, how="inner") if len(cand) else base.assign(voix=np.nan)
    long["id_bv"] = long["code_insee"] + "_" + long["code_bv"]
    long["pct_exprimes"] = 100 * long["voix"] / long["exprimes"].where(long["exprimes"] > 0)
    long["pct_inscrits"] = 100 * long["voix"] / long["inscrits"].where(long["inscrits"] > 0)
    long["source"] = source
    for c in LONG_COLUMNS:
        if c not in long:
            long[c] = None
    long = long[LONG_COLUMNS].sort_values(["code_insee", "code_bv", "panneau"], kind="stable").reset_index(drop=True)
    return Results(long=long, wide=wide_table(long, base), source=source, layout=layout, rejected=rejected)


def _dedupe(names):
    seen, out = {}, []
    for n in names:
        k = seen.get(n, 0)
        out.append(n if k == 0 else f"{n}.{k}")
        seen[n] = k + 1
    return out


def _keys(df, col, commune, path):
    if col["id_bv"] and not col["code_bv"]:
        parts = df[col["id_bv"]].str.extract(r"^\s*(\d{5}|2[AB]\d{3})[_.\-]?(.*)$")
        return parts[0].map(codes.normalise_commune), parts[1].map(_code4)
    if not col["code_bv"]:
        raise InputError(f"{path}: no BV code column (looked for {', '.join(KEY_FIELDS['code_bv'])}); "
                         "name it with --col code_bv=NAME")
    code_bv = df[col["code_bv"]].map(_code4)
    if commune:
        return pd.Series(codes.normalise_commune(commune), index=df.index), code_bv
    if not col["commune"]:
        raise InputError(f"{path}: no commune column (looked for {', '.join(KEY_FIELDS['commune'])}); "
                         "name it with --col commune=NAME or give --commune")
    com = df[col["commune"]].astype(str).str.strip().str.upper()
    if col["dept"] and com.str.len().max() <= 3:
        dept = df[col["dept"]].astype(str).str.strip().str.upper().map(_dept_code)
        insee = [(_insee(d, c) if d else None) for d, c in zip(dept, com)]
        return pd.Series(insee, index=df.index), code_bv
    return com.map(codes.normalise_commune), code_bv


def _dept_code(d: str) -> str | None:
    if d in OVERSEAS_LETTERS:
        return OVERSEAS_LETTERS[d]
    try:
        return codes.normalise_dept(d)
    except InputError:
        return None


def _insee(dept: str, commune: str) -> str | None:
    if not commune.isdigit():
        return None
    if dept.startswith("97"):
        return codes.normalise_commune("97" + commune.zfill(3)[-3:])
    return codes.normalise_commune(dept + commune.zfill(3))


def _code4(v) -> str | None:
    n = normalise_code_bv(v)
    if n is None:
        return None
    return n.zfill(4) if len(n) < 4 else n


def _circ(df, col, insee):
    if not col["circonscription"]:
        return None
    dept = insee.map(lambda c: codes.dept_of_commune(c) if isinstance(c, str) else None)
    return [codes.circonscription_label(v, d) for v, d in zip(df[col["circonscription"]], dept)]


def _candidates(df: pd.DataFrame, vote_columns, path) -> pd.DataFrame:
    """One row per (file row, candidate) with panneau, nuance, nom, prenom, liste, voix; indexed like *df*."""
    if vote_columns:
        missing = [c for c in vote_columns if c not in df.columns]
        if missing:
            raise InputError(f"{path}: vote column(s) {missing} not found")
        parts = [pd.DataFrame({"panneau": str(i + 1), "liste": c, "voix": parse_numbers(df[c], drop_spaces=True)},
                              index=df.index)
                 for i, c in enumerate(vote_columns)]
        return pd.concat(parts).sort_index(kind="stable")
    blocks: dict[int, dict[str, str]] = {}
    for c in df.columns:
        m = re.match(r"^(.*?)[\s_]*(\d+)$", _norm(c))
        stem, n = (m.group(1), int(m.group(2))) if m else (_norm(c), 1)
        if stem in BLOCK_FIELDS:
            blocks.setdefault(n, {}).setdefault(BLOCK_FIELDS[stem], c)
        elif _norm(c) in BLOCK_FIELDS and not m:
            blocks.setdefault(1, {}).setdefault(BLOCK_FIELDS[_norm(c)], c)
    parts = []
    for n in sorted(blocks):
        b = blocks[n]
        if "voix" not in b:
            continue
        part = pd.DataFrame(index=df.index)
        part["panneau"] = df[b["panneau"]].str.strip() if "panneau" in b else str(n)
        for f in ("nuance", "nom", "prenom", "liste"):
            part[f] = df[b[f]].str.strip() if f in b else None
        part["voix"] = parse_numbers(df[b["voix"]], drop_spaces=True)
        part = part[(part["voix"].notna()) & ~((part["panneau"] == "") & part["voix"].isna())]
        parts.append(part)
    if not parts:
        return pd.DataFrame()
    return pd.concat(parts).sort_index(kind="stable")


def candidate_label(long: pd.DataFrame) -> pd.Series:
    """Label of a candidate/list for the wide table: its nuance, else list, else name, else panel number."""
    lab = long["nuance"].where(long["nuance"].notna() & (long["nuance"] != ""), long["liste"])
    lab = lab.where(lab.notna() & (lab != ""), long["nom"])
    lab = lab.where(lab.notna() & (lab != ""), "panneau_" + long["panneau"].astype(str))
    return lab.map(lambda s: re.sub(r"[^0-9A-Za-z]+", "_", unicodedata.normalize("NFKD", str(s))
                                    .encode("ascii", "ignore").decode()).strip("_").upper())


def wide_table(long: pd.DataFrame, base: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per BV: counts, ``participation`` (%), and ``voix_<LABEL>``, ``pct_<LABEL>`` (% of exprimés)."""
    keys = ["id_bv", "code_insee", "code_bv", "circonscription", "inscrits", "votants", "abstentions", "blancs",
            "nuls", "exprimes"]
    bv = long[keys].drop_duplicates("id_bv").set_index("id_bv")
    bv["participation"] = 100 * bv["votants"] / bv["inscrits"].where(bv["inscrits"] > 0)
    cand = long[long["voix"].notna()]
    if len(cand):
        votes = cand.assign(label=candidate_label(cand)).pivot_table(index="id_bv", columns="label", values="voix",
                                                                     aggfunc="sum")
        votes = votes.reindex(sorted(votes.columns), axis=1)
        pct = 100 * votes.div(bv["exprimes"].where(bv["exprimes"] > 0), axis=0)
        bv = bv.join(votes.add_prefix("voix_")).join(pct.add_prefix("pct_"))
    return bv.reset_index()


@dataclass
class Joined:
    """Polygons with results, the long table, and every unmatched row with its reason."""

    polygons: gpd.GeoDataFrame
    long: pd.DataFrame
    unmatched: list
    summary: dict


def join(polygons: gpd.GeoDataFrame, results: list[Results], set_circonscription: bool = False) -> Joined:
    """Join results to polygons on the normalised BV key (``<insee>_<code>``, zeros and spelling aside).

    With several files, wide columns are prefixed by each file's ``source`` label. Unmatched result rows and
    polygons without results are listed with their reason. With *set_circonscription*, a BV's constituency
    is taken from the results (legislative files carry it) where they give one.
    """
    poly = polygons.copy()
    poly["_key"] = bv_keys(poly, "polygons")
    known_communes = set(poly["code_insee"].dropna()) if "code_insee" in poly else set(poly["_key"].str[:5])
    known_communes |= {codes.arrondissement_parent(c) for c in known_communes} - {None}
    unmatched, summary = [], {}
    many = len(results) > 1
    for res in results:
        w = res.wide.copy()
        w["_key"] = w["code_insee"] + "_" + w["code_bv"].map(normalise_code_bv)
        hit = w["_key"].isin(set(poly["_key"].dropna()))
        for _, r in w[~hit].iterrows():
            reason = ("BV not among the commune's polygons" if r["code_insee"] in known_communes
                      else "commune not in the polygons")
            unmatched.append({"side": "results", "source": res.source, "id_bv": r["id_bv"], "reason": reason})
        no_result = poly["_key"].notna() & ~poly["_key"].isin(set(w["_key"]))
        touched = poly["_key"].str[:5].isin(set(w["code_insee"]))
        for k, t in zip(poly.loc[no_result, "_key"], touched[no_result]):
            insee, code = k.split("_", 1)
            unmatched.append({"side": "polygons", "source": res.source, "id_bv": f"{insee}_{code.zfill(4)}",
                              "reason": "no result row for this BV (its commune has results)" if t
                              else "commune absent from the results"})
        unmatched += [dict(r, side="results") for r in res.rejected]
        summary[res.source] = {"layout": res.layout, "result_bv": int(len(w)), "matched": int(hit.sum()),
                               "unmatched_results": int((~hit).sum()),
                               "polygons_without_result": int(no_result.sum()),
                               "rejected_rows": len(res.rejected)}
        cols = [c for c in w.columns if c not in ("id_bv", "code_insee", "code_bv", "_key", "circonscription")]
        add = w[w["_key"].notna()].drop_duplicates("_key").set_index("_key")[cols + ["circonscription"]]
        if set_circonscription:
            circ = poly["_key"].map(add["circonscription"])
            poly["circonscription"] = circ.where(circ.notna(), poly.get("circonscription"))
        add = add[cols]
        if many:
            add = add.add_prefix(f"{res.source}_")
        poly = poly.join(add, on="_key")
    long = pd.concat([r.long for r in results], ignore_index=True) if results else pd.DataFrame(columns=LONG_COLUMNS)
    return Joined(polygons=poly.drop(columns="_key"), long=long, unmatched=unmatched, summary=summary)


def join_files(polygons: str, results_files, output: str, labels=None, columns=None, vote_columns=None,
               commune=None, set_circonscription=False) -> tuple[Joined, list[str]]:
    """Read, join and write: *output* (polygons + wide columns), ``<output>.long.csv`` and
    ``<output>.join-report.json``. Returns the join and the files written."""
    from .outputs import OutputSet, check_outputs

    stem = os.path.splitext(output)[0]
    long_path, report_path = stem + ".long.csv", stem + ".join-report.json"
    check_outputs([output])
    check_outputs([long_path, report_path], polygons=False)
    poly = read_vector(polygons)
    poly = poly[poly.geometry.notna()]
    labels = labels or [None] * len(results_files)
    res = [read_results(f, columns=columns, vote_columns=vote_columns, commune=commune, source=lab)
           for f, lab in zip(results_files, labels)]
    joined = join(poly, res, set_circonscription=set_circonscription)
    with OutputSet() as out:
        out.polygons(joined.polygons, output)
        out.csv(joined.long, long_path)
        out.json({"summary": joined.summary, "unmatched": joined.unmatched}, report_path)
    return joined, [output, long_path, report_path]
