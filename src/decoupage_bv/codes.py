"""French codes: départements, communes, arrondissements, polling-station identifiers, metric CRS."""

from __future__ import annotations

import re

import numpy as np

from ._errors import InputError

_DEPT_RE = re.compile(r"^(0[1-9]|[1-8]\d|9[0-5]|2A|2B|97[1-6])$")

# Metric CRS per overseas département; everything else is Lambert-93.
_OVERSEAS_CRS = {
    "971": "EPSG:5490",  # Guadeloupe: RGAF09 / UTM 20N
    "972": "EPSG:5490",  # Martinique
    "973": "EPSG:2972",  # Guyane: RGFG95 / UTM 22N
    "974": "EPSG:2975",  # La Réunion: RGR92 / UTM 40S
    "975": "EPSG:4467",  # Saint-Pierre-et-Miquelon: RGSPM06 / UTM 21N
    "976": "EPSG:4471",  # Mayotte: RGM04 / UTM 38S
}
LAMBERT93 = "EPSG:2154"

# Municipal arrondissements of Paris, Lyon and Marseille and their commune.
_ARM_RANGES = (
    (75101, 75120, "75056"),
    (69381, 69389, "69123"),
    (13201, 13216, "13055"),
)
ARM_PARENTS = frozenset(p for _, _, p in _ARM_RANGES)

_COMMUNE_RE = re.compile(r"^(\d{5}|2[AB]\d{3})$")
_RAW_PREFIX_RE = re.compile(r"^\s*(\d{5}|2[AB]\d{3})\s*_(.*)$", re.IGNORECASE)


def map_distinct(values, fn):
    """``values.map(fn)`` for a pandas Series, calling *fn* once per distinct value: rolls repeat the same
    commune and BV codes over thousands of rows."""
    import pandas as pd

    values = values if isinstance(values, pd.Series) else pd.Series(values)
    inverse, uniq = pd.factorize(values, use_na_sentinel=True)
    mapped = np.array([fn(str(u)) for u in uniq] + [None], dtype=object)  # the sentinel -1 picks None
    return pd.Series(mapped[inverse], index=values.index, dtype=object)


def normalise_dept(value) -> str:
    """Return the canonical département code (``'01'``, ``'2A'``, ``'971'``) or raise InputError."""
    v = str(value).strip().upper()
    if v.isdigit() and len(v) == 1:
        v = "0" + v
    if v == "20":
        raise InputError("département '20' no longer exists: use 2A (Corse-du-Sud) or 2B (Haute-Corse)")
    if not _DEPT_RE.match(v):
        raise InputError(f"unknown département {value!r}: expected 01…95, 2A, 2B or 971…976")
    return v


def normalise_commune(value) -> str | None:
    """Return a 5-character INSEE code, or None if *value* is not one.

    Restores a leading zero lost by spreadsheets (``1001`` → ``01001``) and a float suffix (``1001.0``).
    """
    if value is None:
        return None
    v = str(value).strip().upper()
    if v.endswith(".0") and v[:-2].isdigit():
        v = v[:-2]
    if v.isdigit() and len(v) == 4:
        v = "0" + v
    return v if _COMMUNE_RE.match(v) else None


def dept_of_commune(code: str) -> str:
    """Département of an INSEE commune code (3 characters overseas)."""
    return code[:3] if code.startswith("97") else code[:2]


def metric_crs(dept: str) -> str:
    """The metric CRS to tessellate in for a département."""
    return _OVERSEAS_CRS.get(dept, LAMBERT93)


def arrondissement_parent(code: str) -> str | None:
    """The commune of a municipal arrondissement (``75104`` → ``75056``), else None."""
    if not code.isdigit():
        return None
    n = int(code)
    for lo, hi, parent in _ARM_RANGES:
        if lo <= n <= hi:
            return parent
    return None


def split_raw_bv(raw: str) -> tuple[str | None, str]:
    """Split a raw REU id (``'29039_1'``, ``'04079_1 - 1'``) into (commune prefix, label).

    Ids without a commune prefix (municipal lists: ``'12'``) return (None, id).
    """
    m = _RAW_PREFIX_RE.match(raw)
    if m:
        return m.group(1).upper(), m.group(2).strip()
    return None, raw.strip()


def _pad(code: str) -> str:
    return code.zfill(4) if len(code) < 4 else code


def _compact(label: str) -> str:
    return re.sub(r"[^0-9A-Z]", "", label.upper())


def assign_codes_bv(labels) -> dict[str, tuple[str, str | None]]:
    """Give each raw BV label of one commune a Ministry-style 4-character ``code_bv``.

    Returns ``{label: (code_bv, note)}``. Purely numeric labels are zero-padded (``'1'`` → ``'0001'``).
    Other labels take their leading number when no other label claims it (``'1 - 1'`` → ``'0001'``),
    else their letters and digits (``'B-1'`` → ``'00B1'``). The note says which rule applied when it was
    not the plain numeric one, or ``'ambiguous'`` when two labels could only get the same code (the later
    one, in sorted order, then gets a ``-2`` style suffix so keys stay unique).
    """
    labels = sorted(set(labels))
    out: dict[str, tuple[str, str | None]] = {}
    used: set[str] = set()
    numeric = [lab for lab in labels if lab.isdigit()]
    for lab in numeric:
        code = _pad(str(int(lab)))
        if code in used:
            code = _pad(lab)  # '01' and '1' both present: keep the raw digits
        out[lab] = (code, None)
        used.add(code)
    others = [lab for lab in labels if not lab.isdigit()]
    leads: dict[str, list[str]] = {}
    for lab in others:
        m = re.match(r"^\s*(\d+)\D", lab)
        if m:
            leads.setdefault(_pad(str(int(m.group(1)))), []).append(lab)
    for lab in others:
        m = re.match(r"^\s*(\d+)\D", lab)
        lead = _pad(str(int(m.group(1)))) if m else None
        if lead is not None and lead not in used and len(leads[lead]) == 1:
            out[lab] = (lead, "leading_number")
            used.add(lead)
            continue
        code = _pad(_compact(lab)) if _compact(lab) else "0000"
        note = "alphanumeric" if lab else "empty_label"
        if code in used:
            base, k = code, 2
            while f"{base}-{k}" in used:
                k += 1
            code, note = f"{base}-{k}", "ambiguous"
        out[lab] = (code, note)
        used.add(code)
    return out


def circonscription_label(code, dept: str | None = None) -> str | None:
    """Format a constituency as ``'31-01'`` from ``'3101'``, ``'31-01'``, ``'2A01'``, ``'97101'``, or ``'01'`` with *dept*."""
    if code is None:
        return None
    v = str(code).strip().upper()
    if v.endswith(".0"):
        v = v[:-2]
    m = re.match(r"^(\d{2,3}|2[AB])\s*[-_ ]\s*(\d{1,2})$", v)
    if m:
        d, n = m.group(1), m.group(2)
    elif re.match(r"^97\d{3}$", v):
        d, n = v[:3], v[3:]
    elif re.match(r"^(\d{2}|2[AB])\d{2}$", v):
        d, n = v[:2], v[2:]
    elif v.isdigit() and len(v) <= 2 and dept is not None:
        d, n = dept, v
    else:
        return None
    if int(n) == 0:
        return None
    return f"{d}-{int(n):02d}"
