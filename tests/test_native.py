"""The DID kernels in C (did/marginal_density.c, built by bayes/native.py): block-arrow,
dense and per-unit scaled (panel weights, variance classes; projections grouped or per unit;
with and without the unit effect).

* it builds with the system compiler (skipped where there is none), into a cache named
  by the source's hash: a second load reuses the file, an edited source builds a new one;
* :func:`prebuild` builds in a background thread that the next :func:`load` waits for; it
  is a no-op when the library is cached or ``BAYESDID_NATIVE=0``, and a failed background
  build leaves :func:`load` to retry and report it;
* a study with a ``hierarchical_did`` step starts that build before its first step;
* without a compiler, or with ``BAYESDID_NATIVE=0``, :func:`load` gives ``None`` (never
  raises) and fits fall back to numba's callback;
* its log density and gradient equal numba's :func:`did_logp_grad` (1e-10) on the block
  layouts of the LCCP-shaped designs (event time, six leads, region x year effects) and on
  dense buffers (a small panel; the LCCP event study packed dense), with and without
  AR(1), and its status codes match (-inf far in the tails: 4);
* its expand callback gives nutpie's trace layout, as numba's does;
* its exact conditional draws of the coefficients equal numba's (same normals);
* a fit sampled on it and one sampled on numba's callback give the same posterior within
  Monte Carlo error (same model, same data, different seeds).
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import shutil

import arviz_stats as azs
import numpy as np
import pytest

from bayesdid import Panel
from bayesdid.bayes import native
from bayesdid.bayes.nutpie_compiled import EXPAND_SIG, LOGP_SIG, lazy_cfunc
from bayesdid.datasets import simulate_staggered
from bayesdid.did.block_marginal import block_layout, draw_phi_block, draw_phi_scaled
from bayesdid.did.crossproducts import scaled_stats
from bayesdid.did.hierarchical import HierarchicalDiD
from bayesdid.did.nutpie_density import (
    EXPAND,
    did_logp_grad,
    kernel_of,
    native_callbacks,
    pack_user_data,
)

_P, _LOGP, _EXPAND = native.DOUBLE_P, native.LOGP_PROTOTYPE, native.EXPAND_PROTOTYPE
HAS_CC = shutil.which((os.environ.get("CC") or "cc").split()[0]) is not None
needs_cc = pytest.mark.skipif(not HAS_CC, reason="no C compiler: the numba kernel serves")


def _lccp() -> Panel:
    sim = simulate_staggered(random_seed=0)
    return Panel.from_frame(sim.data, **sim.panel_kwargs)


def _call(address: int, x: np.ndarray, buf: np.ndarray):
    out, logp = np.empty(len(x)), np.empty(1)
    status = _LOGP(address)(len(x), x.ctypes.data_as(_P), out.ctypes.data_as(_P),
                            logp.ctypes.data_as(_P), buf.ctypes.data_as(ctypes.c_void_p))
    return status, logp[0], out


def _kernel_source(tmp_path, value: int):
    """A one-function C source, ``int bayesdid_k(void)`` returning ``value``."""
    src = tmp_path / "k.c"
    src.write_text(f"int bayesdid_k(void) {{ return {value}; }}\n")
    return src


@pytest.fixture(scope="module")
def lccp():
    return _lccp()


@pytest.mark.unit
@needs_cc
def test_builds_once_per_source_and_rebuilds_when_it_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("BAYESDID_CACHE_DIR", str(tmp_path / "cache"))
    src = _kernel_source(tmp_path, 1)
    lib = native.load.__wrapped__(str(src))
    assert lib is not None and lib.handle.bayesdid_k() == 1
    built = sorted((tmp_path / "cache").glob("k-*.so"))
    assert len(built) == 1
    mtime = built[0].stat().st_mtime_ns
    assert native.load.__wrapped__(str(src)).path == built[0]  # reused, not rebuilt
    assert built[0].stat().st_mtime_ns == mtime
    _kernel_source(tmp_path, 2)  # the same file, edited
    lib2 = native.load.__wrapped__(str(src))
    assert lib2.path != built[0] and lib2.handle.bayesdid_k() == 2
    assert not list((tmp_path / "cache").glob("*.so.tmp*"))


@pytest.mark.unit
def test_no_compiler_or_opt_out_gives_none(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("BAYESDID_CACHE_DIR", str(tmp_path))
    src = _kernel_source(tmp_path, 1)
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    with caplog.at_level("INFO", logger="bayesdid.bayes.native"):
        assert native.load.__wrapped__(str(src)) is None
    assert "numba kernel" in caplog.text
    monkeypatch.setenv("CC", "false")  # a compiler that fails
    assert native.load.__wrapped__(str(src)) is None
    assert not list(tmp_path.glob("*.so"))  # nothing half-built left behind
    monkeypatch.delenv("CC")
    monkeypatch.setenv("BAYESDID_NATIVE", "0")
    assert native.load.__wrapped__(str(src)) is None


@pytest.mark.unit
@needs_cc
def test_prebuild_builds_in_the_background_and_load_waits_for_it(tmp_path, monkeypatch):
    monkeypatch.setenv("BAYESDID_CACHE_DIR", str(tmp_path / "cache"))
    src = _kernel_source(tmp_path, 3)
    native.prebuild(str(src))
    thread = native._PENDING[str(src)]
    assert thread.ident is not None and not thread.daemon  # started; exit waits for it
    native.prebuild(str(src))  # a second call while it runs starts nothing more
    assert native._PENDING[str(src)] is thread
    lib = native.load.__wrapped__(str(src))  # joins the build, then loads its library
    assert str(src) not in native._PENDING and not thread.is_alive()
    assert lib is not None and lib.handle.bayesdid_k() == 3
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [lib.path.name]  # no temp files
    native.prebuild(str(src))  # cached: nothing to start
    assert str(src) not in native._PENDING


@pytest.mark.unit
def test_prebuild_opt_out_and_failed_builds_leave_load_to_report(tmp_path, monkeypatch,
                                                                 caplog):
    monkeypatch.setenv("BAYESDID_CACHE_DIR", str(tmp_path))
    src = _kernel_source(tmp_path, 1)
    monkeypatch.setenv("BAYESDID_NATIVE", "0")
    native.prebuild(str(src))
    assert str(src) not in native._PENDING
    monkeypatch.delenv("BAYESDID_NATIVE")
    monkeypatch.setenv("CC", "false")  # a compiler that fails, in the background too
    native.prebuild(str(src))
    native.prebuild(str(tmp_path / "missing.c"))  # an unreadable source: load says why
    assert str(tmp_path / "missing.c") not in native._PENDING
    with caplog.at_level("INFO", logger="bayesdid.bayes.native"):
        assert native.load.__wrapped__(str(src)) is None
    assert "numba kernel" in caplog.text and str(src) not in native._PENDING
    assert not list(tmp_path.glob("*.so"))


@pytest.mark.unit
def test_a_study_with_a_bayesian_did_step_prebuilds_the_kernel(tmp_path, monkeypatch):
    from bayesdid.study import loads_study, run_study
    from bayesdid.study.steps import STEPS

    calls = []
    monkeypatch.setattr(native, "prebuild", calls.append)
    STEPS["hierarchical_did"].prepare()
    assert calls == [native.DID_SOURCE]
    # run_study calls each kind's prepare once, before the first step (here on a twfe)
    calls.clear()
    monkeypatch.setitem(STEPS, "twfe", dataclasses.replace(
        STEPS["twfe"], prepare=lambda: calls.append(sorted(tmp_path.iterdir()))))
    study = loads_study('''
[study]
name = "prepare"
[data]
simulate = "staggered"
[data.simulate_args]
n_units = 40
years = [2005, 2014]
batches = { "2008" = 5, "2010" = 6 }
random_seed = 0
[[steps]]
kind = "twfe"
[[steps]]
kind = "twfe"
name = "twfe_again"
''')
    run_study(study, tmp_path / "out", progress=False)
    assert calls == [[]]  # once, before the results folder existed


def _small_sim():
    return simulate_staggered(n_units=30, years=(2005, 2013), batches={2008: 6, 2010: 6},
                              n_covariates=1, random_seed=4)


def _small() -> Panel:
    sim = _small_sim()
    return Panel.from_frame(sim.data, **sim.panel_kwargs)


def _weighted() -> Panel:
    """The small panel with a log-normal population weight per city (continuous weights)."""
    sim = _small_sim()
    df = sim.data.copy()
    cities = df["city"].unique()
    pop = np.exp(np.random.default_rng(3).normal(0.0, 0.8, len(cities)))
    df["pop"] = df["city"].map(dict(zip(cities, pop)))
    return Panel.from_frame(df, **sim.panel_kwargs, weights="pop")


_CLASSES = dict(unit_variance="classes", variance_classes=3)
# (kernel, panel, model options, block layout allowed, scaled projections grouped (Q) or
# per unit (G); None: the design's own choice)
KERNEL_CASES = {
    "block-event_time": ("block", "lccp", dict(event_time=True), True, None),
    "block-leads6": ("block", "lccp", dict(event_time=True, leads=6), True, None),
    "block-region_year": ("block", "lccp", dict(random_effects="region^year"), True, None),
    "dense-small": ("dense", "small", dict(), True, None),
    "dense-lccp": ("dense", "lccp", dict(event_time=True), False, None),  # p = 124, dense
    "scaled-grouped": ("scaled", "weighted", _CLASSES, True, True),
    "scaled-per_unit": ("scaled", "weighted", dict(event_time=True, **_CLASSES), True, False),
    "scaled-fe_year": ("scaled", "weighted", dict(fe="year", **_CLASSES), True, False),
    "scaled-weights_only": ("scaled", "weighted", dict(), True, None),  # one class
}


def _design(case: str, lccp: Panel, **model_kwargs):
    """The model and design of a :data:`KERNEL_CASES` case."""
    _, panel_name, kwargs, _, grouped = KERNEL_CASES[case]
    model_ = HierarchicalDiD(**{"random_effects": None, **kwargs, **model_kwargs})
    panel = {"lccp": lambda: lccp, "small": _small, "weighted": _weighted}[panel_name]()
    design = model_.prepare(panel)
    if grouped is not None:
        sc = design.scaled
        design = dataclasses.replace(design, scaled=scaled_stats(
            design, sc["unit_w"], sc["unit_cls"], sc["n_classes"], grouped=grouped))
        assert (len(design.scaled["Q"]) > 0) == grouped
    return model_, design


@pytest.mark.model
@needs_cc
@pytest.mark.parametrize("case", list(KERNEL_CASES))
@pytest.mark.parametrize("has_rho", [True, False], ids=["ar1", "iid"])
def test_c_kernel_equals_the_numba_kernel(lccp, case, has_rho):
    kernel, _, _, block, _ = KERNEL_CASES[case]
    model_, design = _design(case, lccp, errors="ar1" if has_rho else "iid")
    buf = pack_user_data(design, model_.priors, has_rho, block=block)
    assert kernel_of(buf) == kernel
    logp, expand = native_callbacks()
    numba_expand = lazy_cfunc(EXPAND, EXPAND_SIG)
    n_classes = design.scaled["n_classes"] if design.scaled is not None else 1
    n_dim = 1 + has_rho + len(design.random_blocks) + n_classes - 1
    rng = np.random.default_rng(11)
    for _ in range(8):
        x = rng.normal(0.0, 0.8, n_dim)
        x[0] += np.log(0.3)
        status, value, grad = _call(logp.address, x, buf)
        ref_value, ref_grad = did_logp_grad(x, buf)
        assert status == 0
        np.testing.assert_allclose(value, ref_value, rtol=1e-10)
        np.testing.assert_allclose(grad, ref_grad, rtol=1e-10, atol=1e-10 * np.abs(ref_grad).max())
        out_c, out_nb = np.empty(2 * n_dim), np.empty(2 * n_dim)
        for address, out in ((expand.address, out_c), (numba_expand.address, out_nb)):
            assert _EXPAND(address)(n_dim, 2 * n_dim, x.ctypes.data_as(_P),
                                    out.ctypes.data_as(_P),
                                    buf.ctypes.data_as(ctypes.c_void_p)) == 0
        np.testing.assert_allclose(out_c, out_nb, rtol=1e-14)
    x = np.zeros(n_dim)
    if has_rho:
        x[1] = 800.0  # rho = 1 in floating point: outside the support
    else:
        x[0] = -800.0  # sigma = 0
    status, value, _ = _call(logp.address, x, buf)
    assert value == did_logp_grad(x, buf)[0] == -np.inf
    assert status == 4


@pytest.mark.model
@needs_cc
@pytest.mark.parametrize("case", ["block-event_time", "block-leads6", "block-region_year",
                                  "dense-small", "scaled-grouped", "scaled-per_unit",
                                  "scaled-fe_year"])
def test_c_draws_equal_the_numba_draws(lccp, case):
    kernel = KERNEL_CASES[case][0]
    _, design = _design(case, lccp)
    rng = np.random.default_rng(5)
    n = 6
    sigma, rho = rng.uniform(0.01, 0.1, n), rng.uniform(-0.6, 0.9, n)
    lam_phi = rng.uniform(0.5, 50.0, (n, design.n_phi))
    lam_phi[2, 0] = -1e12  # a draw whose H is not positive definite: a NaN row on both
    if kernel == "scaled":
        v = np.c_[np.ones(n), rng.uniform(0.2, 5.0, (n, design.scaled["n_classes"] - 1))]
        draws = {use: draw_phi_scaled(design.scaled, sigma, rho, 0.01, lam_phi, v,
                                      np.random.default_rng(9), use_native=use)
                 for use in (True, False)}
    else:
        assert (block_layout(design) is None) == (kernel == "dense")
        draws = {use: draw_phi_block(design, sigma, rho, 0.01, lam_phi,
                                     np.random.default_rng(9), use_native=use)
                 for use in (True, False)}
    assert np.isnan(draws[True][2]).all() and np.isnan(draws[False][2]).all()
    np.testing.assert_allclose(draws[True], draws[False], rtol=1e-9, atol=1e-12)


@pytest.mark.sampling
@pytest.mark.filterwarnings("ignore:HierarchicalDiD ignores panel.cluster")
@pytest.mark.filterwarnings("ignore:HierarchicalDiD. the sampler may not have converged")
@needs_cc
@pytest.mark.parametrize("case", ["block-event_time", "scaled-grouped"])
def test_c_and_numba_callbacks_sample_the_same_posterior(lccp, case, monkeypatch):
    _, panel_name, kwargs, _, _ = KERNEL_CASES[case]
    model_ = HierarchicalDiD(**{"random_effects": None, **kwargs})
    panel = lccp if panel_name == "lccp" else _weighted()
    kw = dict(draws=1000, tune=600, chains=2, progress=False, sampler="nutpie")
    short = dict(kw, draws=60, tune=60)
    one, two = (model_.fit(panel, random_seed=3, **short) for _ in range(2))
    # the C path repeats its draws with the seed
    np.testing.assert_array_equal(one.idata.posterior["effect"].values,
                                  two.idata.posterior["effect"].values)
    c_fit = model_.fit(panel, random_seed=1, **kw)
    monkeypatch.setattr("bayesdid.did.nutpie_density.native_callbacks", lambda: None)
    monkeypatch.setattr("bayesdid.did.block_marginal.native_draws", lambda: None)
    numba_fit = model_.fit(panel, random_seed=2, **kw)
    for name in ("sigma", "rho", *(["unit_sd_ratio"] if case.startswith("scaled") else [])):
        x, y = c_fit.idata.posterior[name], numba_fit.idata.posterior[name]
        diff = np.abs(x.mean(("chain", "draw")).values - y.mean(("chain", "draw")).values)
        assert np.all(diff < 4 * np.hypot(np.asarray(azs.mcse(x)), np.asarray(azs.mcse(y)))), name
    a = c_fit.idata.posterior["effect"].sel(effect_id="att|overall")
    b = numba_fit.idata.posterior["effect"].sel(effect_id="att|overall")
    assert abs(float(a.mean()) - float(b.mean())) < 4 * np.hypot(float(azs.mcse(a)),
                                                                 float(azs.mcse(b)))
    assert abs(float(a.std()) / float(b.std()) - 1) < 0.15
