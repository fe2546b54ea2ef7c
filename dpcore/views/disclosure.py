"""What a run releases, which of it the DP guarantee covers, and who may see the rest.

ε bounds only what went through an accounted mechanism. Everything else the product shows about
a run — the training loss per step, the realised batch sizes, the exact fraction of clipped
examples and the median gradient norm, the validation perplexity on held-out users, the
membership-inference numbers of an audit, and any text sampled from a model *without* a
guarantee — is computed from private text without noise. This module is the one list of those
quantities (:func:`released_quantities`, read by the privacy statement) and the one rule for
showing them (:func:`may_show_uncovered`, :func:`may_show_samples`, :func:`visible_metrics`):

* the built-in corpus is synthetic and public, so everything may be shown (and is labelled);
* for a run on uploaded text, the owner's own pages show the uncovered numbers labelled
  "computed without noise"; people who open the run by link, and every exported report or CSV,
  get only covered quantities — unless the owner ticked the explicit "share statistics that ε
  does not cover" box (``Run.share_uncovered``);
* text sampled from a model with no DP guarantee, trained on an upload, is for its owner only, on
  screen and in every export, whatever the box says: the rule itself is
  :func:`dpcore.runs.access.text_access`, below every page, report, export and CLI path; everyone
  else may decode such a model only privately, within its stranger budget
  (:func:`stranger_sentence` says what it is and whether the owner raised it).

Pure data, no streamlit and no torch: pages and reports call these.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dpcore.runs.access import STORED_SAMPLES, may_read, owner_only
from dpcore.runs.limits import DEFAULT_STRANGER_BUDGET
from dpcore.training.result import RunResult
from dpcore.views.meaning import guarantee_of

#: Step metrics computed from private data without noise (never covered by ε).
UNCOVERED_METRICS = ("train_loss", "batch_size", "frac_clipped", "median_grad_norm")
#: The label every uncovered number carries where it is shown.
UNCOVERED_LABEL = "computed without noise: not covered by ε"


@dataclass(frozen=True)
class Released:
    """One quantity a run releases and whether its DP guarantee covers it."""

    what: str
    covered: bool
    why: str


def is_builtin(config: Mapping[str, Any]) -> bool:
    return str(config.get("corpus", "builtin")) == "builtin"


def _is_dp(run: Any) -> bool:
    return guarantee_of(run) == "dp"


def may_show_uncovered(run: Any, *, viewer: str | None) -> bool:
    """May ``viewer`` (an owner key; None for an exported file) see the run's uncovered statistics?"""
    if is_builtin(run.config) or bool(getattr(run, "share_uncovered", False)):
        return True
    return viewer is not None and viewer == run.owner


def may_show_samples(run: Any, *, viewer: str | None) -> bool:
    """May ``viewer`` read the samples the worker stored while training? (None: someone unknown.)

    Text from a DP-trained model is post-processing and covered. Text from a model without a
    guarantee can quote its training text: for an upload, only its owner reads it, on screen or in
    an export they download; the sharing box shares statistics, never that text. The rule is
    :func:`dpcore.runs.access.text_access`, the one every decoder goes through too.
    """
    return may_read(run, viewer, STORED_SAMPLES)


def stranger_sentence(run: Any) -> str | None:
    """Who may read the text of an owner-only model, and the stranger budget (with the owner's raise).

    None when the model's text is not for its owner only (DP-trained, or the public built-in corpus).
    """
    if not owner_only(run):
        return None
    budget = getattr(run, "stranger_budget", None)
    head = ("Text from this model is for its owner only when it carries no guarantee of its own: it was trained "
            "without privacy on uploaded text, which plain samples (and the naive-logits decoder) can quote, so "
            "they are refused to everyone else, on screen, in reports and exports and from the command line. "
            "Everyone else together may decode it only with a private decoder, charged to a stranger budget of ")
    if budget is None:
        return head + f"ε = {DEFAULT_STRANGER_BUDGET:g} in total (the default)."
    budget = float(budget)
    if budget > DEFAULT_STRANGER_BUDGET:
        return head + (f"ε = {budget:.3g} in total: RAISED by the run's owner from the default "
                       f"ε = {DEFAULT_STRANGER_BUDGET:g}, so what strangers may learn about the uploaded text is "
                       f"bounded only by ε = {budget:.3g} (basic composition, δ = 0).")
    return head + (f"ε = {budget:.3g} in total (set by the run's owner; the default is "
                   f"ε = {DEFAULT_STRANGER_BUDGET:g}).")


def visible_metrics(rows: Sequence[Mapping[str, Any]], show_uncovered: bool) -> list[dict[str, Any]]:
    """Step rows without the uncovered columns unless they may be shown."""
    if show_uncovered:
        return [dict(r) for r in rows]
    return [{k: v for k, v in r.items() if k not in UNCOVERED_METRICS} for r in rows]


def released_quantities(run: Any) -> list[Released]:
    """Every quantity the run releases, covered by its guarantee or not (for the statement)."""
    cfg, res = run.config, getattr(run, "result", None) or RunResult.empty()
    dp = _is_dp(run)
    if not dp:
        return [Released("everything: weights, samples, curves and every statistic", False,
                         "this run has no differential-privacy guarantee")]
    vocab = res.vocabulary or ("the built-in generator's alphabet (public)" if is_builtin(cfg)
                                      else "a vocabulary fixed independently of the data")
    out = [
        Released("the weights, every checkpoint and the final model", True, "trained with DP-SGD"),
        Released("any text sampled from the model, however much", True, "post-processing of the weights"),
        Released(f"the vocabulary ({vocab})", True, "it does not depend on the training text"),
        *([Released("the starting weights: a public model pre-trained without privacy on "
                    + str((res.public_model or {}).get("corpus") or "public text"), True,
                    "trained on public text only, never on this run's data: it costs no ε")]
          if cfg.get("init") == "public" else []),
        Released("the ε curve, N, the sampling rate q, σ, C, the steps and δ", True,
                 "functions of the configuration and of N, which is treated as public"),
    ]
    if res.clip_count_noise is not None:  # released only when the batch is large enough (split_noise)
        out.append(Released("the private fraction of clipped examples", True,
                            "a noisy count whose noise is folded into the accounted Gaussian mechanism"))
    out += [
        Released("the training loss per step", False, UNCOVERED_LABEL),
        Released("the realised batch sizes", False, UNCOVERED_LABEL),
        Released("the exact fraction clipped and the median per-example gradient norm", False, UNCOVERED_LABEL),
        Released("the validation perplexity", False,
                 "measured on held-out users' text without noise (their text is never trained on)"),
    ]
    if cfg.get("audit"):
        out.append(Released("the audit's membership-inference AUC and ROC", False,
                            "computed on training and held-out text without noise"))
        out.append(Released("the audit's canary exposure", False,
                            "it ranks each planted secret itself under the model, without noise"))
        out.append(Released("the audit's one-run ε lower bound", True,
                            "a function of the model and of synthetic canaries and their secret coins"))
    return out


#: An absolute server path (POSIX), as it may appear in a worker's error (a log file, a corpus file).
_PATH_RE = re.compile(r"(?<![\w.])/(?:[\w.@+-]+/)*[\w.@+-]+")


def visible_error(run: Any, *, viewer: str | None) -> str | None:
    """The run's error message, with server file paths hidden from everyone but its owner."""
    error = getattr(run, "error", None)
    if not error or (viewer is not None and viewer == run.owner):
        return error
    return _PATH_RE.sub("(a file on the server)", error)
