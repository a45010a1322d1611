"""simulate_factor_panel's off-model noise options and treated-loading spread: each noise has
the documented shape and sd, and the defaults still draw the same panels."""

import numpy as np
import pytest

from bayesdid.datasets import simulate_factor_panel
from bayesdid.errors import SpecError

BIG = dict(n_units=400, n_periods=60, n_treated=4, cohorts=(59,), n_factors=1, seed=5)


def _noise(sigma=1.0, **kw):
    """Noise of a big panel: its outcome minus the same panel's outcome without noise."""
    with_noise = simulate_factor_panel(**BIG, **kw, sigma=sigma)
    flat = simulate_factor_panel(**BIG, **kw, sigma=0.0)
    return (with_noise.data["y"] - flat.data["y"]).to_numpy().reshape(400, 60)


def test_defaults_draw_the_same_panel_as_explicit_gaussian_noise():
    a = simulate_factor_panel(seed=3)
    b = simulate_factor_panel(seed=3, noise="gaussian", treated_loading_sd=1.0)
    np.testing.assert_array_equal(a.data["y"], b.data["y"])
    # the stream is the pre-option one: a stored value of seed 3's outcome total
    assert a.data["y"].sum() == pytest.approx(1734.4348598959932, rel=1e-12)


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_ar1_noise_has_sd_sigma_and_lag_one_autocorrelation_rho(rho):
    e = _noise(noise="ar1", rho=rho)
    assert e.std() == pytest.approx(1.0, abs=0.05)
    lag1 = np.corrcoef(e[:, 1:].ravel(), e[:, :-1].ravel())[0, 1]
    assert lag1 == pytest.approx(rho, abs=0.03)


def test_t_noise_is_heavy_tailed_with_sd_sigma():
    e = _noise(noise="t", df=3.0, sigma=2.0)
    assert e.std() == pytest.approx(2.0, rel=0.1)
    # median |t_3| is its 75% quantile, 0.7649; scaled by sd 2 / sqrt(3)
    assert np.median(np.abs(e)) == pytest.approx(2.0 / np.sqrt(3) * 0.7649, rel=0.05)
    z = e.ravel() / e.std()
    assert np.mean(z ** 4) > 6  # Gaussian: 3 (t(3) has no finite fourth moment)


def test_hetero_noise_spreads_unit_sds_over_the_range_with_mean_variance_sigma2():
    e = _noise(noise="hetero", spread=10.0)
    sd = e.std(axis=1)
    assert np.mean(sd ** 2) == pytest.approx(1.0, rel=0.05)
    # log sd uniform over log(10): sd log(10) / sqrt(12) = 0.66 (+ ~0.01 from 60 periods)
    assert np.log(sd).std() == pytest.approx(np.log(10) / np.sqrt(12), abs=0.06)


def test_treated_loading_sd_widens_only_the_treated_loadings():
    # with noise 0 and one factor, a unit's outcome path spread tracks its |loading|
    base = simulate_factor_panel(**BIG, sigma=0.0, loading_shift=0.0)
    wide = simulate_factor_panel(**BIG, sigma=0.0, loading_shift=0.0, treated_loading_sd=5.0)
    yb = base.data["y"].to_numpy().reshape(400, 60)
    yw = wide.data["y"].to_numpy().reshape(400, 60)
    np.testing.assert_array_equal(yb[4:], yw[4:])  # controls unchanged
    assert not np.allclose(yb[:4], yw[:4])


@pytest.mark.parametrize("kw", [dict(noise="arma"), dict(noise="ar1", rho=1.0),
                                dict(noise="t", df=2.0), dict(noise="hetero", spread=0.5),
                                dict(treated_loading_sd=0.0)])
def test_bad_noise_options_raise_spec_error(kw):
    with pytest.raises(SpecError):
        simulate_factor_panel(**kw)
