"""Placebo replications on Dask and local processes give the same numbers as in-process;
a scheduler address that does not answer stops with a ClusterError or falls back."""

from __future__ import annotations

import logging
import socket

import numpy as np
import pytest

from bayesdid import Panel
from bayesdid.checks.placebo import placebo
from bayesdid.datasets.simulate import simulate_staggered
from bayesdid.errors import ClusterError
from bayesdid.parallel import run_replications

distributed = pytest.importorskip("dask.distributed")

SMALL = dict(n_units=60, years=(2005, 2014), batches={2008: 8, 2010: 8})
RUN = dict(kind="both_random", n_draws=120, random_seed=5, chunk_size=20, progress=False)


@pytest.fixture(scope="module")
def panel():
    sim = simulate_staggered(**SMALL, random_seed=4)
    return Panel.from_frame(sim.data, **sim.panel_kwargs)


@pytest.fixture(scope="module")
def reference(panel):
    return placebo(panel, workers=1, **RUN)


def _unused_address() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"tcp://127.0.0.1:{port}"


def _fail(x):
    raise KeyError(f"bad replication {x}")


def _dies_on_a_worker(i):
    """Replication 3 kills the Dask worker running it (a cluster failure, not fn's error)."""
    import os

    try:
        distributed.get_worker()
    except ValueError:  # not on a Dask worker: the local fallback
        return 10 * i
    if i == 3:
        os._exit(1)
    return 10 * i


@pytest.mark.pipeline
def test_dask_and_processes_match_in_process(panel, reference):
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                     dashboard_address=None) as cluster:
        with distributed.Client(cluster, set_as_default=False) as client:
            on_client = placebo(panel, client=client, **RUN)
            with pytest.raises(KeyError, match="bad replication 1"):  # fn's error, unchanged
                run_replications(_fail, [(1,)], client=client, progress=False)
        by_address = placebo(panel, client=cluster.scheduler_address, **RUN)
        # a worker dies mid-run: finished work is kept; the rest runs locally or is reported
        with distributed.Client(cluster, set_as_default=False) as client:
            with pytest.raises(ClusterError, match="failed after") as err:
                run_replications(_dies_on_a_worker, [(i,) for i in range(4)], client=client,
                                 progress=False)
            assert all(err.value.completed[i] == 10 * i for i in err.value.completed)
            assert 3 not in err.value.completed
            client.wait_for_workers(2, timeout=30)
            rescued = run_replications(_dies_on_a_worker, [(i,) for i in range(4)],
                                       client=client, fallback=True, workers=1, progress=False)
            assert rescued == [0, 10, 20, 30]
    on_processes = placebo(panel, workers=2, **RUN)
    for got in (on_client, by_address, on_processes):
        np.testing.assert_array_equal(got.draws, reference.draws)
        assert got.p_value == reference.p_value
    assert reference.draws.std() > 0.003  # real placebo draws, not constants


@pytest.mark.unit
def test_unreachable_scheduler_stops_with_a_clear_error(panel):
    address = _unused_address()
    with pytest.raises(ClusterError, match="did not answer within 1 s") as err:
        placebo(panel, client=address, timeout=1.0, **RUN)
    assert address in str(err.value) and "fallback=True" in str(err.value)


@pytest.mark.unit
def test_unreachable_scheduler_falls_back_to_local(panel, reference, caplog):
    with caplog.at_level(logging.WARNING, logger="bayesdid.parallel"):
        got = placebo(panel, client=_unused_address(), timeout=1.0, fallback=True, workers=1,
                      **RUN)
    np.testing.assert_array_equal(got.draws, reference.draws)
    assert any("falling back to local processes" in r.getMessage() for r in caplog.records)


@pytest.mark.unit
def test_bad_timeout_is_a_typed_error():
    with pytest.raises(ValueError, match="timeout"):
        run_replications(pow, [(2, 2)], timeout=0, progress=False)
