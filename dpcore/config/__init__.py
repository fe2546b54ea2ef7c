"""One definition of a run (:class:`TrainConfig`, :mod:`dpcore.config.train_config`) and its named
starting points (:mod:`dpcore.config.presets`): CLI flags, URL keys and form ranges derive from it."""

from dpcore.config.train_config import *  # noqa: F403
