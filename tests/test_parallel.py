"""Replications: same seeds, same numbers, whatever the backend (local processes or Dask)."""

from __future__ import annotations

import pandas as pd
import pytest

from bayesdid.calibration import coverage_replication
from bayesdid.errors import BayesDidError
from bayesdid.parallel import run_replications

SMALL = dict(n_units=30, years=(2005, 2012), batches={2008: 5, 2010: 5})


def _args(n):
    # errors=() fits only the classical twin: a cheap, seeded replication
    return [(seed, (), 100, 100, 2, SMALL) for seed in range(n)]


@pytest.fixture(scope="module")
def reference():
    return run_replications(coverage_replication, _args(4), workers=1, progress=False)


@pytest.mark.pipeline
def test_local_processes_match_in_process(reference):
    got = run_replications(coverage_replication, _args(4), workers=2, progress=False)
    pd.testing.assert_frame_equal(pd.DataFrame(sum(got, [])), pd.DataFrame(sum(reference, [])))


@pytest.mark.pipeline
def test_dask_cluster_matches_local(reference):
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            got = run_replications(coverage_replication, _args(4), client=client,
                                   progress=False)
        by_address = run_replications(coverage_replication, _args(4),
                                      client=cluster.scheduler_address, progress=False)
    expected = pd.DataFrame(sum(reference, []))
    pd.testing.assert_frame_equal(pd.DataFrame(sum(got, [])), expected)
    pd.testing.assert_frame_equal(pd.DataFrame(sum(by_address, [])), expected)


@pytest.mark.unit
def test_bad_client_is_a_typed_error():
    with pytest.raises(BayesDidError, match="client"):
        run_replications(pow, [(2, 2)], client=object(), progress=False)
