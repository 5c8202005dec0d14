"""Default parameters of the chain, in one place."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from ._errors import InputError

#: Settings that must be above zero (a step, a grid), and shares, at most 1; every other number is at least 0.
POSITIVE = ("colocation_grid", "empty_block_step", "guide_step")
SHARES = ("min_score", "fragment_max_share", "leftover_max_share", "empty_block_pair_share")


@dataclass(frozen=True)
class Params:
    """What the chain keeps, drops and merges. Distances are in metres (metric CRS)."""

    #: REU/BAN ``geo_type`` values kept as seeds; ``municipality`` (commune centroid) says nothing of the BV.
    geo_types: tuple = ("housenumber", "interpolation", "street", "locality")
    #: Points with a BAN score below this are dropped.
    min_score: float = 0.5
    #: Points farther than this outside their commune are dropped (closer ones are kept as seeds).
    outside_tolerance: float = 100.0
    #: A point is an outlier of its BV when its nearest same-BV point is farther than this …
    outlier_min_distance: float = 1000.0
    #: … and more than this many times farther than its nearest point of another BV.
    outlier_factor: float = 5.0
    #: Points closer than this are one location (one seed).
    colocation_grid: float = 0.1
    #: A detached piece of a BV holding at most this many points (seeds, whatever the number of addresses at
    #: each) goes to a neighbour …
    fragment_max_points: int = 5
    #: … or at most this share of the BV's addresses (0 = by count only: a detached piece of more addresses
    #: than that is a street or a cluster that the roll truly gives to its BV, and handing it out loses all
    #: of them; cross-validated per commune against plain Voronoi, bench/).
    fragment_max_share: float = 0.0
    #: Where no street-side guide applies (a roll without address labels, ``--no-guides``, a commune without
    #: numbered streets), a detached piece goes to a neighbour when it holds at most this many points, and
    #: by no share: nothing there tells a larger detached cluster of a BV's addresses from a true enclave
    #: (cross-validated on both dev sets, the noisy roll and the Val-de-Marne lists without their labels,
    #: bench/).
    fragment_max_points_unguided: int = 2
    #: A detached piece of a BV at most this far from its main piece (m) is joined to it through the gap
    #: between them, or along the limits between BVs (at most as long), when no address of another BV lies
    #: there (0 = never; cross-validated, bench/).
    join_max_gap: float = 600.0
    #: The joining strip is as wide as the gap's clearance from other BVs' addresses, within these bounds (m).
    join_min_width: float = 2.0
    join_max_width: float = 20.0
    #: A detached piece that could not be joined goes to the neighbour sharing its longest border when it
    #: holds at most this share of its BV's addresses (1 = every BV in one piece, as official BVs are; 0 = only
    #: fragments: fewer BVs in pieces, at the price of the addresses given away, bench/).
    leftover_max_share: float = 0.0
    #: A detached piece of a BV holding at most this many points (seeds: geocoded locations, whatever the
    #: number of addresses at each; a REU row can stand for several addresses, a list's building for many
    #: electors) is a stray (a misplaced or mislabelled row, most often) and goes to a neighbour before any
    #: join; larger pieces are joined to their BV when they can be, and only then handed out by the
    #: thresholds above (cross-validated on both dev sets, the noisy roll and the Val-de-Marne lists,
    #: bench/). A join's strip may cut off another BV no more than a stray (it is handed out with its
    #: addresses).
    stray_max_points: int = 1
    #: A join's strip may also cut off pieces of the BVs it crosses holding, all together, at most this share
    #: of the joined piece's addresses: they go to the neighbour sharing their longest border (0 = never,
    #: only a stray's addresses, above; bench/).
    join_cut_off_share: float = 0.0
    #: A piece that no strip joins without cutting another BV is joined by one that does, when each piece
    #: it cuts off that BV can be joined back to it in turn: both come out whole, and no address changes BV
    #: but the strays a strip may cut off (README, Method, step 7). Of each piece's strips, the first this
    #: many that cut a BV are tried (0 = none; more join few more pieces for much more time, bench/).
    join_rejoin_strips: int = 2
    #: A block without addresses is split among the pieces around it by the Voronoi cells of its outline,
    #: sampled every this many metres (2 to 16 m give the same scores on both dev sets, bench/).
    empty_block_step: float = 6.0
    #: … unless it rounds off one BV's outline: it goes whole to the BV whose convex hull grows least by taking
    #: it when the next BV's hull would grow by more than this many times the block's area beyond that
    #: (official maps give such a block whole to one BV; 0 = always split; cross-validated, bench/) …
    empty_block_hull_margin: float = 1.25
    #: … or by more than this many times, for a block smaller than ``empty_block_small_area`` (m²): the smaller
    #: the block, the less often an official limit cuts it.
    empty_block_hull_margin_small: float = 0.75
    empty_block_small_area: float = 10_000.0
    #: … and only when it is round enough, its 4πA/P² at least this: a long thin block (a stretch of river, a
    #: rail cutting, a median strip) is shared by the BVs along it (0 = any shape; cross-validated, bench/).
    empty_block_min_roundness: float = 0.3
    #: A block without addresses that is split among three BVs or more along its outline is split between the
    #: two that hold most of it when the others hold at most this share of it (official maps give most of
    #: such a block to one BV, seldom to three; 0 = never; cross-validated, bench/).
    empty_block_pair_share: float = 0.3
    #: Blocks without addresses that touch one another over at least this area (m²; a wood cut by its roads)
    #: are split as plain Voronoi splits them: decided one by one from the edge inwards, the BVs at the
    #: corners of a wood took ever more of it (``inf`` = never, 0 = every block without addresses; the Paris
    #: dev sets' largest such stretch, gardens and river, is 81 ha; bench/RESULTS.md).
    empty_region_voronoi_area: float = 1_000_000.0
    #: In a block split among BVs that straight lines separate (their addresses' convex hulls are apart), the
    #: limits are those lines deeper inside the block than this from its outline, the street axes; nearer,
    #: where addresses are, the Voronoi split stays (m; 0 = Voronoi throughout; cross-validated, bench/) …
    straight_cut_depth: float = 20.0
    #: … in a block of three BVs or more, deeper than this: its core goes to the two BVs that hold most of
    #: its outline only when no other BV has an address in it (below), and a shallower core holds such an
    #: address more often (cross-validated, bench/).
    straight_cut_depth_three: float = 25.0
    #: … between two BVs, the line between the two places where the BV changes along the block's outline,
    #: where it leaves each address on its own side (:func:`blocks._chord`; bench/), else, and between
    #: three BVs or more, the lines of widest margin (False: those always, as in the blocks of street axes
    #: drawn from the addresses, too rough for it).
    straight_cut_chord: bool = True
    #: … and in a block of three BVs or more, the core goes to the two BVs that hold most of its outline,
    #: split by the line between them, when no other BV has an address in it (:func:`blocks._main_pair_cut`;
    #: bench/); False: each place to the BV on its side of the lines of widest margin against every other.
    straight_cut_main_pair: bool = True
    #: … when the block is not long and thin, its 4πA/P² at least this: a strip along a street (a rail
    #: corridor, the side of an esplanade) is shared by the BVs along it, as a long thin block without
    #: addresses is (0 = any shape; cross-validated, bench/).
    straight_cut_main_pair_min_roundness: float = 0.5
    #: Pieces smaller than this (m²) are slivers, always merged.
    sliver_area: float = 1.0
    #: Tessellation method: ``voronoi`` (per commune), ``streets`` (Voronoi inside each block of the street
    #: network), or ``auto``: ``streets`` when street lines are given (it scores higher in bench/), else ``voronoi``.
    method: str = "auto"
    #: Street-side guides (see :mod:`guides`) when the roll has address labels (``geo_adresse``).
    guides: bool = True
    #: Spacing of guide points along a street side (m).
    guide_step: float = 4.0
    #: Two numbers of one street side further apart than this are not joined …
    guide_max_number_gap: int = 30
    #: … nor two addresses further apart than this (m).
    guide_max_distance: float = 250.0
    #: How far a side's range is carried past its first and last known number, where its BV still holds the
    #: nearest address (m; 0 = not at all).
    guide_extension: float = 24.0
    #: Where the street network cuts a commune into blocks, a guide between two numbers that lie in different
    #: blocks takes the BV of the number whose block it is in: the BV changes at the street between them
    #: (:func:`blocks.guides_by_block`; cross-validated, bench/) …
    guide_blocks: bool = True
    #: A block whose addresses are all of one BV, which a range of another BV passes through (guides laid
    #: between two of that BV's numbers in other blocks: the numbers between them face this block), is split
    #: as a mixed block instead of going whole to the first BV (cross-validated, bench/).
    guide_through_blocks: bool = True
    #: … the range's BV taking no more of that block than this far from its guides (m), the rest staying
    #: with the block's BV: a range that clips a block's corner does not take its interior (bench/).
    guide_through_depth: float = 20.0
    #: In a block with addresses of several BVs, a BV there by its guides only (a range passing along the
    #: block, its numbers in other blocks) takes no more of it than ``guide_through_depth`` from its guides;
    #: the block's own BVs share the rest (bench/).
    guide_only_facades: bool = True
    #: Where street lines cut the commune into blocks, a side's range is carried on this far past its first
    #: and last known number inside the block of that number (m), where its BV still holds the nearest
    #: address: on the real list, an address past the last known number of its side and in its block is in
    #: its BV 99.98 % of the time (cross-validated, bench/). Blocks drawn from the addresses' own street
    #: axes are rough: there, ``guide_extension`` …
    guide_block_extension: float = 96.0
    #: … along the street: the edge of the block (a street axis) nearest its last number, within 45° of the
    #: direction of its last two numbers (bench/).
    guide_along_streets: bool = True
    #: … and out of that block, at most this far (m; 0: the range stays in its block).
    guide_extension_across: float = 24.0
    #: Where no street lines are given, street axes drawn from the addresses' labels (odd and even sides of a
    #: street face each other across it; :func:`guides.street_axes`) cut the commune into blocks as street
    #: lines would (cross-validated, bench/).
    address_axes: bool = True
    #: An address is paired with the other side of its street at most this far away (m) …
    axis_max_pair: float = 40.0
    #: … the axis through the midpoints is simplified within this tolerance (m) …
    axis_simplify: float = 2.0
    #: … and each end is carried on to the first axis it meets at most this far (m), else this far.
    axis_reach: float = 120.0
    axis_overshoot: float = 40.0
    #: A street numbered on one side only (nothing of the other side within ``axis_one_sided_reach`` m) gets
    #: an axis beside its addresses, on the side that odd-on-the-left numbering gives, where the commune's
    #: two-sided streets follow that convention at least this often (above 1 = never; cross-validated on
    #: both dev sets and the Val-de-Marne lists, bench/).
    axis_one_sided_min_agreement: float = 0.98
    axis_one_sided_reach: float = 100.0
    #: Worker processes for the per-commune stage (1 = in process).
    jobs: int = field(default=2, compare=False)

    def __post_init__(self):
        """One-line errors for settings out of range, before any work: a negative depth, a share above 1."""
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            low = "above 0" if f.name in POSITIVE else "at least 0"
            bad = math.isnan(v) or (v <= 0 if f.name in POSITIVE else v < 0) or (f.name in SHARES and v > 1)
            if bad:
                rule = f"{low} and at most 1" if f.name in SHARES else low
                raise InputError(f"parameter {f.name} = {v}: must be {rule}")
        if self.join_max_width < self.join_min_width:
            raise InputError(f"parameter join_max_width = {self.join_max_width}: must be at least join_min_width "
                             f"({self.join_min_width})")

    def as_dict(self) -> dict:
        """The parameters as plain JSON values (an infinite setting as ``"inf"``: JSON has no infinity)."""
        d = asdict(self)
        d.pop("jobs")
        d["geo_types"] = list(self.geo_types)
        return {k: str(v) if isinstance(v, float) and not math.isfinite(v) else v for k, v in d.items()}
