"""The compiled SFA log density (efficiency/sfa_nutpie_density.py) with and without the
``CDF_IS_ONE`` shortcut of ``lcdf_mills``, in this process, on the LCCP-shaped panel.

The previous kernel is rebuilt here from the current one's Python source with the previous
``lcdf_mills`` (always through erfc) swapped in; both are timed per gradient call at 200
posterior draws of a short cross-section fit (where ~38% of rows have z > 9) and must give
the same bits.

    .venv/bin/python benchmarks/bench_sfa_gradient.py
"""

from __future__ import annotations

import math
import subprocess
import time
import types
import warnings

import numba
import numpy as np

from bayesdid.datasets.simulate_efficiency import simulate_efficiency
from bayesdid.efficiency import sfa_nutpie_density as sd
from bayesdid.efficiency.bayes_sfa import BayesianSFA

_S, _C = sd._SQRT_HALF, sd._HALF_LOG2PI


@numba.njit(error_model="numpy")
def _lcdf_mills_previous(z):
    if z > -30.0:
        cdf = 0.5 * math.erfc(-z * _S)
        return math.log(cdf), math.exp(-0.5 * z * z - _C) / cdf
    r = 1.0 / (z * z)
    series = 1.0 + r * (-1.0 + r * (3.0 + r * (-15.0 + r * (105.0 - 945.0 * r))))
    return -0.5 * z * z - _C - math.log(-z) + math.log(series), -z / series


def _rebuild(fn, **globals_):
    """``fn`` (a numba dispatcher) compiled again with some of its globals replaced."""
    py = fn.py_func
    env = dict(py.__globals__, **globals_)
    return numba.njit(error_model="numpy")(
        types.FunctionType(py.__code__, env, py.__name__, py.__defaults__, py.__closure__))


def main() -> None:
    mills = _rebuild(sd.mills, lcdf_mills=_lcdf_mills_previous)
    previous = _rebuild(sd.sfa_logp_grad, lcdf_mills=_lcdf_mills_previous, mills=mills,
                        _mean_u=_rebuild(sd._mean_u, mills=mills),
                        log_ndtr=_rebuild(sd.log_ndtr, lcdf_mills=_lcdf_mills_previous))
    sim = simulate_efficiency(random_seed=0)
    cfg = BayesianSFA(**sim.params["sfa_kwargs"])
    d = cfg.prepare(sim.data)
    buf = cfg._user_data(d)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post = cfg.fit(sim.data, draws=200, tune=300, chains=1, progress=False,
                       random_seed=3, sampler="nutpie").idata.posterior
    points = np.column_stack([post["theta"].values.reshape(200, -1),
                              post["intercept_mean"].values.reshape(-1),
                              np.log(post["sigma_v"].values.reshape(-1)),
                              np.log(post["sigma_u"].values.reshape(-1))])
    for x in points:
        a, b = sd.sfa_logp_grad(x, buf), previous(x, buf)
        assert a[0] == b[0] and np.array_equal(a[1], b[1])

    def per_call(fn, reps=4000):
        best = np.inf
        for _ in range(5):
            t0 = time.perf_counter()
            for i in range(reps):
                fn(points[i % len(points)], buf)
            best = min(best, (time.perf_counter() - t0) / reps)
        return best

    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"uptime: {load}")
    for _ in range(3):
        t_prev, t_now = per_call(previous), per_call(sd.sfa_logp_grad)
        print(f"per gradient: previous {t_prev * 1e6:.0f} us, now {t_now * 1e6:.0f} us, "
              f"ratio {t_prev / t_now:.2f} (same bits at 200 posterior draws)")


if __name__ == "__main__":
    main()
