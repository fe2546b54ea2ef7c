"""Server limits: read from the environment, memory estimates, refusals before launch, fair order.

The memory estimate was checked against the peak RSS (``resource.getrusage``) of real
``python -m dpcore train --max-steps 3`` runs on the project's 2-core machine (one math thread):

=========================================  ==========  ==========  =====
config (embed 32, 1 layer)                 measured    estimate    ratio
=========================================  ==========  ==========  =====
gaussian fast, char V78 H128 T32 B512      489 MiB     590 MiB     1.21
gaussian opacus, char V78 H128 T32 B512    934 MiB     1012 MiB    1.08
none, char V78 H128 T32 B512               500 MiB     563 MiB     1.13
gaussian fast, char V78 H256 T128 B512     1034 MiB    1753 MiB    1.69
gaussian opacus, char V78 H128 T64 B256    674 MiB     914 MiB     1.36
gaussian fast, word V693 H256 T35 B512     667 MiB     937 MiB     1.41
gaussian opacus, word V693 H256 T35 B512   1636 MiB    2784 MiB    1.70
=========================================  ==========  ==========  =====
"""

from __future__ import annotations

import pytest

from dpcore.config import TrainConfig
from dpcore.errors import DPCoreError
from dpcore.runs import limits as limits_mod
from dpcore.runs.limits import ServerLimits, check_launch, estimate_run_memory, memory_limit_bytes
from dpcore.runs.store import Run, fair_order

MEASURED = [  # (kwargs, measured peak RSS in MiB)
    (dict(vocab_size=78, hidden_size=128, seq_len=32, batch_size=512, mechanism="gaussian", engine="fast"), 489),
    (dict(vocab_size=78, hidden_size=128, seq_len=32, batch_size=512, mechanism="gaussian", engine="opacus"), 934),
    (dict(vocab_size=78, hidden_size=128, seq_len=32, batch_size=512, mechanism="none", engine="fast"), 500),
    (dict(vocab_size=78, hidden_size=256, seq_len=128, batch_size=512, mechanism="gaussian", engine="fast"), 1034),
    (dict(vocab_size=78, hidden_size=128, seq_len=64, batch_size=256, mechanism="gaussian", engine="opacus"), 674),
    (dict(vocab_size=693, hidden_size=256, seq_len=35, batch_size=512, mechanism="gaussian", engine="fast"), 667),
    (dict(vocab_size=693, hidden_size=256, seq_len=35, batch_size=512, mechanism="gaussian", engine="opacus"), 1636),
]


def test_defaults_and_environment() -> None:
    limits = ServerLimits.from_env({})
    assert limits == ServerLimits()
    assert (limits.max_active_per_owner, limits.max_queued_per_owner, limits.max_runs_per_owner) == (1, 4, 5)
    env = {"DPCORE_MAX_ACTIVE_PER_OWNER": "2", "DPCORE_MAX_QUEUED_PER_OWNER": "0",
           "DPCORE_MAX_RUN_SECONDS": "90.5", "DPCORE_DISK_QUOTA_MB": "0", "DPCORE_RETENTION_DAYS": ""}
    limits = ServerLimits.from_env(env)
    assert (limits.max_active_per_owner, limits.max_queued_per_owner, limits.max_run_seconds) == (2, 0, 90.5)
    assert limits.disk_quota_bytes is None and limits.retention_days == ServerLimits().retention_days
    assert ServerLimits.from_env(limits.to_env()) == limits  # what the executor hands its workers
    with pytest.raises(DPCoreError, match="DPCORE_RUN_MEMORY_MB must be a number"):
        ServerLimits.from_env({"DPCORE_RUN_MEMORY_MB": "lots"})
    with pytest.raises(DPCoreError, match="DPCORE_MAX_ACTIVE_PER_OWNER must be at least 1"):
        ServerLimits.from_env({"DPCORE_MAX_ACTIVE_PER_OWNER": "0"})


@pytest.mark.parametrize(("kwargs", "measured_mib"), MEASURED)
def test_estimate_is_an_upper_bound_of_measured_peaks(kwargs, measured_mib) -> None:
    estimate = estimate_run_memory(embed_dim=32, num_layers=1, **kwargs) / 2**20
    assert measured_mib <= estimate <= 2 * measured_mib


def test_estimate_grows_with_what_costs_memory() -> None:
    base = dict(vocab_size=259, embed_dim=32, hidden_size=128, num_layers=1, seq_len=32, batch_size=512)
    fast = estimate_run_memory(mechanism="gaussian", engine="fast", **base)
    assert estimate_run_memory(mechanism="none", engine="fast", **base) < fast
    assert estimate_run_memory(mechanism="gaussian", engine="opacus", **base) > fast  # per-example gradients
    assert estimate_run_memory(mechanism="laplace", engine="fast", **base) > fast  # Laplace is always Opacus
    longer = estimate_run_memory(mechanism="gaussian", engine="fast", **{**base, "seq_len": 256})
    assert longer - fast > 2 * 4 * 512 * (256**2 - 32**2)  # the Gram matrices [B, T, T]


def test_check_launch_refuses_a_link_that_would_take_the_machine() -> None:
    limits = ServerLimits()
    assert check_launch(TrainConfig(), limits=limits) < 1 * 2**30  # the default run fits easily
    # user-level: B users bring up to k·B sequences, and the fast engine keeps per-user Grams of (k·T)²
    per_user = [check_launch(TrainConfig(user_cap=k), limits=limits) for k in (1, 2, 4)]
    assert per_user == sorted(per_user) and per_user[0] < per_user[1] < per_user[2]
    assert check_launch(TrainConfig(unit="sequence", batch_size=512), limits=limits) < per_user[1] * 1.5
    with pytest.raises(DPCoreError, match="memory"):  # 256 users × 32 sequences each: refused before it starts
        check_launch(TrainConfig(user_cap=32), limits=limits)
    for preset in (TrainConfig(max_steps=300, hidden_size=64, embed_dim=16, batch_size=256),
                   TrainConfig(mechanism="laplace", accountant="pld", max_steps=150)):
        check_launch(preset, limits=limits)
    huge = TrainConfig(hidden_size=4096, tokenizer="word", max_vocab=50_000, seq_len=1024)
    with pytest.raises(DPCoreError, match=r"^this run would need about [\d.]+ GB of memory .*hidden size 4096, "
                                          r"vocabulary 50,000, windows of 1024.* allows 4\.0 GB per run"):
        check_launch(huge, limits=limits)
    with pytest.raises(DPCoreError, match="50,000 optimizer steps; this server allows at most 10,000"):
        check_launch(TrainConfig(max_steps=50_000), limits=limits)
    epochs = TrainConfig(max_steps=None, epochs=100, batch_size=64)
    assert check_launch(epochs, limits=limits)  # N unknown: the worker checks once the data is loaded
    with pytest.raises(DPCoreError, match="15,700 optimizer steps"):
        check_launch(epochs, num_examples=10_000, limits=limits)  # 100 × ⌈10000/64⌉
    assert check_launch(huge, limits=ServerLimits(run_memory_mb=0))  # 0 turns the cap off


def test_memory_limit_is_the_estimate_times_two_capped_by_the_budget() -> None:
    slack = limits_mod.ADDRESS_SPACE_SLACK
    assert memory_limit_bytes(100 * 2**20, ServerLimits(run_memory_mb=4096)) == 200 * 2**20 + slack
    assert memory_limit_bytes(3000 * 2**20, ServerLimits(run_memory_mb=4096)) == 4096 * 2**20 + slack
    assert memory_limit_bytes(3000 * 2**20, ServerLimits(run_memory_mb=0)) == 6000 * 2**20 + slack


def _run(run_id: str, owner: str) -> Run:
    return Run(id=run_id, owner=owner, status="queued", config={}, created_at=0.0)


def test_fair_order_puts_a_newcomer_before_a_hogs_backlog() -> None:
    queued = [_run(f"a{i}", "alice") for i in range(29)] + [_run("b0", "bob"), _run("c0", "carol"),
                                                             _run("b1", "bob")]
    order = [r.id for r in fair_order(queued, {"alice": 1})]
    assert order[:4] == ["b0", "c0", "a0", "b1"]  # round 0: bob, carol; round 1: alice's first, bob's second
    assert order[4:] == [f"a{i}" for i in range(1, 29)]
    assert [r.id for r in fair_order(queued[:3], {})] == ["a0", "a1", "a2"]  # one owner: first in, first out
    # alice's run just ended (none running): owners take turns, so bob and carol still go first
    order = [r.id for r in fair_order(queued, {}, {"alice": 100.0, "carol": 50.0})]
    assert order[:4] == ["b0", "c0", "a0", "b1"]
