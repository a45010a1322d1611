"""Placebo tests of the four kinds used in the pilot-policy papers (LCCP seed, section 6.1).

``kind=``

* ``"shifted_timing"`` (a): every treated unit's start moved by ``k`` periods, one TWFE
  fit per ``k`` in ``shifts`` (default advance 3, 2, 1 and delay 1, 2).
* ``"random_timing"`` (b): the treated units keep their status, their start periods are
  drawn at random (``timing="advance"``, default: uniformly among the periods before the
  real start, after the unit's first observed one -- the paper's Figure 4 variant;
  ``timing="any"``: uniformly among all periods after the first). N draws (default 1000).
* ``"fictional_group"`` (c): the real treated units join the controls and as many units
  drawn from the controls (``pool="controls"``, the paper; or from all units) take their
  start periods, cohort sizes kept. N draws (default 1000).
* ``"both_random"`` (d): as many units as really treated drawn from all units, each with a
  random start period. N draws (default 500).

For TWFE (the default estimator) no placebo redoes the regression: the unit and time
fixed effects and the covariates are partialled out of the outcome once
(Frisch-Waugh-Lovell, :mod:`bayesdid.did._demean`), each batch of placebo treatment
columns is two-way demeaned in one call, and each coefficient is a ratio of dot products;
the estimates equal pyfixest's ``feols`` to rounding. Any other estimator (a function
``panel -> EffectResult`` with an ``("att", "overall")`` row) is refitted per draw.

Draw ``r`` uses the seed ``numpy.random.SeedSequence(random_seed, spawn_key=(r,))``, so the
placebo distribution is identical whatever the backend (in-process, local processes,
Dask) and the number of workers. Draws are sent to the backend in chunks
(``chunk_size``), see :func:`bayesdid.parallel.run_replications`; another chunk size
gives the same assignments and estimates equal to rounding (~1e-16: batched BLAS).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..errors import BayesDidError, DesignError, EstimationError
from ..panel import LogEntry, Panel
from ..parallel import run_replications
from ..fixed_effects import DEFAULT_FE, covariate_matrix, parse_fe
from ..results import EffectResult
from ..did._demean import FWLDesign, fwl_design
from ..did._fixest import resolve
from ..did.twfe import twfe
from .placebo_result import PlaceboResult

__all__ = ["KINDS", "PlaceboResult", "placebo", "placebo_assignments"]

logger = logging.getLogger(__name__)

KINDS = ("shifted_timing", "random_timing", "fictional_group", "both_random")
DEFAULT_DRAWS = {"random_timing": 1000, "fictional_group": 1000, "both_random": 500}


# ---------------------------------------------------------------------- assignments
@dataclass(frozen=True, eq=False)
class _Assigner:
    """Unit-level facts a draw needs (small, picklable). Cohorts are first treated
    periods as floats, ``inf`` for never treated."""

    kind: str
    cohorts: np.ndarray
    lo: np.ndarray      # per unit: index into ``times`` of the first feasible start
    hi: np.ndarray      # per unit: one past the last feasible start
    times: np.ndarray
    pool: np.ndarray    # unit codes eligible for a fictional group
    entropy: int

    def rng(self, r: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence(self.entropy, spawn_key=(r,)))

    def draw(self, r: int) -> np.ndarray:
        rng = self.rng(r)
        treated = np.flatnonzero(np.isfinite(self.cohorts))
        out = np.full(self.cohorts.size, np.inf)
        if self.kind == "random_timing":
            out[treated] = self.times[rng.integers(self.lo[treated], self.hi[treated])]
        elif self.kind == "fictional_group":
            chosen = rng.choice(self.pool, size=treated.size, replace=False)
            out[chosen] = self.cohorts[treated]
        else:  # both_random
            chosen = rng.choice(self.pool, size=treated.size, replace=False)
            out[chosen] = self.times[rng.integers(self.lo[chosen], self.hi[chosen])]
        return out


@dataclass(frozen=True, eq=False)
class _Layout:
    """Row -> unit code and row time, unit values, first/last observed period per unit."""

    unit_values: np.ndarray
    unit_code: np.ndarray
    time: np.ndarray
    cohorts: np.ndarray
    first: np.ndarray
    last: np.ndarray

    @classmethod
    def of(cls, panel: Panel) -> _Layout:
        f = panel.frame
        code, values = pd.factorize(f[panel.unit])
        by_unit = pd.DataFrame({"code": code, "t": f[panel.time].to_numpy(),
                                "c": f["cohort"].astype("float64").to_numpy()}).groupby("code")
        cohorts = by_unit["c"].first().fillna(np.inf).to_numpy()
        return cls(np.asarray(values), code, f[panel.time].to_numpy(), cohorts,
                   by_unit["t"].min().to_numpy(), by_unit["t"].max().to_numpy())

    def treatment(self, cohorts: np.ndarray) -> np.ndarray:
        """Rows x draws 0/1 treatment matrix from units x draws start periods."""
        return (self.time[:, None] >= cohorts[self.unit_code]).astype(np.float64)


def _assigner(panel: Panel, layout: _Layout, kind: str, timing: str, pool: str,
              entropy: int) -> _Assigner:
    times = panel.times.astype(float)
    lo = np.searchsorted(times, layout.first, side="right")   # start after the first period
    hi = np.searchsorted(times, layout.last, side="right")    # ... and no later than the last
    treated = np.isfinite(layout.cohorts)
    if kind == "random_timing" and timing == "advance":
        hi = np.where(treated, np.searchsorted(times, layout.cohorts, side="left"), hi)
    short = treated & (hi <= lo) if kind == "random_timing" else hi <= lo
    if kind == "random_timing" and short.any():
        rows = pd.DataFrame({panel.unit: layout.unit_values[short],
                             "cohort": layout.cohorts[short], "first_period": layout.first[short]})
        raise DesignError(
            f"{int(short.sum())} treated unit(s) of column {panel.unit!r} have no period "
            f"to draw a placebo start from (timing={timing!r}: a start needs a pre-period"
            f"{' and must precede the real start' if timing == 'advance' else ''})",
            column=panel.unit, rows=rows,
            hint="use timing='any', or drop units treated right after their first period")
    codes = np.arange(layout.cohorts.size)
    if kind == "fictional_group":
        eligible = codes[~treated] if pool == "controls" else codes
    else:
        eligible = codes[hi > lo]  # both_random: units with room for a start
    if kind in ("fictional_group", "both_random") and eligible.size < treated.sum():
        raise DesignError(
            f"{kind}: {int(treated.sum())} treated unit(s) but only {eligible.size} unit(s) "
            f"of column {panel.unit!r} to draw a placebo group from"
            f"{' (never-treated controls)' if kind == 'fictional_group' and pool == 'controls' else ''}",
            column=panel.unit, hint="pass pool='all' to draw from every unit"
            if kind == "fictional_group" and pool == "controls" else None)
    return _Assigner(kind, layout.cohorts, lo, hi, times, eligible, int(entropy))


# ---------------------------------------------------------------------- workers
@dataclass(frozen=True, eq=False)
class _FastTask:
    design: FWLDesign
    layout: _Layout
    assigner: _Assigner


def _fast_chunk(task: _FastTask, start: int, stop: int) -> np.ndarray:
    """TWFE placebo coefficients of draws ``start..stop-1``: one demeaning call per chunk."""
    cohorts = np.column_stack([task.assigner.draw(r) for r in range(start, stop)])
    return task.design.coef(task.layout.treatment(cohorts))


def _relabel(panel: Panel, layout: _Layout, cohorts: np.ndarray, what: str) -> Panel:
    """The panel with each unit's start replaced (``inf`` = never treated)."""
    frame = panel.frame.copy()
    row_cohort = cohorts[layout.unit_code]
    never = ~np.isfinite(row_cohort)
    frame["cohort"] = pd.Series(np.where(never, np.nan, row_cohort), index=frame.index).astype("Int64")
    frame["treated"] = (layout.time >= row_cohort).astype("int64")
    frame["rel_time"] = (frame[panel.time] - frame["cohort"]).astype("Int64")
    frame["never_treated"] = never
    return panel.with_frame(frame, LogEntry("placebo", what, int(np.isfinite(cohorts).sum())))


def _att(result: EffectResult) -> float:
    return float(result.effect("att", "overall")["estimate"])


def _estimator_chunk(panel: Panel, layout: _Layout, assigner: _Assigner,
                     estimator: Callable[[Panel], EffectResult], start: int,
                     stop: int) -> np.ndarray:
    out = np.empty(stop - start)
    for j, r in enumerate(range(start, stop)):
        placebo_panel = _relabel(panel, layout, assigner.draw(r), f"{assigner.kind} draw {r}")
        try:
            out[j] = _att(estimator(placebo_panel))
        except EstimationError as exc:
            logger.warning("placebo draw %d failed: %s", r, exc)
            out[j] = np.nan
    return out


# ---------------------------------------------------------------------- API
def _check_options(panel, kind, n_draws, shifts, timing, pool, chunk_size, random_seed, level):
    if not isinstance(panel, Panel):
        raise BayesDidError(f"expected a bayesdid Panel, got {type(panel).__name__}; "
                            "build one with Panel.from_frame(df, ...)")
    if kind not in KINDS:
        raise BayesDidError(f"unknown placebo kind {kind!r}", hint=f"use one of {KINDS}")
    if kind == "shifted_timing":
        if n_draws is not None:
            raise BayesDidError("n_draws does not apply to kind='shifted_timing' (one fit "
                                "per shift)", hint="pass shifts=(-3, -2, -1, 1, 2) instead")
        ks = list(shifts) if isinstance(shifts, Sequence) and not isinstance(shifts, str) else None
        if (not ks or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) for k in ks)
                or 0 in ks or len(set(ks)) != len(ks)):
            raise BayesDidError(f"shifts must be distinct non-zero integers, got {shifts!r}",
                                hint="negative = advance, positive = delay, e.g. (-3, -2, -1, 1, 2)")
    else:
        n = DEFAULT_DRAWS[kind] if n_draws is None else n_draws
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise BayesDidError(f"n_draws must be a positive integer, got {n_draws!r}",
                                hint=f"the LCCP papers use {DEFAULT_DRAWS[kind]}")
    if timing not in ("any", "advance"):
        raise BayesDidError(f"timing must be 'any' or 'advance', got {timing!r}")
    if pool not in ("controls", "all"):
        raise BayesDidError(f"pool must be 'controls' or 'all', got {pool!r}")
    if chunk_size is not None and (isinstance(chunk_size, bool) or
                                   not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1):
        raise BayesDidError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if random_seed is not None and (isinstance(random_seed, bool) or
                                    not isinstance(random_seed, (int, np.integer)) or random_seed < 0):
        raise BayesDidError(f"random_seed must be a non-negative integer or None, "
                            f"got {random_seed!r}")
    if not 0 < level < 1:
        raise BayesDidError(f"level must be in (0, 1), got {level!r}")


def placebo_assignments(panel: Panel, kind: str, draws: Sequence[int], *, random_seed: int = 0,
                        timing: str = "advance", pool: str = "controls") -> pd.DataFrame:
    """The placebo start periods of the given draws: units x draws, ``<NA>`` = untreated.

    Draw ``r`` here is draw ``r`` of :func:`placebo` with the same seed and options, so
    any placebo can be refitted independently.

    >>> from bayesdid.datasets.simulate import simulate_staggered
    >>> sim = simulate_staggered(n_units=30, years=(2005, 2012), batches={2008: 5})
    >>> p = Panel.from_frame(sim.data, **sim.panel_kwargs)
    >>> a = placebo_assignments(p, "fictional_group", [0, 1], random_seed=3)
    >>> a.notna().sum().tolist()
    [5, 5]
    """
    if kind == "shifted_timing" or kind not in KINDS:
        raise BayesDidError(f"placebo_assignments takes a random kind, got {kind!r}",
                            hint=f"use one of {KINDS[1:]}")
    _check_options(panel, kind, 1, (), timing, pool, None, random_seed, 0.95)
    layout = _Layout.of(panel)
    assigner = _assigner(panel, layout, kind, timing, pool, random_seed)
    table = pd.DataFrame({int(r): assigner.draw(int(r)) for r in draws},
                         index=pd.Index(layout.unit_values, name=panel.unit))
    return table.replace(np.inf, np.nan).astype("Int64")


def placebo(panel: Panel, kind: str = "random_timing", *, n_draws: int | None = None,
            shifts: Sequence[int] = (-3, -2, -1, 1, 2), timing: str = "advance",
            pool: str = "controls", estimator: Callable[[Panel], EffectResult] | None = None,
            real_result: EffectResult | None = None, fe: str | None = DEFAULT_FE,
            covariates: str | Sequence[str] | None = None, cluster: str | None = None,
            weights: str | None = None, level: float = 0.95, random_seed: int | None = 0,
            workers: int | None = None, client: Any = None, fallback: bool = False,
            timeout: float = 10.0, chunk_size: int | None = None,
            progress: bool = True) -> PlaceboResult:
    """Run a placebo test of one of the four kinds (see the module docstring).

    Parameters
    ----------
    kind : ``"shifted_timing"``, ``"random_timing"``, ``"fictional_group"`` or
        ``"both_random"``.
    n_draws : placebo draws (random kinds); default 1000, 500 for ``both_random``.
    shifts : for ``shifted_timing``: periods to move every start by (negative =
        advance). A shift that moves a start before a unit's second observed period or
        after its last is a :class:`~bayesdid.errors.DesignError`.
    timing : ``random_timing`` only: ``"advance"`` (default; a start drawn uniformly
        among the periods after the unit's first one and before its real start, the
        paper's variant) or ``"any"`` (uniformly among all periods after the first).
    pool : ``fictional_group`` only: draw the fictional group from the never-treated
        ``"controls"`` (paper) or from ``"all"`` units.
    estimator : ``panel -> EffectResult``; default TWFE (:func:`bayesdid.did.twfe.twfe`
        with ``fe``, ``covariates``, ``cluster``, ``weights``, ``level``) through the fast
        path. ``fe`` is pyfixest syntax (default ``"unit + time"``; its columns must be
        panel columns).
        A custom estimator is refitted for every draw and ignores those options.
    real_result : the estimator's fit on the real treatment, when you already have it
        (e.g. ``twfe(panel)`` from the baseline table), so it is not refitted. For TWFE it
        must agree with the fast path's real estimate (else a ``BayesDidError``).
    random_seed : seed of the draws (see module docstring); ``None`` draws a fresh seed
        and records it in the result.
    workers, client, fallback, timeout : backend, see
        :func:`bayesdid.parallel.run_replications`. Without ``client``, ``workers=None``
        runs the TWFE fast path in this process (1000 refits take well under a second on
        an LCCP-sized panel, less than starting worker processes; this also applies to a
        ``fallback``) and a custom estimator on local processes on all cores.
    chunk_size : draws per task (default 50 for the fast path, 5 otherwise).
    progress : show a progress bar.

    Examples
    --------
    >>> from bayesdid.datasets.simulate import simulate_staggered
    >>> sim = simulate_staggered(n_units=60, years=(2005, 2014), batches={2008: 8, 2010: 8})
    >>> p = Panel.from_frame(sim.data, **sim.panel_kwargs)
    >>> res = placebo(p, "fictional_group", n_draws=200, random_seed=1, progress=False)
    >>> res.draws.shape, res.p_value < 0.05
    ((200,), True)
    """
    _check_options(panel, kind, n_draws, shifts, timing, pool, chunk_size, random_seed, level)
    covs, cl, w = resolve(panel, covariates, cluster, weights)
    spec = parse_fe(panel, fe)
    fast = estimator is None
    fit = functools.partial(twfe, fe=fe, covariates=covs, cluster=cl, weights=w or "",
                            level=level) if fast else estimator
    if not callable(fit):
        raise BayesDidError(f"estimator must be a function panel -> EffectResult, "
                            f"got {type(estimator).__name__}")
    method = "twfe" if fast else getattr(estimator, "__name__", type(estimator).__name__)
    given = real_result is not None
    real_result = fit(panel) if real_result is None else real_result
    if not isinstance(real_result, EffectResult):
        raise BayesDidError(f"estimator returned {type(real_result).__name__}, "
                            "expected an EffectResult with an ('att', 'overall') row")
    layout = _Layout.of(panel)
    real = _att(real_result)
    info: dict[str, Any] = {"covariates": covs, "cluster": cl, "weights": w, "fe": spec.formula,
                            "n_obs": panel.n_obs}
    design = None
    if fast:
        f = panel.frame
        design = fwl_design(f[panel.outcome].to_numpy(float), layout.unit_code,
                            pd.factorize(f[panel.time], sort=True)[0],
                            covariate_matrix(panel, covs)[1] if len(covs) else None,
                            f[w].to_numpy(float) if w else None,
                            None if spec.is_default else
                            np.column_stack([spec.codes(t)[0] for t in spec.terms] or
                                            [np.zeros((len(f), 0))]))
        real_fast = float(design.coef(f["treated"].to_numpy(float))[0])
        info["real_pyfixest"] = real
        if abs(real_fast - real) > 1e-6 * (1 + abs(real)):
            if given:
                raise BayesDidError(
                    f"real_result's estimate {real:.8g} is not the TWFE estimate {real_fast:.8g} "
                    "of this panel with these covariates/weights", hint="pass the result of "
                    "twfe(panel) with the same options, or leave real_result=None")
            logger.warning("fast TWFE %.10g differs from pyfixest %.10g", real_fast, real)
        real = real_fast  # the placebo draws are computed the same way

    if kind == "shifted_timing":
        return _shifted(panel, layout, tuple(int(k) for k in shifts), fit, real, real_result,
                        method, level, progress, info)

    n = DEFAULT_DRAWS[kind] if n_draws is None else int(n_draws)
    entropy = np.random.SeedSequence().entropy if random_seed is None else int(random_seed)
    assigner = _assigner(panel, layout, kind, timing, pool, entropy)
    size = chunk_size or (50 if fast else 5)
    bounds = [(s, min(s + size, n)) for s in range(0, n, size)]
    if fast:
        task = _FastTask(design, layout, assigner)
        args = [(task, s, e) for s, e in bounds]
        fn, workers = _fast_chunk, 1 if workers is None else workers
    else:
        args = [(panel, layout, assigner, fit, s, e) for s, e in bounds]
        fn = _estimator_chunk
    chunks = run_replications(fn, args, workers=workers, client=client, progress=progress,
                              desc=f"placebo {kind}", timeout=timeout, fallback=fallback,
                              sizes=[e - s for s, e in bounds])
    draws = np.concatenate(chunks)
    failed = int((~np.isfinite(draws)).sum())
    if failed == n:
        raise EstimationError(f"every one of the {n} placebo draws failed (treatment absorbed "
                              "by the fixed effects and covariates)")
    if failed:
        logger.warning("%d of %d placebo draws gave no estimate and are left out", failed, n)
    info.update(n_failed=failed, timing=timing if kind == "random_timing" else None,
                pool=pool if kind == "fictional_group" else None, chunk_size=size)
    return PlaceboResult(kind=kind, real=real, draws=draws, real_result=real_result,
                         method=method, level=level, random_seed=entropy, info=info)


def _shifted(panel, layout, shifts, fit, real, real_result, method, level, progress, info):
    treated = np.isfinite(layout.cohorts)
    results = []
    for k in tqdm(shifts, desc="placebo shifted_timing", disable=not progress):
        moved = layout.cohorts + k
        bad = treated & ((moved <= layout.first) | (moved > layout.last))
        if bad.any():
            rows = pd.DataFrame({panel.unit: layout.unit_values[bad],
                                 "cohort": layout.cohorts[bad], "shifted": moved[bad],
                                 "first_period": layout.first[bad],
                                 "last_period": layout.last[bad]})
            raise DesignError(
                f"shift {k:+d} moves the start of {int(bad.sum())} treated unit(s) of column "
                f"{panel.unit!r} outside the data (a start needs a pre-period and a treated "
                "period in the sample)", column=panel.unit, rows=rows,
                hint="use smaller shifts, e.g. advance at most to the second period and delay "
                     "at most to the last")
        results.append(fit(_relabel(panel, layout, moved, f"start shifted by {k:+d}")))
    draws = np.array([_att(r) for r in results])
    return PlaceboResult(kind="shifted_timing", real=real, draws=draws, real_result=real_result,
                         method=method, level=level, random_seed=None, shifts=shifts,
                         shift_results=tuple(results), info=info)
