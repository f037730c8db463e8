"""The command line's view of a running study: a progress bar, one line per finished phase
and, with ``--tensorboard``, the training curves as TensorBoard scalars."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from agents.study.runner import Progress, summary_line
from agents.study.spec import StudySpec
from agents.study.store import PhaseId
from bridge.config import ConfigError


class ConsoleProgress(Progress):
    """Prints the run's header and phase lines; the bar goes to stderr (hidden off a tty)."""

    def __init__(self, command: str = "reproduce", tensorboard: bool = False) -> None:
        self.command = command
        self.tensorboard = tensorboard
        self.bar: Any = None
        self.writer: Any = None
        self.adapt_episodes = 0

    def started(self, spec: StudySpec, out: Path, done: int, total: int) -> None:
        from tqdm import tqdm

        if done:
            print(f"resuming {out}: {done} of {total} phases already done, skipping them")
        print(f"iabmeta {self.command}: backend={spec.backend} profile={spec.budget.name} "
              f"agents={','.join(spec.agents)} seeds={list(spec.seeds)} "
              f"studies={[s.name for s in spec.studies]} -> {out}")
        self.adapt_episodes = spec.budget.adapt_episodes
        self.bar = tqdm(total=total, initial=done, desc="phases", unit="phase", disable=None,
                        file=sys.stderr)
        if self.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise ConfigError(f"--tensorboard needs the tensorboard package: {exc}"
                                  ) from None
            self.writer = SummaryWriter(str(out / "tensorboard"))

    def phase_started(self, phase: PhaseId) -> None:
        self.bar.set_postfix_str(str(phase), refresh=True)

    def iteration(self, phase: PhaseId, stats: dict[str, float]) -> None:
        self.bar.set_postfix_str(f"{phase.method} s{phase.seed} "
                                 f"steps={int(stats.get('env_steps', 0))}", refresh=False)
        self.bar.refresh()
        if self.writer is not None:
            for k, v in stats.items():
                if isinstance(v, (int, float)):
                    self.writer.add_scalar(f"{phase.study}/{phase.method}/s{phase.seed}/{k}",
                                           v, int(stats.get("env_steps", 0)))

    def phase_done(self, phase: PhaseId, result: Any, seconds: float) -> None:
        if phase.kind == "train":
            summary = f"{result['env_steps']} env-steps"
        elif phase.kind == "adapt":
            summary = summary_line([r for r in result if r["episode"] == self.adapt_episodes])
        else:
            summary = summary_line(result)
        self.bar.update(1)
        self.bar.write(f"[{seconds:6.1f}s] {phase}: {summary}", file=sys.stderr)

    def finished(self, out: Path, paths: list[Path]) -> None:
        self.close()
        print(f"wrote {', '.join(str(p.relative_to(out)) for p in paths)} in {out}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.writer is not None:
            self.writer.close()
            self.writer = None
