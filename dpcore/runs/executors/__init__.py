"""Executors start, watch and stop runs outside the dashboard process, over one run store.

* :mod:`~dpcore.runs.executors.base` - the :class:`Executor` contract every one keeps, the submission
  check and the wait loop they share;
* :mod:`~dpcore.runs.executors.local` - one OS process per run on this server (the default);
* :mod:`~dpcore.runs.executors.ray` - one Ray actor per run on a cluster (optional: needs ``ray``);
* :mod:`~dpcore.runs.executors.registry` - which one ``DPCORE_EXECUTOR`` / ``--executor`` names.

How a run ends (status and sentence) is :mod:`dpcore.runs.lifecycle`, the same for all of them. This
file imports nothing, so importing one executor never loads another.
"""
