"""Shared back end of the Bayesian synthetic and regression control methods.

* :class:`SynthDesign` — targets (treated units, or placebo units), their donors and the
  standardised arrays the PyMC graphs see (NumPy only, no PyMC);
* :func:`partial_pool` — hierarchical pooling of several treated units' ATTs;
* :func:`assemble` — from draws of the counterfactual mean and noise to the
  :class:`BayesSynthResult` (gap path, per-unit and pooled ATT, weights);
* :class:`BayesSynthResult` — a :class:`~bayesdid.bayes.result.BayesResult` with
  :meth:`~BayesSynthResult.weights`, :meth:`~BayesSynthResult.path` and
  :meth:`~BayesSynthResult.ppc`.

Counterfactual and gap
    For each posterior draw ``s`` the untreated outcome of target ``j`` in period ``t`` is
    predicted as ``y0 = mu_s[j, t] + sigma_s[j] * eps`` (``mu`` the synthetic mean,
    ``eps`` standard normal): a posterior *predictive* draw, observation noise included
    (with AR(1) noise the noise is a path instead, see
    :mod:`~bayesdid.synthetic.bayes_synth_ar1`: over post-periods it continues the last
    pre-period residual).
    The gap ``y - y0`` therefore estimates the realised effect ``Y1 - Y0`` of that
    period, whose truth has no noise left, and in pre-periods its 95% band should cover 0
    for about 95% of the periods (the check of :meth:`BayesSynthResult.ppc`). ``att`` of a
    unit is the mean gap over its treated periods. Labels follow the classical
    :func:`bayesdid.synthetic.synth.synth` so that ``compare`` aligns them: ``gap`` groups
    ``t=1990`` (one treated unit) or ``unit=Fujian, t=2017``; per-unit ``att`` rows only
    when there are several treated units (``att|overall`` always).

Pooling several treated units (``pooling="partial"``)
    The weights of each unit are learnt from that unit's pre-periods only (the post
    periods never inform the weights: a "cut" / modular posterior, so that a dynamic
    effect cannot bend the synthetic unit). The per-unit ATT posteriors, summarised as
    normal likelihoods ``N(m_j, s_j^2)``, then enter the normal hierarchical model
    ``theta_j ~ N(mu, tau^2)``, ``mu ~ N(0, (effect_sd*scale)^2)``,
    ``tau ~ HalfNormal(pooling_sd*scale)`` (``scale``: the mean standardisation scale),
    solved exactly (BDA3 section 5.4): ``tau`` on a grid, ``mu | tau`` and
    ``theta_j | mu, tau`` normal. Each unpooled draw is mapped to a pooled draw by the
    conditional's affine map, so draws stay paired with the gap paths. Reported:
    ``att`` per unit (shrunk), ``att_unpooled`` per unit, ``att|overall`` (the
    post-period-weighted mean of the shrunk per-unit ATTs: the treated units' own average
    effect) and ``att_population|overall`` (``mu``, the effect expected in a new unit).
    All per-unit draws ``s`` come from one joint posterior draw (every unit's weights,
    noise and counterfactual path of draw ``s``), so the draw-wise average is the joint
    posterior of the average. Not modelled: the residual of a unit, ``e_j - w_j' e_donors``,
    contains the donors' noise, so units sharing donors have correlated errors, which the
    model treats as independent (on the pilot-zone simulator the correlation of the units'
    ATT errors is -0.1 to 0.3 and the pooled ATT still covers at least as well as a unit:
    benchmarks/results/synth_coverage.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from .donors import DonorPool, donor_pool
from ..errors import BayesDidError, DesignError
from ..panel import Panel
from ..results import group_label
from ..bayes.result import BayesResult

__all__ = ["SynthDesign", "prepare_design", "partial_pool", "assemble", "BayesSynthResult",
           "SynthResult", "as_pool"]

_TAU_GRID = 400


@dataclass(frozen=True, eq=False)
class SynthDesign:
    """Arrays of one synthetic/regression-control fit (K targets, D donors each, T periods).

    ``y`` (T, K) and ``X`` (T, K, D) are standardised: ``y = (Y - y_center) / y_scale``,
    ``X[:, k, d] = (Y_d - x_center[k, d]) / x_scale[k, d]``; ``pre`` (T, K) marks the
    periods each target is fitted on; ``donor_idx`` (K, D) indexes ``donor_units``.
    """

    times: np.ndarray
    targets: tuple
    donor_units: tuple
    donor_idx: np.ndarray
    y_obs: np.ndarray
    y_donors: np.ndarray
    y: np.ndarray
    X: np.ndarray
    pre: np.ndarray
    y_center: np.ndarray
    y_scale: np.ndarray
    x_center: np.ndarray
    x_scale: np.ndarray
    outcome: str
    time_name: Callable = int  # a period's label in effect groups (see DonorPool)

    @property
    def n_targets(self) -> int:
        return len(self.targets)

    @property
    def n_donors(self) -> int:
        return self.donor_idx.shape[1]

    @property
    def shared_donors(self) -> bool:
        """Every target uses the same donors in the same order (not so for placebos)."""
        return bool((self.donor_idx == self.donor_idx[0]).all())


def as_pool(data: Panel | DonorPool) -> DonorPool:
    if isinstance(data, DonorPool):
        return data
    if isinstance(data, Panel):
        return donor_pool(data)
    raise BayesDidError(f"expected a bayesdid Panel or DonorPool, got {type(data).__name__}; "
                        "build one with Panel.from_frame(df, ...) or donor_pool(panel)")


def prepare_design(y_obs: np.ndarray, y_donors: np.ndarray, donor_idx: np.ndarray,
                   pre: np.ndarray, *, times, targets, donor_units, outcome: str,
                   per_donor_scale: bool, time_name: Callable = int) -> SynthDesign:
    """Standardise: by the pooled mean and sd of each target's donors over its pre-periods
    (``per_donor_scale=False``, synthetic control: a simplex combination is affine-invariant
    under a common shift and scale), or each donor and the target by their own pre-period
    mean and sd (``True``, regression control)."""
    T, K = y_obs.shape
    D = donor_idx.shape[1]
    X_raw = y_donors[:, donor_idx]  # (T, K, D)
    y_center, y_scale = np.empty(K), np.empty(K)
    x_center, x_scale = np.empty((K, D)), np.empty((K, D))
    for k in range(K):
        pk = pre[:, k]
        if pk.sum() < 2:
            raise DesignError(f"target {targets[k]!r} has {int(pk.sum())} pre-treatment "
                              "period(s); at least 2 are needed to fit its weights",
                              column=outcome)
        block = X_raw[pk, k, :]
        if per_donor_scale:
            x_center[k], x_scale[k] = block.mean(axis=0), block.std(axis=0)
            y_center[k], y_scale[k] = y_obs[pk, k].mean(), y_obs[pk, k].std()
            flat = x_scale[k] <= 1e-12 * max(1.0, np.abs(block).max())
            if flat.any():
                raise DesignError(
                    f"donor(s) {[donor_units[i] for i in donor_idx[k][flat]][:10]} have a "
                    f"constant outcome over the pre-periods of {targets[k]!r}; they carry no "
                    "information for a regression", column=outcome,
                    hint="drop them with donor_pool(panel, donors=[...])")
            if y_scale[k] <= 1e-12 * max(1.0, np.abs(y_obs[pk, k]).max()):
                y_scale[k] = 1.0 if x_scale[k].mean() == 0 else float(x_scale[k].mean())
        else:
            x_center[k], x_scale[k] = block.mean(), block.std()
            y_center[k], y_scale[k] = x_center[k, 0], x_scale[k, 0]
            if y_scale[k] <= 1e-12 * max(1.0, np.abs(block).max()):
                raise DesignError(f"the donors of {targets[k]!r} have a constant outcome over "
                                  "its pre-periods; there is nothing to fit", column=outcome)
    X = (X_raw - x_center[None]) / x_scale[None]
    y = (y_obs - y_center[None]) / y_scale[None]
    return SynthDesign(times=np.asarray(times), targets=tuple(targets),
                       donor_units=tuple(donor_units), donor_idx=np.asarray(donor_idx),
                       y_obs=y_obs, y_donors=y_donors, y=y, X=X, pre=pre.astype(bool),
                       y_center=y_center, y_scale=y_scale, x_center=x_center,
                       x_scale=x_scale, outcome=outcome, time_name=time_name)


def design_from_pool(pool: DonorPool, *, per_donor_scale: bool) -> SynthDesign:
    """The treated units of ``pool`` as targets, all its donors as every target's donors."""
    K, D = len(pool.treated_units), pool.n_donors
    pre = np.column_stack([pool.pre_periods(j) for j in range(K)])
    return prepare_design(pool.y_treated, pool.y_donors, np.tile(np.arange(D), (K, 1)), pre,
                          times=pool.times, targets=pool.treated_units,
                          donor_units=pool.donor_units, outcome=pool.outcome,
                          time_name=pool.time_name,
                          per_donor_scale=per_donor_scale)


# ---------------------------------------------------------------------- pooling
def partial_pool(draws: np.ndarray, *, effect_sd: float, pooling_sd: float,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact normal hierarchical pooling of per-unit effect draws.

    ``draws`` (S, K): unpooled posterior draws of K units' effects. Returns pooled draws
    (S, K), ``mu`` draws (S,) and ``tau`` draws (S,).

    >>> rng = np.random.default_rng(0)
    >>> d = rng.normal([1.0, 1.2, 3.0], 0.3, size=(4000, 3))
    >>> pooled, mu, tau = partial_pool(d, effect_sd=10.0, pooling_sd=1.0, rng=rng)
    >>> bool(abs(pooled[:, 2].mean() - 3.0) > abs(pooled[:, 0].mean() - 1.0))
    True
    """
    S, K = draws.shape
    m, s = draws.mean(axis=0), draws.std(axis=0, ddof=1)
    s = np.maximum(s, 1e-12)
    # Hand-written: the eight-schools calculation (BDA3 5.4) is closed-form given tau, and a
    # 1-D grid over tau is exact up to its resolution without compiling a second model.
    grid = stats.halfnorm.ppf((np.arange(_TAU_GRID) + 0.5) / _TAU_GRID, scale=pooling_sd)
    v = s[None, :] ** 2 + grid[:, None] ** 2  # (G, K)
    prec_mu = (1.0 / v).sum(axis=1) + 1.0 / effect_sd**2
    mean_mu = (m[None, :] / v).sum(axis=1) / prec_mu
    # log p(tau | data) on an equal-prior-mass grid (the prior is in the grid spacing)
    logp = (-0.5 * np.log(v).sum(axis=1) - 0.5 * np.log(prec_mu)
            - 0.5 * ((m[None, :] ** 2 / v).sum(axis=1) - mean_mu**2 * prec_mu))
    p = np.exp(logp - logp.max())
    idx = rng.choice(_TAU_GRID, size=S, p=p / p.sum())
    tau = grid[idx]
    mu = rng.normal(mean_mu[idx], 1.0 / np.sqrt(prec_mu[idx]))
    prec = 1.0 / s[None, :] ** 2 + 1.0 / tau[:, None] ** 2
    cond_mean = (m[None, :] / s[None, :] ** 2 + mu[:, None] / tau[:, None] ** 2) / prec
    # affine map of each unpooled draw onto N(cond_mean, 1/prec): keeps draws paired
    pooled = cond_mean + (draws - m[None, :]) / s[None, :] / np.sqrt(prec)
    return pooled, mu, tau


# ---------------------------------------------------------------------- assembly
def assemble(idata, design: SynthDesign, mean_std: np.ndarray, sigma_std: np.ndarray, *,
             pooling: str, effect_sd: float, pooling_sd: float, seed: int,
             method: str, info: dict, weights: np.ndarray | None = None,
             intercept: np.ndarray | None = None,
             noise_std: np.ndarray | None = None) -> BayesSynthResult:
    """Add counterfactual, gap and effect draws to ``idata`` and wrap it.

    ``mean_std`` (S, K, T) and ``sigma_std`` (S, K) are draws of the synthetic mean and
    noise sd on the standardised scale, S = chains x draws in chain-major order;
    ``weights`` (S, K, D) and ``intercept`` (S, K) on the original scale, if any;
    ``noise_std`` (S, K, T): the counterfactual's noise draws on the standardised scale
    (e.g. AR(1) paths); default iid ``N(0, sigma_std^2)``.
    """
    post = idata.posterior
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    S, K, T = mean_std.shape
    rng = np.random.default_rng([seed, 4242])
    yc, ys = design.y_center[None, :, None], design.y_scale[None, :, None]
    synthetic = yc + ys * mean_std
    sigma = sigma_std * design.y_scale[None, :]
    if noise_std is None:
        counterfactual = synthetic + sigma[:, :, None] * rng.standard_normal((S, K, T))
    else:
        counterfactual = synthetic + ys * noise_std
    gap = design.y_obs.T[None] - counterfactual
    post_mask = ~design.pre.T  # (K, T)
    n_post = post_mask.sum(axis=1)
    att = (gap * post_mask[None]).sum(axis=2) / np.maximum(n_post, 1)[None]
    rows, cols, n_obs = [], [], []

    def add(estimand, group, values, n):
        rows.append((estimand, group))
        cols.append(values)
        n_obs.append(n)

    pooled = K > 1 and pooling == "partial"
    if pooled:
        scale = float(design.y_scale.mean())
        att_pooled, mu, tau = partial_pool(att, effect_sd=effect_sd * scale,
                                           pooling_sd=pooling_sd * scale, rng=rng)
    else:
        att_pooled = att
    several = K > 1
    for k, unit in enumerate(design.targets if several else ()):
        add("att", group_label(unit=unit), att_pooled[:, k], n_post[k])
        if pooled:
            add("att_unpooled", group_label(unit=unit), att[:, k], n_post[k])
    share = n_post / max(n_post.sum(), 1)
    add("att", group_label(), att_pooled @ share, n_post.sum())
    if pooled:
        add("att_population", group_label(), mu, n_post.sum())
    for k, unit in enumerate(design.targets):
        for t, time in enumerate(design.times):
            tn = design.time_name(time)
            label = group_label(unit=unit, t=tn) if several else group_label(t=tn)
            add("gap", label, gap[:, k, t], 1)
    effect = np.stack(cols, axis=1)
    shape = (n_chain, n_draw)
    labels = [f"{e}|{g}" for e, g in rows]
    new = {
        "effect": (("chain", "draw", "effect_id"), effect.reshape(*shape, -1)),
        "sigma": (("chain", "draw", "unit"), sigma.reshape(*shape, K)),
        "synthetic": (("chain", "draw", "unit", "time"), synthetic.reshape(*shape, K, T)),
        "counterfactual": (("chain", "draw", "unit", "time"),
                           counterfactual.reshape(*shape, K, T)),
    }
    if weights is not None:
        new["weight"] = (("chain", "draw", "unit", "donor"),
                         weights.reshape(*shape, K, design.n_donors))
    if intercept is not None:
        new["intercept"] = (("chain", "draw", "unit"), intercept.reshape(*shape, K))
    if pooled:
        new["pooling_sd"] = (("chain", "draw"), tau.reshape(shape))
    coords = dict(effect_id=labels, unit=list(map(str, design.targets)), time=design.times,
                  estimand=("effect_id", [r[0] for r in rows]),
                  group=("effect_id", [r[1] for r in rows]))
    if design.shared_donors:
        coords["donor"] = [str(design.donor_units[i]) for i in design.donor_idx[0]]
    ds = post.to_dataset().assign(new).assign_coords(coords)
    const = xr.Dataset(
        {"effect_n_obs": ("effect_id", np.asarray(n_obs, dtype="int64")),
         "observed": (("unit", "time"), design.y_obs.T),
         "pre_period": (("unit", "time"), design.pre.T.astype("int8"))},
        coords=dict(effect_id=labels, unit=list(map(str, design.targets)), time=design.times))
    idata["posterior"] = xr.DataTree(ds)
    idata["constant_data"] = xr.DataTree(const)
    return BayesSynthResult.from_fit(idata, method=method, info=info)


@dataclass(frozen=True, eq=False, repr=False)
class BayesSynthResult(BayesResult):
    """A Bayesian synthetic/regression-control fit: effects plus weights, paths and checks.

    (Named ``SynthResult`` before; that name stays as an alias. The classical one is
    :class:`bayesdid.synthetic.synth.SynthResult`.)

    Posterior variables beside ``effect``: ``weight`` (unit, donor; simplex weights for
    synthetic control, coefficients on the original scale for regression control),
    ``sigma`` (unit), ``synthetic`` (unit, time; the noise-free mean) and
    ``counterfactual`` (unit, time; a predictive draw including noise).
    """

    def _unit(self, unit) -> str:
        units = [str(u) for u in self.idata.posterior["unit"].values]
        if unit is None:
            return units[0]
        if str(unit) not in units:
            raise BayesDidError(f"unit {unit!r} is not a treated unit of this fit: {units}")
        return str(unit)

    def weights(self, unit=None, level: float = 0.95) -> pd.DataFrame:
        """Posterior mean, sd and equal-tailed ``level`` interval of each donor's weight,
        largest mean first."""
        unit = self._unit(unit)
        w = self.idata.posterior["weight"].sel(unit=unit)
        flat = w.stack(sample=("chain", "draw")).transpose("donor", "sample").values
        q = np.quantile(flat, [(1 - level) / 2, (1 + level) / 2], axis=1)
        table = pd.DataFrame({"donor": w["donor"].values.astype(str), "mean": flat.mean(axis=1),
                              "sd": flat.std(axis=1, ddof=1), "lower": q[0], "upper": q[1]})
        return table.sort_values("mean", ascending=False, key=np.abs).reset_index(drop=True)

    def path(self, unit=None, level: float = 0.95) -> pd.DataFrame:
        """Per period: observed outcome, synthetic mean with a ``level`` band of the
        predictive counterfactual, and the gap (mean and band); equal-tailed intervals."""
        unit = self._unit(unit)
        post = self.idata.posterior
        lo, hi = (1 - level) / 2, (1 + level) / 2
        cf = post["counterfactual"].sel(unit=unit).stack(sample=("chain", "draw")).values
        syn = post["synthetic"].sel(unit=unit).stack(sample=("chain", "draw")).values
        obs = self.idata.constant_data["observed"].sel(unit=unit).values
        gap = obs[:, None] - cf
        return pd.DataFrame({
            "time": post["time"].values, "observed": obs,
            "synthetic": syn.mean(axis=1),
            "lower": np.quantile(cf, lo, axis=1), "upper": np.quantile(cf, hi, axis=1),
            "gap": gap.mean(axis=1), "gap_lower": np.quantile(gap, lo, axis=1),
            "gap_upper": np.quantile(gap, hi, axis=1),
            "pre_period": self.idata.constant_data["pre_period"].sel(unit=unit).values == 1,
        })

    def plot(self, ax=None, *, unit=None, level: float = 0.95, **kwargs):
        """Observed vs synthetic path of a treated unit (default the first) with the
        ``level`` band of the predictive counterfactual (see
        :func:`bayesdid.report.synth_plots.synth_path_plot`). Returns a Figure."""
        from ..report.synth_plots import synth_path_plot

        unit = self._unit(unit)
        p = self.path(unit, level=level)
        frame = pd.DataFrame({"unit": unit, "time": p["time"], "actual": p["observed"],
                              "counterfactual": p["synthetic"], "gap": p["gap"],
                              "post": ~p["pre_period"]})
        kwargs.setdefault("band_label", f"posterior {level:.0%}")
        return synth_path_plot(frame, unit=unit, band=(p["lower"], p["upper"]), ax=ax,
                               **kwargs)

    def ppc(self, level: float = 0.95) -> pd.DataFrame:
        """Posterior predictive check of the pre-period fit, per treated unit.

        ``coverage``: share of pre-period observations inside the ``level`` predictive band
        (about ``level`` if the model fits). ``p_value``: Bayesian p-value of the pre-period
        RMSPE, ``P(rmspe(y_rep) >= rmspe(y))`` with both measured against the same draw's
        synthetic mean; values near 0 flag a fit worse than the noise allows, near 1 an
        overfit. ``pre_rmspe``: posterior mean RMSPE of the observed pre-period outcomes.
        """
        post = self.idata.posterior
        rows = []
        lo, hi = (1 - level) / 2, (1 + level) / 2
        for unit in post["unit"].values:
            pre = self.idata.constant_data["pre_period"].sel(unit=unit).values == 1
            obs = self.idata.constant_data["observed"].sel(unit=unit).values[pre]
            cf = post["counterfactual"].sel(unit=unit).stack(
                sample=("chain", "draw")).values[pre]
            syn = post["synthetic"].sel(unit=unit).stack(sample=("chain", "draw")).values[pre]
            band = np.quantile(cf, [lo, hi], axis=1)
            rmspe_obs = np.sqrt(((obs[:, None] - syn) ** 2).mean(axis=0))
            rmspe_rep = np.sqrt(((cf - syn) ** 2).mean(axis=0))
            rows.append(dict(unit=str(unit), n_pre=int(pre.sum()),
                             coverage=float(((obs >= band[0]) & (obs <= band[1])).mean()),
                             p_value=float((rmspe_rep >= rmspe_obs).mean()),
                             pre_rmspe=float(rmspe_obs.mean())))
        return pd.DataFrame(rows)


SynthResult = BayesSynthResult  # the former name (kept as an alias)
