"""BayesianMediation: the three-step mediation as one PyMC model, with a full posterior of a*b.

For each mediator ``M_j`` and the outcome ``y``, with unit and time fixed effects and
controls ``X``::

    M_j = a_j D              + X g_j + unit + time + e_j,   e_j ~ N(0, sigma_m[j]^2)
    y   = c'_j D + b_j M_j   + X h_j + unit + time + u_j,   u_j ~ N(0, sigma_y[j]^2)

and, with ``joint=True``, also ``y = c' D + sum_j b_j M_j + X h + unit + time + u``.
``indirect = a_j * b_j``, ``direct = c'_j`` and ``total = c'_j + a_j * b_j`` are
Deterministics with full posteriors.

Fixed effects and controls are nuisance parameters with flat priors, integrated out
exactly. Integrating a flat-prior Gaussian block out of a Gaussian likelihood leaves the
likelihood of the data projected off that block (Frisch-Waugh-Lovell): the two-way
within-transformation of ``y``, ``D`` and ``M`` (pyfixest's alternating projections: for a
balanced panel the familiar ``x - unit mean - time mean + grand mean``, and the exact
projection for unbalanced ones), then residualised on the demeaned controls. The residual
degrees of freedom ``n - (units + periods - 1) - controls`` replace ``n`` in the
normalising constant, so sigma is not overconfident. What NUTS sees is a handful of
parameters (a, b, c', sigmas) and a likelihood written through the cross-products of the
projected columns (cost independent of the number of rows).

Priors are weakly informative on the data scale (rstanarm-style autoscaling): slopes
``Normal(0, slope_scale * sd(lhs) / sd(rhs))`` and residual sds
``HalfNormal(sigma_scale * sd(lhs))``, the sds taken of the projected columns
(:class:`MediationPriors`: ``slope_scale=2.5``, ``sigma_scale=1``). Panel weights are not
used by this model. Errors are iid Gaussian: under serial correlation within units the
intervals are narrower than the cluster-robust ones of
:func:`bayesdid.checks.mediation.mediation`.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .mediation import _controls, panel_columns
from ..errors import BayesDidError, DesignError
from ..panel import Panel
from ..results import group_label
from ..bayes.model import BayesianModel
from ..did.priors import PositivePriors
from ..bayes.notices import warn_ignored_design
from ..bayes.result import BayesResult
from ..bayes.sampling import resolve_seed, sample

__all__ = ["BayesianMediation", "MediationDesign", "MediationPriors"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MediationPriors(PositivePriors):
    """Prior scales of :class:`BayesianMediation`, as multiples of the autoscaled ones.

    slope_scale : slopes ``a``, ``b``, ``c'`` are ``Normal(0, slope_scale * sd(lhs) /
        sd(rhs))`` (rstanarm's 2.5 by default).
    sigma_scale : residual sds are ``HalfNormal(sigma_scale * sd(lhs))``.

    >>> MediationPriors(slope_scale=1).to_dict()
    {'slope_scale': 1.0, 'sigma_scale': 1.0}
    """

    slope_scale: float = 2.5
    sigma_scale: float = 1.0


def _data_keyword_only(method):
    """``data`` (the frame holding mediator columns) became keyword-only in 0.2; passing it
    second positionally still works for one release, with a FutureWarning."""

    @functools.wraps(method)
    def wrapper(self, panel=None, *args, **kwargs):
        if args:
            if len(args) > 1 or "data" in kwargs:
                raise TypeError(f"{method.__name__}() takes the panel positionally; "
                                "everything else by keyword")
            name = f"{type(self).__name__}.{method.__name__}"
            warnings.warn(f"{name}(panel, data) is deprecated and will be removed in the "
                          f"next release; write {name}(panel, data=data)", FutureWarning,
                          stacklevel=2)
            kwargs["data"] = args[0]
        if panel is None:
            return method(self, **kwargs)
        return method(self, panel, **kwargs)

    return wrapper


@dataclass(frozen=True, eq=False)
class MediationDesign:
    """Cross-products of the projected columns ``[y, D, M_1..M_k]`` (no PyMC).

    ``gram[i, j]`` is the inner product of projected columns i and j (fixed effects and
    controls partialled out); ``n_eff`` the residual degrees of freedom.
    """

    mediators: tuple[str, ...]
    covariates: tuple[str, ...]
    gram: np.ndarray
    n_obs: int
    n_eff: int

    @property
    def sd(self) -> np.ndarray:
        """Standard deviation of each projected column (y, D, M...)."""
        return np.sqrt(np.diag(self.gram) / self.n_eff)

    def ols(self) -> dict[str, np.ndarray]:
        """The classical point estimates from the same cross-products (a, b, c' per mediator)."""
        G, k = self.gram, len(self.mediators)
        a = G[2:2 + k, 1] / G[1, 1]
        b, c = np.empty(k), np.empty(k)
        for j in range(k):
            idx = [1, 2 + j]
            c[j], b[j] = np.linalg.solve(G[np.ix_(idx, idx)], G[idx, 0])
        return {"a": a, "b": b, "c_prime": c}


def _fe_rank(unit_codes: np.ndarray, time_codes: np.ndarray) -> int:
    """Rank of the two-way dummy design: units + periods - connected components."""
    n_u, n_t = unit_codes.max() + 1, time_codes.max() + 1
    graph = coo_matrix((np.ones(len(unit_codes)), (unit_codes, n_u + time_codes)),
                       shape=(n_u + n_t, n_u + n_t))
    n_comp, _ = connected_components(graph, directed=False)
    return int(n_u + n_t - n_comp)


class BayesianMediation(BayesianModel):
    """Bayesian three-step mediation with unit and time fixed effects.

    Parameters
    ----------
    mediators : mediator column names (in the panel, or in ``data=`` given to
        :meth:`build` / :meth:`fit`).
    joint : also fit the outcome equation with all mediators together.
    covariates : controls; default the panel's covariates (minus any mediator).
    priors : :class:`MediationPriors`. ``prior_scale=`` (the slope multiplier, now
        ``MediationPriors(slope_scale=...)``) still works for one release, with a
        FutureWarning.

    Examples
    --------
    >>> from bayesdid.datasets import simulate_staggered
    >>> sim = simulate_staggered(n_units=30, years=(2005, 2012), batches={2008: 8},
    ...                          random_seed=3)
    >>> df = sim.data.assign(m=lambda d: 0.5 * d["treated"] + d["x1"])
    >>> panel = Panel.from_frame(df, **sim.panel_kwargs)
    >>> model = BayesianMediation(["m"]).build(panel, data=df)
    >>> sorted(model.named_vars_to_dims["effect"])
    ['effect_id']
    """

    priors_class = MediationPriors

    def __init__(self, mediators: Sequence[str], *, joint: bool = False,
                 covariates: Sequence[str] | None = None,
                 priors: MediationPriors | None = None, prior_scale: float | None = None):
        if isinstance(mediators, str) or isinstance(covariates, str):
            raise BayesDidError("mediators and covariates take a list of names, not a string")
        self.mediators = tuple(mediators)
        if not self.mediators:
            raise BayesDidError("give at least one mediator")
        self.joint = bool(joint)
        self.covariates = None if covariates is None else tuple(covariates)
        self.priors = self._resolve_priors(priors, renamed={"prior_scale": "slope_scale"},
                                           prior_scale=prior_scale)

    def config(self) -> dict:
        return {"mediators": self.mediators, "joint": self.joint,
                "covariates": self.covariates, "priors": self.priors.to_dict()}

    # ------------------------------------------------------------------ design
    @_data_keyword_only
    def prepare(self, panel: Panel, *, data: pd.DataFrame | None = None) -> MediationDesign:
        """Project ``y``, ``D`` and the mediators off the fixed effects and controls."""
        from pyfixest.estimation import demean

        if not isinstance(panel, Panel):
            raise BayesDidError(f"expected a bayesdid Panel, got {type(panel).__name__}; "
                                "build one with Panel.from_frame(df, ...)")
        meds = panel_columns(panel, self.mediators, data, role="mediator")
        covs = _controls(panel, list(self.mediators), self.covariates)
        absent = [c for c in covs if c not in panel.frame.columns]
        if absent:
            raise BayesDidError(f"covariate {absent[0]!r} is not a panel column", column=absent[0])
        f = panel.frame
        Z = np.column_stack([f[panel.outcome].to_numpy(float), f["treated"].to_numpy(float),
                             meds.to_numpy(float), f[list(covs)].to_numpy(float)])
        uc, tc = pd.factorize(f[panel.unit])[0], pd.factorize(f[panel.time])[0]
        fl = np.column_stack([uc, tc]).astype(np.uint64)
        zt, converged = demean(Z, fl, np.ones(len(Z)), tol=1e-12)
        if not converged:
            raise BayesDidError("two-way demeaning did not converge")
        k = len(self.mediators)
        R, X = zt[:, :2 + k], zt[:, 2 + k:]
        if X.shape[1]:
            R = R - X @ np.linalg.lstsq(X, R, rcond=None)[0]
        gram = R.T @ R
        n_eff = len(R) - _fe_rank(uc, tc) - np.linalg.matrix_rank(X) if X.shape[1] else \
            len(R) - _fe_rank(uc, tc)
        if n_eff <= 2 + k or not gram[1, 1] > 1e-12 * len(R):
            raise DesignError("the treatment has no variation left after the unit and time "
                              "effects and controls", column="treated",
                              hint="check the design: treated units with pre-periods and "
                                   "untreated comparison cells are needed")
        small = [m for j, m in enumerate(self.mediators) if not gram[2 + j, 2 + j] > 1e-12 * len(R)]
        if small:
            raise DesignError(f"mediator {small[0]!r} has no variation after the unit and "
                              "time effects and controls", column=small[0])
        return MediationDesign(mediators=self.mediators, covariates=tuple(covs), gram=gram,
                               n_obs=len(R), n_eff=int(n_eff))

    def effect_labels(self) -> list[tuple[str, str]]:
        """(estimand, group) of every reported effect, in the order of ``effect``."""
        out = []
        for m in self.mediators:
            g = group_label(mediator=m)
            out += [("total", g), ("a", g), ("b", g), ("direct", g), ("indirect", g)]
        if self.joint:
            for m in self.mediators:
                g = group_label(mediator=m, model="joint")
                out += [("a", g), ("b", g), ("indirect", g)]
            g = group_label(mediator="all", model="joint")
            out += [("total", g), ("direct", g), ("indirect", g)]
        return out

    # ------------------------------------------------------------------ graph
    @_data_keyword_only
    def build(self, panel: Panel, *, data: pd.DataFrame | None = None) -> pm.Model:
        """The PyMC model for ``panel`` (pure: no sampling)."""
        return self._build(self.prepare(panel, data=data))

    def _build(self, design: MediationDesign) -> pm.Model:
        G, n, k = design.gram, float(design.n_eff), len(self.mediators)
        s, s_sigma = self.priors.slope_scale, self.priors.sigma_scale
        sd_y, sd_d, sd_m = design.sd[0], design.sd[1], design.sd[2:]
        labels = self.effect_labels()
        coords = {"mediator": list(self.mediators),
                  "effect_id": [f"{e}[{g}]" for e, g in labels]}
        Syy, Syd, Sdd = G[0, 0], G[0, 1], G[1, 1]
        Sym, Sdm, Smm = G[0, 2:2 + k], G[1, 2:2 + k], np.diag(G)[2:2 + k]

        def loglik(sigma, rss):  # Gaussian with the projected-out block integrated away
            return -n * pt.log(sigma) - rss / (2 * sigma**2)

        with pm.Model(coords=coords) as model:
            a = pm.Normal("a", 0.0, s * sd_m / sd_d, dims="mediator")
            sigma_m = pm.HalfNormal("sigma_m", s_sigma * sd_m, dims="mediator")
            pm.Potential("loglik_mediator",
                         loglik(sigma_m, Smm - 2 * a * Sdm + a**2 * Sdd).sum())
            c = pm.Normal("c_prime", 0.0, s * sd_y / sd_d, dims="mediator")
            b = pm.Normal("b", 0.0, s * sd_y / sd_m, dims="mediator")
            sigma_y = pm.HalfNormal("sigma_y", s_sigma * sd_y, dims="mediator")
            rss = (Syy - 2 * (c * Syd + b * Sym) + c**2 * Sdd + 2 * c * b * Sdm + b**2 * Smm)
            pm.Potential("loglik_outcome", loglik(sigma_y, rss).sum())
            indirect = pm.Deterministic("indirect", a * b, dims="mediator")
            parts = []
            for j in range(k):
                parts += [c[j] + indirect[j], a[j], b[j], c[j], indirect[j]]
            if self.joint:
                cj = pm.Normal("c_prime_joint", 0.0, s * sd_y / sd_d)
                bj = pm.Normal("b_joint", 0.0, s * sd_y / sd_m, dims="mediator")
                sigma_j = pm.HalfNormal("sigma_y_joint", s_sigma * sd_y)
                beta = pt.concatenate([pt.atleast_1d(cj), bj])
                H, g = G[1:2 + k, 1:2 + k], G[1:2 + k, 0]
                rss_j = Syy - 2 * pt.dot(beta, g) + pt.dot(beta, pt.dot(H, beta))
                pm.Potential("loglik_outcome_joint", loglik(sigma_j, rss_j))
                ind_j = a * bj
                for j in range(k):
                    parts += [a[j], bj[j], ind_j[j]]
                parts += [cj + ind_j.sum(), cj, ind_j.sum()]
            pm.Deterministic("effect", pt.stack(parts), dims="effect_id")
        return model

    # ------------------------------------------------------------------ fit
    @_data_keyword_only
    def fit(self, panel: Panel, *, data: pd.DataFrame | None = None, draws: int = 1000,
            tune: int = 1000, chains: int = 4, cores: int | None = None,
            random_seed: int | None = None, progress: bool = True,
            target_accept: float = 0.9) -> BayesResult:
        """Sample the posterior and return a :class:`BayesResult` (effects with HDIs).
        ``data``: a frame holding mediator columns that are not in the panel.

        Same ``random_seed``, same draws. With ``random_seed=None`` a seed is drawn and
        recorded in ``result.info['random_seed']``.
        """
        random_seed = resolve_seed(random_seed)
        design = self.prepare(panel, data=data)
        warn_ignored_design(self, panel)
        model = self._build(design)
        idata = sample(model, draws=draws, tune=tune, chains=chains, cores=cores,
                       random_seed=random_seed, progress=progress, target_accept=target_accept)
        labels = self.effect_labels()
        ds = idata.posterior.to_dataset().assign_coords(
            estimand=("effect_id", [e for e, _ in labels]),
            group=("effect_id", [g for _, g in labels]))
        idata["posterior"] = xr.DataTree(ds)
        const = xr.Dataset({"effect_n_obs": ("effect_id", np.full(len(labels), design.n_obs)),
                            "gram": (("column", "column_"), design.gram)},
                           coords={"effect_id": ds["effect_id"].values,
                                   "column": ["y", "D", *self.mediators],
                                   "column_": ["y", "D", *self.mediators]})
        idata["constant_data"] = xr.DataTree(const)
        sampled = [rv.name for rv in model.free_RVs]
        info = self.fit_info(random_seed=random_seed, draws=draws, tune=tune, chains=chains,
                             n_obs=design.n_obs, n_eff=design.n_eff,
                             covariates=list(design.covariates), sampled_vars=sampled)
        return BayesResult.from_fit(idata, method="bayes_mediation", info=info)
