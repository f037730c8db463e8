"""Learning side of iabmeta: meta-RL agents, baselines, the study runner, report and CLI."""

__version__ = "0.1.0"
