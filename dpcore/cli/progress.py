"""A progress bar on stderr for CLI training (tqdm), fed by the trainer's callbacks."""

from __future__ import annotations

import sys

from tqdm import tqdm

from dpcore.events import EvalMetrics, RunInfo, StepMetrics, TrainCallbacks


class ProgressBar(TrainCallbacks):
    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.bar: tqdm | None = None
        self.val_ppl: float | None = None

    def on_start(self, info: RunInfo) -> None:
        if not self.quiet:
            self.bar = tqdm(total=info.total_steps, file=sys.stderr, unit="step", dynamic_ncols=True)

    def on_step(self, m: StepMetrics) -> None:
        if self.bar is None:
            return
        post = {}
        if m.train_loss is not None:
            post["loss"] = f"{m.train_loss:.3f}"
        if m.epsilon is not None:
            post["ε"] = f"{m.epsilon:.2f}"
        if self.val_ppl is not None:
            post["val_ppl"] = f"{self.val_ppl:.2f}"
        self.bar.set_postfix(post, refresh=False)
        self.bar.update(1)
        if self.bar.n >= (self.bar.total or 0):
            self.bar.close()

    def on_eval(self, m: EvalMetrics) -> None:
        self.val_ppl = m.val_perplexity

    def on_status(self, text: str) -> None:
        if not self.quiet:
            print(text, file=sys.stderr)
