"""Fit-time checks of a synthetic-control donor pool, said as warnings.

Two things make a synthetic control extrapolate rather than interpolate, and both are
visible before any sampling:

* the treated unit's pre-period outcome lies **outside the donors' range** in some period
  (above the largest or below the smallest donor): then it lies outside the donors'
  convex hull, no simplex combination reproduces those periods, and the pre-period fit,
  classical or Bayesian, has a floor (``intercept=True`` lets the synthetic unit shift);
* donors whose pre-period path is **negatively correlated** with the treated unit's: they
  move against it, and any weight on them buys level fit at the cost of the dynamics.

:func:`donor_pool_notes` returns the messages, :func:`warn_donor_pool` issues each as a
:class:`DonorPoolWarning` naming the periods or donors.

>>> import numpy as np
>>> from bayesdid.synthetic.donors import DonorPool
>>> pool = DonorPool(times=np.arange(2000, 2004), treated_units=("T",),
...                  donor_units=("a", "b", "c"), y_treated=np.array([[5.0], [6.0], [9.0], [9.0]]),
...                  y_donors=np.array([[4.0, 6.0, 9.0], [5.0, 7.0, 8.0], [6.0, 8.0, 7.0],
...                                     [7.0, 9.0, 6.0]]),
...                  start=np.array([2003]), outcome="y")
>>> for note in donor_pool_notes(pool):
...     print(note)
T: its pre-period outcome lies outside the donors' range in 1 of 3 pre-period(s) (2002: 9 > largest donor 8 (b)), so no convex combination of donors reproduces it there; expect a pre-period misfit there (intercept=True allows a level shift) or choose other donors
T: 1 of 3 donor(s) are negatively correlated with its pre-period path: c (-0.96); weights on them fit levels, not dynamics; consider dropping them with donor_pool(panel, donors=[...])
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from .donors import DonorPool

__all__ = ["DonorPoolWarning", "donor_pool_notes", "warn_donor_pool"]

_PACKAGE_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "")
_N_NAMED = 8  # periods or donors named in one message


class DonorPoolWarning(UserWarning):
    """The donor pool cannot reproduce the treated unit's pre-period path well."""


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def donor_pool_notes(pool: DonorPool) -> list[str]:
    """One message per treated unit and problem (empty when the pool looks fine)."""
    notes = []
    for j, unit in enumerate(pool.treated_units):
        pre = pool.pre_periods(j)
        y, Y, times = pool.y_treated[pre, j], pool.y_donors[pre], pool.times[pre]
        n_pre = int(pre.sum())
        hi, lo = Y.max(axis=1), Y.min(axis=1)
        out = []
        for t in np.flatnonzero((y > hi) | (y < lo)):
            if y[t] > hi[t]:
                d = int(Y[t].argmax())
                out.append(f"{times[t]}: {_fmt(y[t])} > largest donor {_fmt(hi[t])} "
                           f"({pool.donor_units[d]})")
            else:
                d = int(Y[t].argmin())
                out.append(f"{times[t]}: {_fmt(y[t])} < smallest donor {_fmt(lo[t])} "
                           f"({pool.donor_units[d]})")
        if out:
            more = f"; and {len(out) - _N_NAMED} more" if len(out) > _N_NAMED else ""
            notes.append(
                f"{unit}: its pre-period outcome lies outside the donors' range in "
                f"{len(out)} of {n_pre} pre-period(s) ({'; '.join(out[:_N_NAMED])}{more}), "
                "so no convex combination of donors reproduces it there; expect a "
                "pre-period misfit there (intercept=True allows a level shift) or choose "
                "other donors")
        if n_pre < 3 or np.ptp(y) == 0:
            continue
        yc = y - y.mean()
        Yc = Y - Y.mean(axis=0)
        denom = np.sqrt((yc**2).sum() * (Yc**2).sum(axis=0))
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = np.where(denom > 0, yc @ Yc / denom, np.nan)
        neg = np.flatnonzero(corr < 0)
        if neg.size:
            neg = neg[np.argsort(corr[neg])]
            named = ", ".join(f"{pool.donor_units[d]} ({corr[d]:.2f})" for d in neg[:_N_NAMED])
            more = f" and {neg.size - _N_NAMED} more" if neg.size > _N_NAMED else ""
            notes.append(
                f"{unit}: {neg.size} of {pool.n_donors} donor(s) are negatively correlated "
                f"with its pre-period path: {named}{more}; weights on them fit levels, not "
                "dynamics; consider dropping them with donor_pool(panel, donors=[...])")
    return notes


def warn_donor_pool(pool: DonorPool) -> list[str]:
    """Issue every :func:`donor_pool_notes` message as a :class:`DonorPoolWarning`
    (pointing at the caller's line) and return them."""
    notes = donor_pool_notes(pool)
    for note in notes:
        warnings.warn(note, DonorPoolWarning, skip_file_prefixes=(_PACKAGE_DIR,))
    return notes
