# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # A tour of bayesdid
#
# Panel -> hierarchical Bayesian DID -> its classical twin -> one comparison table and
# forest plot. The data are simulated with a known truth, shaped like the low-carbon-city
# pilot study (278 cities, 2003-2021, three pilot batches, treatment from the year after
# listing). `FAST` keeps the notebook quick in CI (2 chains x 1200 draws, enough for every
# convergence check here); set `BAYESDID_NOTEBOOK_FAST=0` in the environment for a full fit.
# Every Bayesian fit checks R-hat, bulk/tail ESS and divergences and warns
# (`ConvergenceWarning`, naming the parameters) when a check fails; it also says that the
# model's intervals are model-based and ignore the panel's `cluster` (a `DesignIgnoredWarning`).

# %%
# %matplotlib inline
import os

import pyfixest as pf

from bayesdid import (
    HierarchicalDiD,
    Panel,
    compare,
    event_study,
    regression_table,
    simulate_staggered,
    twfe,
)
from bayesdid.report.plots import event_study_plot

FAST = os.environ.get("BAYESDID_NOTEBOOK_FAST", "1") == "1"
sampler = dict(draws=1200, tune=500, chains=2) if FAST else dict(draws=1000, tune=1000, chains=4)

# %% [markdown]
# ## The panel
# Policy lists by batch; `start="next_year"` is the LCCP rule (treated from the year after
# listing). Every check runs here, once; estimators only ever see the validated `Panel`.

# %%
sim = simulate_staggered(random_seed=0)
panel = Panel.from_frame(sim.data, unit="city", time="year", outcome="eco_eff",
                         policy_lists=sim.policy_lists, start="next_year",
                         groups=["region"], covariates=["x1", "x2", "x3"], cluster="city")
print(panel.describe())

# %% [markdown]
# ## Bayesian DID and its classical twins

# %%
bayes = HierarchicalDiD(event_time=True).fit(panel, random_seed=1, **sampler)
classical = twfe(panel)
es = event_study(panel, leads=6, lags=8)
bayes.effects().head(8)

# %%
bayes.diagnostics().sort_values("ess_bulk").head()

# %% [markdown]
# ## Posterior vs classical, against the truth

# %%
table = compare(bayes, classical, es)
wide = table.wide().merge(sim.truth.rename(columns={"value": "truth"}),
                          on=["estimand", "group"], how="left")
wide.head(12)

# %%
fig = table.forest(estimand="att")
fig

# %%
event_study_plot(bayes, es)

# %% [markdown]
# ## Paper tables
# The seed papers' ladder of fixed effects (pooled OLS, time effects, city effects, two-way)
# is `fe=` in pyfixest's syntax. Each classical result keeps its pyfixest fit (`.fit`), so
# pyfixest's own `etable` prints them; `regression_table` puts the Bayesian column beside the
# classical ones, with each estimator's own fixed effects and p-values.

# %%
ladder = [twfe(panel, fe=fe) for fe in (None, "year", "city", "city + year")]
pf.etable([res.fit for res in ladder], type="df")

# %%
regression_table(*ladder, bayes, labels=["OLS", "time FE", "city FE", "two-way", "Bayesian"],
                 depvar="eco_eff")

