"""prepare(panel, pool, covariates) -> DiDDesign: the arrays a Bayesian DID needs, no PyMC.

The model is the clean-comparison (imputation / saturated-interaction) DID:

    y_it = a_i + g_t + x_it' b + D_it * tau_c(it) + e_it

(``g_t`` stands for any fixed effects of ``fe=`` other than the unit: period effects by
default, or e.g. province x year or plan-period effects, as dummy columns of ``phi``; the
unit effect ``a_i`` is the integrated-out random effect, absent when ``fe`` has no unit)

with one effect per treated cell c = (cohort, pooled groups..., event time k), and
tau_c = e_k + c_cohort + g_group... + u_cell: additive event-time, cohort and group
effects (weakly informative priors, not shrunk) plus a cell interaction u_cell partially
pooled toward zero, i.e. each cell is shrunk toward its additive prediction. Everything
except the unit effects a_i is stacked into one coefficient vector ``phi`` whose columns
are described by :attr:`DiDDesign.blocks`.

Outcome and covariates are standardised (``y_scale``, ``x_scale``) so that default priors
are on a unit scale; results are reported back on the original scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from scipy.linalg import solve_triangular

from ..errors import DesignError
from ..fixed_effects import DEFAULT_FE, parse_fe
from ..panel import Panel
from ..results import group_label
from .crossproducts import sufficient_stats

FIXED_PRIOR_SD = 10.0  # sd of the (nearly flat) priors on unit, period and covariate effects,
# in standard deviations of the outcome: proper, so the dense and marginal forms agree exactly.


@dataclass(frozen=True)
class Block:
    """A contiguous slice of ``phi``: name, size, and whether its scale is sampled."""

    name: str
    start: int
    size: int
    kind: str  # "fixed" (sd FIXED_PRIOR_SD), "mean" (sd effect_mean_sd), "random" (sampled sd)

    @property
    def slice(self) -> slice:
        return slice(self.start, self.start + self.size)


@dataclass(frozen=True, eq=False)
class DiDDesign:
    """Arrays and coordinates of the hierarchical DID (frozen; built by :func:`prepare`)."""

    n_obs: int
    n_units: int
    y_mean: float
    y_scale: float
    x_mean: np.ndarray
    x_scale: np.ndarray
    blocks: tuple[Block, ...]
    coords: dict[str, list]
    cells: pd.DataFrame  # one row per cell: cohort, groups, k, post, n_obs, weight, label
    # row level (dense model): standardised y, unit/time/cell indices, covariates
    y: np.ndarray
    unit_idx: np.ndarray
    time_idx: np.ndarray
    cell_idx: np.ndarray  # -1 for untreated rows
    X: np.ndarray
    prev_row: np.ndarray  # index of the same unit's previous period, -1 if none
    # sufficient statistics of W = [Z_phi | y] for the marginal likelihood
    stats: dict[str, np.ndarray] = field(repr=False)
    contiguous: bool = True
    cell_loadings: np.ndarray | None = field(default=None, repr=False)  # tau_cells = M @ phi
    Z: sp.csr_matrix | None = field(default=None, repr=False)  # rows x phi (residual checks)
    # FE dummies other than the unit: column (within the "time"/"fe" block) of each row,
    # one row per FE term, -1 where the row loads on no kept column
    fe_cols: np.ndarray | None = field(default=None, repr=False)
    unit_effect: bool = True  # False: no unit effect (fe without the unit)
    fe: str = DEFAULT_FE  # the resolved formula (panel column names)
    fe_label: str = "unit, time"  # the regression table's fixed-effects line
    # per-unit precision scales (panel weights, variance classes): :func:`scaled_stats`,
    # attached with dataclasses.replace; None = every unit has precision 1 / sigma^2
    scaled: dict | None = field(default=None, repr=False)
    # random_effects= terms (e.g. region x year): (block name, level code of each row)
    random_terms: tuple = field(default=(), repr=False)

    @property
    def n_phi(self) -> int:
        return sum(b.size for b in self.blocks)

    def block(self, name: str) -> Block:
        for b in self.blocks:
            if b.name == name:
                return b
        raise KeyError(name)

    @property
    def random_blocks(self) -> list[Block]:
        return [b for b in self.blocks if b.kind == "random"]


def prepare(panel: Panel, pool: tuple[str, ...], covariates: tuple[str, ...],
            leads: int = 0, fe: str | None = DEFAULT_FE,
            random_effects: str | None = None) -> DiDDesign:
    """Build the design of the clean-comparison DID from a validated panel.

    ``leads > 0`` adds lead cells: a treated unit's rows at event times ``-leads .. -2``
    get their own (placebo) effects, so pre-trends can be checked; event time -1 and
    earlier periods stay in the untreated reference.

    ``fe`` (pyfixest syntax, :mod:`bayesdid.fixed_effects`): the unit term is the
    integrated-out unit effect; every other term becomes dummy columns of the block
    ``"time"`` (default ``fe``) or ``"fe"`` (any other), with a vague prior; columns the unit
    effect and earlier-kept columns span are dropped (the first level of each), so that the
    block is of full rank. Without the unit term there is no unit effect and a constant
    column is added.

    ``random_effects`` (same syntax, e.g. ``"region^year"``): each term becomes a random
    block ``re_<columns>`` (one dummy column per level, all kept) with its own sampled
    pooling sd, integrated out with the rest of ``phi`` (:func:`random_effect_terms`).
    """
    df = panel.frame
    spec = parse_fe(panel, fe)
    re_terms = random_effect_terms(panel, spec, random_effects)
    unknown = [g for g in pool if g not in ("cohort", *panel.groups)]
    if unknown:
        raise DesignError(
            f"pool={pool!r} names {unknown}, which are not group columns of the panel",
            column=unknown[0], hint=f"pass groups={unknown} to Panel.from_frame "
            f"(panel groups: {list(panel.groups)})")
    missing_cov = [c for c in covariates if c not in panel.covariates]
    if missing_cov:
        raise DesignError(f"covariates {missing_cov} were not declared on the panel",
                          column=missing_cov[0],
                          hint="pass them as covariates=[...] to Panel.from_frame")
    groups = [g for g in pool if g != "cohort"]

    times = np.sort(df[panel.time].unique())
    time_idx = np.searchsorted(times, df[panel.time].to_numpy())
    unit_codes, unit_labels = pd.factorize(df[panel.unit], sort=False)
    unit_idx = unit_codes.astype(np.int64)

    y_raw = df[panel.outcome].to_numpy(dtype=float)
    y_mean = float(y_raw.mean())
    y_scale = float(y_raw.std()) or 1.0
    y = (y_raw - y_mean) / y_scale
    X_raw = df[list(covariates)].to_numpy(dtype=float) if covariates else np.zeros((len(df), 0))
    x_mean = X_raw.mean(axis=0)
    x_scale = X_raw.std(axis=0)
    constant = np.flatnonzero(x_scale == 0)
    if constant.size:
        raise DesignError(f"covariate {covariates[constant[0]]!r} is constant",
                          column=covariates[constant[0]])
    X = (X_raw - x_mean) / x_scale

    treated = df["treated"].to_numpy() == 1
    if leads:
        rel = df["rel_time"].astype("float").to_numpy()
        treated = treated | ((rel >= -leads) & (rel <= -2))
    cell_keys = ["cohort", *groups, "rel_time"]
    tr = df.loc[treated, cell_keys].copy()
    tr["cohort"] = tr["cohort"].astype(int)
    tr["rel_time"] = tr["rel_time"].astype(int)
    w = df[panel.weights].to_numpy(dtype=float) if panel.weights else np.ones(len(df))
    tr["_w"] = w[treated]
    cells = (tr.groupby(cell_keys, sort=True, observed=True)
             .agg(n_obs=("_w", "size"), weight=("_w", "sum")).reset_index())
    cell_of_row = np.full(len(df), -1, dtype=np.int64)
    cell_of_row[treated] = (tr[cell_keys].merge(cells[cell_keys].reset_index(), on=cell_keys,
                                                 how="left")["index"].to_numpy())
    cells = cells.rename(columns={"rel_time": "k"})
    cells["post"] = cells["k"] >= 0

    # column blocks of phi
    post = cells.loc[cells["post"]]  # cohort and group effects describe treatment effects
    cohorts = sorted(post["cohort"].unique().tolist())
    levels = {g: sorted(post[g].unique().tolist(), key=str) for g in groups}
    ks = sorted(cells["k"].unique().tolist())
    blocks: list[Block] = []
    fe_cols, fe_labels = _fe_columns(spec, unit_idx, len(unit_labels))
    default = spec.is_default
    fe_name = "time" if default else "fe"
    coords: dict[str, list] = {"covariate": list(covariates)}
    coords[fe_name] = times[1:].tolist() if default else fe_labels

    def add(name: str, size: int, kind: str) -> Block:
        start = blocks[-1].start + blocks[-1].size if blocks else 0
        blocks.append(Block(name, start, size, kind))
        return blocks[-1]

    add(fe_name, len(fe_labels), "fixed")
    add("beta", len(covariates), "fixed")
    # Main effects (event time, cohort, groups) get weakly informative priors and are not
    # shrunk; only the cell interactions are pooled toward the additive prediction. Pooling
    # main effects biased the ATT in calibration: effects grow with exposure and late event
    # times / early cohorts have few cells, so shrinking them pulls the weighted ATT down.
    add("event", len(ks), "mean")
    coords["event"] = ks
    if "cohort" in pool:
        add("cohort", len(cohorts), "mean")
        coords["cohort"] = cohorts
    for g in groups:
        add(g, len(levels[g]), "mean")
        coords[g] = levels[g]
    add("cell", len(cells), "random")
    coords["cell"] = [_cell_label(row, groups, panel.time_axis.name)
                      for row in cells.itertuples(index=False)]
    for name, _, labels in re_terms:
        add(name, len(labels), "random")
        coords[name] = labels
    blocks_t = tuple(b for b in blocks if b.size > 0)

    cells["label"] = coords["cell"]
    loadings = _cell_loadings(cells, blocks_t, groups, cohorts, levels, ks)
    Z = _phi_matrix(fe_cols, X, cell_of_row, loadings, blocks_t, len(df))
    if re_terms:
        Z = Z + _random_columns(re_terms, blocks_t, len(df))
    prev_row, contiguous = _previous_rows(unit_idx, time_idx)
    stats = sufficient_stats(Z, y, unit_idx, prev_row)
    return DiDDesign(
        n_obs=len(df), n_units=len(unit_labels), y_mean=y_mean, y_scale=y_scale,
        x_mean=x_mean, x_scale=x_scale, blocks=blocks_t, coords=coords, cells=cells,
        y=y, unit_idx=unit_idx, time_idx=time_idx, cell_idx=cell_of_row, X=X,
        prev_row=prev_row, stats=stats, contiguous=contiguous, cell_loadings=loadings.toarray(),
        fe_cols=fe_cols, unit_effect=spec.has_unit, fe=spec.formula,
        fe_label=spec.table_label, Z=Z,
        random_terms=tuple((name, codes) for name, codes, _ in re_terms))


def random_effect_terms(panel: Panel, spec, random_effects: str | None
                        ) -> list[tuple[str, np.ndarray, list[str]]]:
    """Parse ``random_effects`` (pyfixest syntax, e.g. ``"region^year"``): per term its
    block name ``re_<col>_<col>``, each row's level code and the level labels.

    A term may not contain the unit column (unit x anything is as fine as the errors) nor
    be a term of ``fe=`` (the same effects both fixed and random).

    >>> from bayesdid.datasets import simulate_staggered
    >>> sim = simulate_staggered(n_units=20, years=(2005, 2010), batches={2007: 5},
    ...                          random_seed=1)
    >>> panel = Panel.from_frame(sim.data, **sim.panel_kwargs)
    >>> [(name, len(labels)) for name, _, labels
    ...  in random_effect_terms(panel, parse_fe(panel), "region^time")]
    [('re_region_year', 24)]
    """
    if random_effects is None:
        return []
    if not isinstance(random_effects, str) or not random_effects.strip():
        raise DesignError(f"random_effects takes a pyfixest-style string such as "
                          f"'region^year' or None, got {random_effects!r}")
    re_spec = parse_fe(panel, random_effects)
    out = []
    for term in re_spec.terms:
        label = "^".join(term)
        if panel.unit in term:
            raise DesignError(
                f"random_effects term {label!r} contains the unit column {panel.unit!r}; "
                "unit effects are already in the model (fe=) and unit x period effects "
                "are indistinguishable from the errors", column=panel.unit,
                hint="use a unit-level group column, e.g. 'region^year'")
        if term in spec.terms:
            raise DesignError(
                f"random_effects term {label!r} is also a fixed effect in fe={spec.formula!r}",
                column=term[-1], hint=f"drop {label!r} from fe= or from random_effects=")
        codes, labels = re_spec.codes(term)
        out.append(("re_" + "_".join(term), codes, labels))
    return out


def _random_columns(re_terms, blocks, n) -> sp.csr_matrix:
    """Sparse (n x n_phi) dummies of the random-effect blocks (every level kept)."""
    by_name = {b.name: b for b in blocks}
    m = sum(b.size for b in blocks)
    rows = np.concatenate([np.arange(n)] * len(re_terms))
    cols = np.concatenate([by_name[name].start + codes for name, codes, _ in re_terms])
    return sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n, m))


RANK_TOL = 1e-9  # a FE column whose residual norm^2 is below this fraction of its own: spanned


def _fe_columns(spec, unit_idx: np.ndarray, n_units: int) -> tuple[np.ndarray, list[str]]:
    """Column of each row per non-unit FE term, and the kept columns' labels.

    Full dummies of every term (plus a constant without the unit effect) are candidates;
    going from the last column to the first, a column is kept when the unit dummies (if
    any) and the columns kept so far do not span it (incremental Cholesky of the Gram
    matrix with the unit dummies projected out; written by hand because the kept set must
    be the 'drop the first level' one, which a pivoted QR does not give).
    """
    n = unit_idx.size
    codes, labels = [], []
    if not spec.has_unit:
        codes.append(np.zeros(n, np.int64))
        labels.append(["(constant)"])
    for term in spec.terms:
        if term == (spec.unit,):
            continue
        c, lab = spec.codes(term)
        codes.append(c)
        labels.append(lab)
    sizes = [len(lab) for lab in labels]
    offsets = np.cumsum([0, *sizes])
    m = int(offsets[-1])
    if m == 0:
        return np.zeros((0, n), np.int64), []
    rows = np.concatenate([np.arange(n)] * len(codes))
    cols = np.concatenate([c + o for c, o in zip(codes, offsets)])
    C = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n, m))
    G = np.asarray((C.T @ C).todense(), float)
    if spec.has_unit:
        U = sp.csr_matrix((np.ones(n), (np.arange(n), unit_idx)), shape=(n, n_units))
        UC = np.asarray((U.T @ C).todense(), float)
        G -= UC.T @ (UC / np.bincount(unit_idx, minlength=n_units)[:, None])
    count = np.asarray(C.sum(axis=0)).ravel()
    L = np.zeros((m, m))
    kept: list[int] = []
    for j in range(m - 1, -1, -1):
        k = len(kept)
        g = G[kept, j]
        ell = solve_triangular(L[:k, :k], g, lower=True) if k else g
        r = G[j, j] - ell @ ell
        if r > RANK_TOL * count[j]:
            L[k, :k], L[k, k] = ell, np.sqrt(r)
            kept.append(j)
    kept = sorted(kept)
    new_col = np.full(m, -1, np.int64)
    new_col[kept] = np.arange(len(kept))
    fe_cols = np.stack([new_col[c + o] for c, o in zip(codes, offsets)])
    flat = [lab for lab_list in labels for lab in lab_list]
    return fe_cols, [flat[j] for j in kept]


def _cell_label(row, groups: list[str], name) -> str:
    parts = {"cohort": name(row.cohort), **{g: getattr(row, g) for g in groups}, "k": row.k}
    return group_label(**parts)


def _cell_loadings(cells, blocks, groups, cohorts, levels, ks) -> sp.csr_matrix:
    """(n_cells x n_phi) map from coefficients to cell effects: tau_cells = M @ phi.

    Every cell loads on its event-time effect and its own interaction; post-treatment cells
    (k >= 0) also on their cohort and group effects.
    """
    by_name = {b.name: b for b in blocks}
    n_cells = len(cells)
    rows, cols = [np.arange(n_cells)], [by_name["event"].start + np.searchsorted(ks, cells["k"])]
    rows.append(np.arange(n_cells))
    cols.append(by_name["cell"].start + np.arange(n_cells))
    post = np.flatnonzero(cells["post"].to_numpy())
    if "cohort" in by_name:
        rows.append(post)
        cols.append(by_name["cohort"].start
                    + np.array([cohorts.index(c) for c in cells["cohort"].to_numpy()[post]],
                               dtype=np.int64))
    for g in groups:
        rows.append(post)
        cols.append(by_name[g].start + np.array(
            [levels[g].index(v) for v in cells[g].to_numpy()[post]], dtype=np.int64))
    r, c = np.concatenate(rows), np.concatenate(cols)
    m = sum(b.size for b in blocks)
    return sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(n_cells, m))


def _phi_matrix(fe_cols, X, cell_of_row, loadings, blocks, n) -> sp.csr_matrix:
    """Sparse (n x n_phi) design of everything but the unit effects.

    ``fe_cols``: (terms x n) column of each row within the FE block (-1: none); a 1-D
    array is read as period indices of the default design (period 0 dropped).
    """
    by_name = {b.name: b for b in blocks}
    m = sum(b.size for b in blocks)
    rows, cols, vals = [], [], []
    fe_cols = np.asarray(fe_cols)
    if fe_cols.ndim == 1:
        fe_cols = (fe_cols - 1)[None, :]
    t = by_name.get("time") or by_name.get("fe")
    for term_cols in fe_cols:
        has_t = term_cols >= 0
        rows.append(np.flatnonzero(has_t))
        cols.append(t.start + term_cols[has_t])
        vals.append(np.ones(has_t.sum()))
    for j in range(X.shape[1]):
        rows.append(np.arange(n))
        cols.append(np.full(n, by_name["beta"].start + j))
        vals.append(X[:, j])
    base = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(n, m))
    in_cell = np.flatnonzero(cell_of_row >= 0)
    pick = sp.csr_matrix((np.ones(len(in_cell)), (in_cell, cell_of_row[in_cell])),
                         shape=(n, loadings.shape[0]))
    return (base + pick @ loadings).tocsr()


def _previous_rows(unit_idx: np.ndarray, time_idx: np.ndarray) -> tuple[np.ndarray, bool]:
    """Row index of the same unit's previous observed row (rows sorted by unit, time),
    and whether every unit's rows are consecutive grid periods (needed for AR(1))."""
    prev = np.full(len(unit_idx), -1, dtype=np.int64)
    same_unit = np.r_[False, unit_idx[1:] == unit_idx[:-1]]
    prev[same_unit] = np.flatnonzero(same_unit) - 1
    consecutive = np.r_[False, time_idx[1:] == time_idx[:-1] + 1]
    return prev, bool(np.all(consecutive[same_unit]))
