# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Eco-efficiency into DID: measure it, then carry its uncertainty into the effect
#
# The low-carbon-city studies first *measure* each city's eco-efficiency (inputs: capital,
# labour, technology spending, energy; desirable outputs: GDP per capita and green space;
# undesirable output: air pollution) and then run a DID on it. The efficiency is an
# estimate, yet the second step usually treats it as data. This notebook follows that
# workflow and asks how much the first step's uncertainty matters:
#
# 1. the classical DEA route: the Malmquist-Luenberger (ML) index against a fixed
#    reference technology, and its decomposition into efficiency and technical change;
# 2. stochastic frontiers: the MLE and the Bayesian SFA with an efficiency posterior for
#    every city-year;
# 3. DID on the estimated efficiency, *naive* (posterior mean plugged in) vs *propagated*
#    (the DID refitted on posterior draws and combined);
# 4. everything against the known truth of the simulation.
#
# `FAST` keeps CI quick (2 chains x 2000 draws after 500 tuning steps, 20 efficiency draws
# refitted). A real analysis would use 4 chains x 1000 draws or more and 50-100 refits. The
# Bayesian SFA checks R-hat and ESS of every parameter *and* of every city-year's
# efficiency (thousands of quantities): with short chains a few of them cross R-hat 1.01 by
# chance alone, so the chains here are long enough (they are cheap) that the fit passes.

# %%
# %matplotlib inline
import os

import numpy as np
import pandas as pd
from scipy import stats

from bayesdid import Panel
from bayesdid.efficiency.bayes_sfa import BayesianSFA
from bayesdid.classical import imputation, malmquist_luenberger, sfa
from bayesdid.compare import compare
from bayesdid.datasets import simulate_efficiency
from bayesdid.efficiency.efficiency_did import efficiency_did
from bayesdid.report import (
    plot_efficiency_intervals,
    plot_frontier,
    plot_ml_decomposition,
)

FAST = os.environ.get("BAYESDID_NOTEBOOK_FAST", "1") == "1"
sampler = dict(draws=2000, tune=500, chains=2) if FAST else dict(draws=1000, tune=1000, chains=4)
n_refits = 20 if FAST else 100
pd.set_option("display.width", 120)
pd.set_option("display.max_columns", 12)

# %% [markdown]
# ## The panel
#
# 278 cities, 2003-2021, pilot batches listed in 2010, 2012 and 2017 (15, 22 and 30
# cities), treated from the next year. The technology is a Cobb-Douglas output distance
# function with the pollutant as an input; inefficiency has a persistent city part that
# decays slowly over time (Battese-Coelli) plus a transient part, and the pilot policy
# cuts the persistent part by 39%. Pilot cities are drawn among the more efficient ones
# (selection on levels, which the DID's city effects absorb). The truth is the effect on
# efficiency `exp(-u)` of every treated city-year.

# %%
sim = simulate_efficiency(random_seed=0)
data = sim.data
truth = sim.truth.set_index(["estimand", "group"])["value"]
frontier = sim.params["sfa_kwargs"]
print(frontier)
print(f"{data['city'].nunique()} cities x {data['year'].nunique()} years; "
      f"true ATT on efficiency: {truth['att', 'overall']:.4f}")
data[["city", "year", "treated", "capital", "labour", "tech", "energy", "gdp_pc", "green",
      "aqi", "efficiency"]].head()

# %% [markdown]
# ## 1. DEA: the Malmquist-Luenberger index with a fixed reference
#
# Directional distance functions with the bad output weakly disposable, every year
# measured against the 2003 technology (the LCCP papers' "fixed reference"), so the
# index is transitive (a chain of ML indices is a ratio of two distances). ML = EC x TC
# exactly:
# efficiency change (catching up with the contemporaneous frontier) times technical
# change (the frontier moving).

# %%
ml = malmquist_luenberger(data, unit="city", time="year",
                          inputs=["capital", "labour", "tech", "energy"],
                          outputs=["gdp_pc", "green"], bads=["aqi"], reference="fixed")
print(f"{ml.info['n_lp']} linear programmes in {ml.info['seconds']:.1f} s; "
      f"{ml.info['n_infeasible']} infeasible (NaN)")
ml.by_period().round(4).head(8)

# %%
fig_ml = plot_ml_decomposition(ml, title="ML = EC x TC (fixed 2003 reference)")
fig_ml

# %% [markdown]
# The papers then take the cumulative ML index as the city's eco-efficiency and run the
# DID on it. A few programmes are infeasible (some later city-years cannot be projected
# onto the 2003 technology in the chosen direction), so those cities are dropped -- say so
# in the paper. The
# cumulative ML is an index of *productivity* growth relative to each city's first year,
# not the efficiency level, so its DID estimate is on another scale than the truth below:
# compare its sign and significance only.

# %%
eff_ml = ml.efficiency_panel("cumulative_ml", name="cum_ml")
bad_cities = eff_ml.loc[eff_ml["cum_ml"].isna(), "city"].unique()
ml_data = data.merge(eff_ml, on=["city", "year"])
ml_data = ml_data[~ml_data["city"].isin(bad_cities)]
ml_panel = Panel.from_frame(ml_data, **{**sim.panel_kwargs, "outcome": "cum_ml"})
res_ml = imputation(ml_panel)
print(f"dropped {len(bad_cities)} cities with an infeasible ML programme")
res_ml.effects().head(4)[["estimand", "group", "estimate", "lower", "upper"]].round(4)

# %% [markdown]
# ## 2. Stochastic frontiers
#
# `sfa` fits the output distance function by maximum likelihood (half-normal
# inefficiency), `-ln gdp_pc` on the logged inputs, the output mix `ln(green / gdp_pc)`
# and the pollutant. Two panel structures:
#
# * `cross_section`: one inefficiency per city-year, free to move from year to year;
# * `bc92`: Battese-Coelli (1992), `u_it = exp(-eta (t - T)) u_i` -- one city effect with a
#   common time decay.

# %%
mle = sfa(data, **frontier)
mle_bc92 = sfa(data, **frontier, model="bc92")
true_beta = {f"ln_{k}": v for k, v in sim.params["beta"].items()}
true_beta.update({"ln_green/gdp_pc": sim.params["alpha_green"], "ln_aqi": sim.params["delta_aqi"]})
coef = pd.DataFrame({
    "truth": pd.Series(true_beta),
    "MLE cross-section": mle.coef.set_index("term")["estimate"],
    "MLE bc92": mle_bc92.coef.set_index("term")["estimate"],
}).loc[list(true_beta)]
coef.round(3)

# %% [markdown]
# BC92 recovers the frontier, the cross-section model does not quite: inputs grow at
# different rates over time, and a frontier that lets inefficiency move freely from year
# to year attributes part of the slow efficiency trend to the inputs. How well do the
# efficiency *scores* (JLMS / Battese-Coelli) rank the cities?

# %%
for name, res in (("cross-section", mle), ("bc92", mle_bc92)):
    rho = stats.spearmanr(res.efficiency["te_bc"], data["efficiency"])[0]
    print(f"{name:14s} mean TE {res.efficiency['te_bc'].mean():.3f} "
          f"(truth {data['efficiency'].mean():.3f}); Spearman with truth {rho:.3f}")

# %% [markdown]
# ### Bayesian SFA
#
# The same frontier in PyMC. NUTS only samples the frontier coefficients and two scales
# (the inefficiency is integrated out); afterwards each city-year's `u` is drawn exactly
# from its conditional law, so the efficiency posterior carries both parameter and
# prediction uncertainty. We use the cross-section form: it lets a city's efficiency jump
# when the policy arrives (why this matters is shown in section 3).

# %%
bsfa = BayesianSFA(**frontier).fit(data, random_seed=1, **sampler)
bsfa.coef_table().round(3)

# %%
diag = bsfa.diagnostics()
print(f"max R-hat {diag['r_hat'].max():.3f}, min bulk ESS {diag['ess_bulk'].min():.0f} "
      f"over {len(diag)} quantities (frontier parameters and every city-year's efficiency)")

# %%
eff_draws = bsfa.efficiency_draws()
post_mean = eff_draws.mean(axis=1).to_numpy()
lo, hi = np.quantile(eff_draws.to_numpy(), [0.025, 0.975], axis=1)
inside = (lo <= data["efficiency"].to_numpy()) & (data["efficiency"].to_numpy() <= hi)
print(f"{eff_draws.shape[0]} city-years x {eff_draws.shape[1]} draws; Spearman(posterior mean, "
      f"truth) = {stats.spearmanr(post_mean, data['efficiency'])[0]:.3f}; "
      f"95% intervals cover the true efficiency in {inside.mean():.1%} of city-years; "
      f"median width {np.median(hi - lo):.3f}")

# %% [markdown]
# The ranking is good, but the city-year intervals cover the true efficiency less often
# than 95%: the cross-section model ignores that inefficiency is persistent within a city
# and trends over time, so its posterior is honest about the model, not about the model's
# errors. A frontier model with a city component *and* free year-to-year movement would
# be the next step.
#
# The frontier against one input, points coloured by posterior mean efficiency. The line
# holds the other regressors at their means while the points are the raw data; the inputs
# all scale with city size, so the cloud is steeper than the line -- read the colours
# (inefficient city-years lie above, at a larger `-ln gdp_pc`), not the distance to the line.

# %%
fig_frontier = plot_frontier(bsfa, data, regressor="ln_capital")
fig_frontier

# %% [markdown]
# Efficiency and its 95% HDI for 40 city-years spread over the ranking.

# %%
fig_eff = plot_efficiency_intervals(bsfa, max_points=40)
fig_eff

# %% [markdown]
# ## 3. DID on estimated efficiency: naive vs propagated
#
# `efficiency_did` refits a DID estimator (here BJS imputation, robust to staggered
# adoption) on `M` posterior draws of the efficiency panel and combines the fits with
# Rubin's rules; it also fits once on the posterior-mean efficiency -- the *naive*
# analysis that treats efficiency as observed -- and reports the width ratio of the two
# intervals. With a Bayesian DID as the estimator (e.g.
# `lambda p: HierarchicalDiD().fit(p, ...)`) the posterior draws are pooled instead; we skip
# that here to stay fast.

# %%
prop_bayes = efficiency_did(bsfa, data, imputation, panel_kwargs=sim.panel_kwargs,
                            n_draws=n_refits, random_seed=3)
widths = prop_bayes.comparison()
widths = widths[widths["estimand"] == "att"].merge(
    sim.truth.rename(columns={"value": "truth"}), on=["estimand", "group"])
widths[["group", "naive_estimate", "naive_lower", "naive_upper", "estimate", "lower", "upper",
        "width_ratio", "truth"]].round(4)

# %%
prop_bayes.comparison().query("estimand == 'event_time'")[
    ["group", "naive_lower", "naive_upper", "lower", "upper", "width_ratio"]].round(4)

# %% [markdown]
# The share of the variance due to the efficiency estimate (Rubin's "fraction of missing
# information") says how much of each interval comes from the first step: small for the
# overall ATT, which averages over hundreds of city-years, larger for single event times.

# %%
prop_bayes.effects()[["estimand", "group", "estimate", "se_or_sd",
                      "fraction_missing"]].head(8).round(4)

# %% [markdown]
# The MLE can be propagated too, but only its *prediction* uncertainty (draws of `u` given
# the MLE; the frontier's parameter uncertainty is ignored). And a warning about BC92:
# its efficiency path is common to all cities (one city effect times a common decay), so
# the scores cannot follow a city's efficiency jump at adoption; the DID on BC92 scores
# loses the policy effect entirely (here it even flips sign).

# %%
prop_mle = efficiency_did(mle, data, imputation, panel_kwargs=sim.panel_kwargs,
                          n_draws=n_refits, random_seed=3)
prop_bc92 = efficiency_did(mle_bc92, data, imputation, panel_kwargs=sim.panel_kwargs,
                           n_draws=n_refits, random_seed=3)

# %% [markdown]
# ## 4. Against the truth
#
# The oracle runs the same DID on the true efficiency (unknowable in practice): the best
# any two-step analysis can do. The truth is the mean effect over treated city-years.

# %%
oracle = imputation(Panel.from_frame(data, **sim.panel_kwargs))
table = compare(oracle, prop_bayes.naive, prop_bayes, prop_mle, prop_bc92,
                labels=["oracle (true efficiency)", "naive (Bayes SFA mean)",
                        "propagated (Bayes SFA)", "propagated (MLE)", "propagated (MLE bc92)"])
long = table.table.merge(sim.truth.rename(columns={"value": "truth"}),
                         on=["estimand", "group"], how="left")
att = long[long["estimand"] == "att"].copy()
att["covers"] = (att["lower"] <= att["truth"]) & (att["truth"] <= att["upper"])
att["width"] = att["upper"] - att["lower"]
att[att["group"] == "overall"][["method", "estimate", "lower", "upper", "width", "truth",
                                "covers"]].round(4)

# %%
att.pivot(index="group", columns="method", values="covers")

# %%
fig_forest = table.forest(estimand="att")
fig_forest
