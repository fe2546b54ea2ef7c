"""One audit of one trained run: checkpoint in, ``audit.json`` out.

The audit rebuilds the run's exact training data from the checkpoint's config (the same corpus,
tokenizer, window length and user split, ``split_seed=0`` as training uses) and refuses to go on if
the rebuilt vocabulary or training-set size differs from the checkpoint's: the corpus has changed,
and "members" would no longer be what the model trained on. It then measures

* **the run's empirical ε** with the one-run audit of Steinke, Nasr and Jagielski (2023)
  (:mod:`dpcore.audit.one_run`) and, on the same guesses, the f-DP bound of Mahloujifar, Melis and
  Chaudhuri (2024) (:mod:`dpcore.audit.fdp`; ``empirical_epsilon.value_fdp``, ``one_run.epsilon_lower_bound_fdp``);
  either bound above the claimed ε raises ``bug_alarm`` (a sentence; None otherwise), when the run planted
  audit canaries before training (``audit_canaries``);
  a checkpoint audited afterwards (``python -m dpcore audit``) has none, and the report says so
  (``empirical_epsilon.value`` is None): the canaries and their secret coins must exist before training;
* canary exposure for every planted secret-sharer canary (:mod:`dpcore.audit.exposure`); a corpus
  without them (an upload) still gets the rest, and the exposure part says why it is empty
  (``exposure_note``) instead of failing the whole audit;
* *user-level* membership inference on ordinary training windows vs held-out users' windows, with the
  loss-threshold attack and the reference-calibrated attack (:mod:`dpcore.audit.membership`): AUC and
  ROC only. Its members and non-members differ by a whole user, and its trials are correlated, so no ε
  is derived from it.

**Which data.** ``data`` is the run's *real* data, without the audit canaries: the trainer appends
``audit_canaries.training_rows()`` to ``data.train`` for training only, and passes the original
LMData here with the canaries. So membership members are drawn from real rows only, the reference
model never sees a canary, and the size check expects ``len(data.train) + audit_canaries.num_included``
training windows.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from dpcore.audit.defaults import CONFIDENCE, MAX_EXAMPLES, MAX_REFERENCE_STEPS, MIN_EXAMPLES, REFERENCES
from dpcore.audit.exposure import NO_CANARIES_MESSAGE, canary_exposures, exposure_by_insertions, model_guesses
from dpcore.audit.lab import HINTS, ExtractionTarget, save_lab_canaries
from dpcore.audit.membership import LOW_FPRS, attack_report, auc_plain, per_sequence_losses
from dpcore.audit.one_run import ATTACK_NAME, AuditCanaries, one_run_audit, score_canaries
from dpcore.audit.reference import train_reference
from dpcore.config import DEFAULT_DELTA_RULE, TrainConfig
from dpcore.data import LMData, build_lm_data, load_corpus
from dpcore.errors import CheckpointError, ConfigError, DPCoreError
from dpcore.privacy.delta import default_delta
from dpcore.training.checkpoint import Checkpoint, load_checkpoint

FORMAT = "dpcore-audit"
VERSION = 3  # 3: the f-DP bound beside Steinke et al.'s, and the bug alarm
AUDIT_FILE = "audit.json"

CAVEAT = (
    "An audit gives a lower bound on leakage from one trained model; DP's ε is an upper bound over all pairs of "
    "datasets. The empirical ε comes only from the one-run audit (canaries included by secret independent coin "
    "flips): Steinke et al.'s (2023) bound, sound for the run's example-level ε, and the f-DP bound of Mahloujifar "
    "et al. (2024), which tests Gaussian trade-off curves (the curve DP-SGD approaches) and certifies more from the "
    "same guesses. A lower bound far below ε is expected and does not make ε smaller; one above ε raises the bug "
    "alarm. The membership-inference AUC is user-level (members and non-members are different users' windows, "
    "correlated within a user) and gives no ε."
)

NO_ONE_RUN = (
    "no one-run ε bound: this run planted no audit canaries. The canaries and the secret coin flips that "
    "include them must exist before training (tick \"audit\" at launch); an audit of a finished checkpoint "
    "cannot add them"
)


def config_of(ckpt: Checkpoint, path: str | Path) -> TrainConfig:
    """The run's TrainConfig from a checkpoint, as a CheckpointError if it is missing or malformed."""
    if not ckpt.config:
        raise CheckpointError(f"{path} holds no training config, so its training data cannot be rebuilt")
    try:
        return TrainConfig.from_dict(ckpt.config)
    except ConfigError as err:
        raise CheckpointError(f"{path} holds an unusable training config ({err})") from err


def rebuild_data(config: TrainConfig) -> LMData:
    """The run's LMData, rebuilt exactly as :func:`dpcore.training.loop.run_training` builds it."""
    try:
        corpus = load_corpus(config.corpus, text_column=config.text_column, user_column=config.user_column,
                             builtin_users=config.builtin_users)
    except DPCoreError as err:
        raise DPCoreError(f"cannot rebuild the run's training data: {err}") from err
    return build_lm_data(corpus, tokenizer=config.tokenizer, seq_len=config.seq_len,
                         val_fraction=config.val_fraction, max_vocab=config.max_vocab, split_seed=0)


def check_same_data(ckpt: Checkpoint, data: LMData, audit_canaries: AuditCanaries | None = None) -> None:
    """Refuse data that is not what the checkpoint was trained on (the real windows plus the included canaries)."""
    if data.tokenizer != ckpt.tokenizer:
        raise DPCoreError(
            "the corpus differs from the one this run was trained on (its vocabulary changed), so the audit "
            "cannot tell members from non-members; audit with the original corpus"
        )
    if audit_canaries is not None:
        if int(audit_canaries.rows.shape[1]) != int(data.train.shape[1]):
            raise DPCoreError(f"the audit canaries are windows of {audit_canaries.rows.shape[1]} tokens, the run's "
                              f"of {data.train.shape[1]}")
        if int(audit_canaries.rows.max()) >= ckpt.tokenizer.vocab_size:
            raise DPCoreError("the audit canaries use token ids outside this run's vocabulary")
    extra = audit_canaries.num_included if audit_canaries is not None else 0
    expected = ckpt.result.num_train_examples
    now = int(data.train.shape[0]) + extra
    if expected is not None and int(expected) != now:
        canaries = f" + {extra} included audit canaries" if audit_canaries is not None else ""
        hint = (" (a run that planted audit canaries can only be audited with them)"
                if audit_canaries is None and int(expected) > now else "")
        raise DPCoreError(
            f"the corpus differs from the one this run was trained on ({data.train.shape[0]} training windows"
            f"{canaries} now, {expected} then){hint}; audit with the original corpus"
        )


def _exposure_part(ckpt: Checkpoint, data: LMData, seed: int, *,
                   game: bool = False) -> tuple[dict[str, Any], list[ExtractionTarget]]:
    """(the report's exposure part, with ``game`` the extraction game's targets too)."""
    if not data.corpus.canaries:
        return {"exposure": [], "exposure_by_insertions": [], "exposure_note": NO_CANARIES_MESSAGE}, []
    results = canary_exposures(ckpt.model, ckpt.tokenizer, data.corpus.canaries, seed=seed)
    targets = []
    if game:
        for canary, res in zip(data.corpus.canaries, results, strict=True):
            guesses = model_guesses(ckpt.model, ckpt.tokenizer, canary, HINTS)
            if guesses is not None:
                targets.append(ExtractionTarget(
                    canary_id=canary.id, prefix=canary.prefix, secret=canary.secret, insertions=canary.insertions,
                    alphabet=canary.alphabet, length=canary.length, separator=canary.separator, rank=res.rank,
                    exposure=res.exposure, max_exposure=res.max_exposure, guesses=tuple(guesses)))
    return ({"exposure": [r.to_dict() for r in results], "exposure_by_insertions": exposure_by_insertions(results),
             "exposure_note": ""}, targets)


class Targets(NamedTuple):
    members: np.ndarray  # train row indices attacked as members
    nonmembers: np.ndarray  # val row indices attacked as non-members
    target_user_rows: np.ndarray  # every train row of the users the members were drawn from
    num_target_users: int


def _targets(data: LMData, max_examples: int, seed: int) -> Targets:
    """Members from a random half of the training users, as many non-members, drawn with a seeded generator.

    Members come from half of the training users so that the reference model can train on the other
    half and see no window of any attacked user: one user's windows share their persona (name, phone,
    doctor), and a reference that saw a member's neighbours would find the member easy and cancel its
    signal. Canary windows are left out of the members: they are duplicates planted on purpose and
    are measured by exposure; membership inference is about ordinary sequences.
    """
    rng = np.random.default_rng(seed)
    users = list(data.train_users)
    chosen = {users[i] for i in rng.permutation(len(users))[: max(1, len(users) // 2)]}
    owners = data.train_example_users
    user_rows = np.array([i for i, u in enumerate(owners) if u in chosen], dtype=np.int64)
    canary = {i for rows in data.canary_rows.values() for i in rows}
    pool = np.array([i for i in user_rows if i not in canary], dtype=np.int64)
    n = min(len(pool), int(data.val.shape[0]), max_examples)
    members = np.sort(rng.choice(pool, size=n, replace=False))
    nonmembers = np.sort(rng.choice(int(data.val.shape[0]), size=n, replace=False))
    return Targets(members, nonmembers, user_rows, len(chosen))


def _membership_part(ckpt: Checkpoint, config: TrainConfig, data: LMData, *, seed: int, max_examples: int,
                     reference: str, reference_steps: int, device: str) -> dict[str, Any]:
    members, nonmembers, user_rows, num_users = _targets(data, max_examples, seed)
    if len(members) < MIN_EXAMPLES:
        return {"skipped": (f"only {len(members)} held-out windows: membership inference needs at least "
                            f"{MIN_EXAMPLES}; raise the validation fraction or lower the sequence length")}
    loss_in = per_sequence_losses(ckpt.model, data.train[members])
    loss_out = per_sequence_losses(ckpt.model, data.val[nonmembers])
    attacks = {"loss": attack_report(
        "loss", "member if the sequence's loss under the model is low (Yeom et al. 2018)", -loss_in, -loss_out)}
    scores = {"loss": (-loss_in, -loss_out)}
    calibration: dict[str, Any] = {"kind": "none"}
    if reference == "model":
        ref = train_reference(config, data, user_rows, steps=reference_steps, device=device)
        ref_in = per_sequence_losses(ref, data.train[members])
        ref_out = per_sequence_losses(ref, data.val[nonmembers])
        attacks["calibrated"] = attack_report(
            "calibrated", "member if the model's loss is low compared with a reference model's that saw "
            "neither the attacked users nor the held-out users (Watson et al. 2022)",
            ref_in - loss_in, ref_out - loss_out)
        scores["calibrated"] = (ref_in - loss_in, ref_out - loss_out)
        calibration = {"kind": "reference model", "steps": reference_steps, "mechanism": "none",
                       "trained_on": f"the training windows of the {len(data.train_users) - num_users} training "
                                     f"users the members were not drawn from ({len(data.train) - len(user_rows)} "
                                     f"windows)"}
    _add_whole_user_attacks(attacks, scores, data, members, nonmembers)
    return {
        "level": "user",
        "note": ("user-level membership inference: members and non-members are windows of different users, "
                 "correlated within a user, so it measures leakage about users and gives no example-level ε"),
        "members": f"{len(members)} ordinary training windows (canary windows left out), drawn at random from "
                   f"{num_users} randomly chosen training users",
        "nonmembers": f"{len(nonmembers)} windows of held-out users, drawn at random",
        "num_members": len(members),
        "num_nonmembers": len(nonmembers),
        "attacks": attacks,
        "calibration": calibration,
    }


def _per_user_means(scores: np.ndarray, owners: list[str]) -> np.ndarray:
    """The mean score of each user's attacked windows (one number per user)."""
    groups: dict[str, list[float]] = {}
    for score, owner in zip(scores.tolist(), owners, strict=True):
        groups.setdefault(owner, []).append(score)
    return np.array([sum(v) / len(v) for _, v in sorted(groups.items())])


def _add_whole_user_attacks(attacks: dict[str, Any], scores: dict[str, tuple[np.ndarray, np.ndarray]],
                            data: LMData, members: np.ndarray, nonmembers: np.ndarray) -> None:
    """The same attacks with whole users as the trials: a user's score is the mean over their windows.

    This is the test a user-level guarantee speaks to: "was this *person* trained on?", answered from
    everything of theirs the attacker holds. (Its AUC is noisier: there are as many trials as users.)
    """
    owners_in = [data.train_example_users[i] for i in members]
    owners_out = [data.val_example_users[i] for i in nonmembers]
    for name, (scores_in, scores_out) in scores.items():
        report = attacks[name]
        users_in, users_out = _per_user_means(scores_in, owners_in), _per_user_means(scores_out, owners_out)
        if min(len(users_in), len(users_out)) < 2:
            continue
        attacks[f"user-{name}"] = attack_report(
            f"user-{name}", f"{report['description']}, averaged over each user's windows: members and "
            f"non-members are whole users ({len(users_in)} and {len(users_out)})", users_in, users_out)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


def _one_run_part(ckpt: Checkpoint, audit_canaries: AuditCanaries | None, *, delta: float, confidence: float,
                  claimed: float | None) -> tuple[dict[str, Any] | None, dict[str, Any], np.ndarray | None]:
    """(the full one-run result or None, the top-level ``empirical_epsilon``, the canaries' scores or None)."""
    if audit_canaries is None:
        return None, {"value": None, "confidence": confidence, "attack": None, "max_certifiable": None,
                      "value_fdp": None, "max_certifiable_fdp": None, "exceeds_claim": [], "alarm": None,
                      "note": _sentence(NO_ONE_RUN)}, None
    scores = score_canaries(ckpt.model, audit_canaries)
    one = one_run_audit(ckpt.model, audit_canaries, delta=delta, confidence=confidence, claimed=claimed,
                        scores=scores)
    return one, {"value": one["epsilon_lower_bound"], "confidence": confidence, "attack": ATTACK_NAME,
                 "max_certifiable": one["max_certifiable"], "value_fdp": one["epsilon_lower_bound_fdp"],
                 "attack_fdp": one["fdp_attack"], "fdp_family": one["fdp_family"],
                 "max_certifiable_fdp": one["max_certifiable_fdp"], "exceeds_claim": one["exceeds_claim"],
                 "alarm": one["alarm"]}, scores


def _summary(membership: dict[str, Any], exposure: dict[str, Any], one_run: dict[str, Any] | None,
             empirical: dict[str, Any]) -> dict[str, Any]:
    """Top-level numbers: the one-run ε, the best user-level AUC and TPRs, plain words."""
    plain = [one_run["plain"] if one_run is not None else empirical["note"]]
    plain += [f"Canaries planted {g['insertions']} time(s): mean exposure {g['mean_exposure']:.1f} of "
              f"{g['max_possible']:.1f} bits; guessing such a secret would take about "
              f"2^{g['max_possible'] - g['mean_exposure']:.1f} tries" for g in exposure["exposure_by_insertions"]]
    if exposure["exposure_note"]:
        plain.append(_sentence(exposure["exposure_note"]))
    attacks = membership.get("attacks")
    if not attacks:
        plain.append(_sentence(membership["skipped"]))
        return {"empirical_epsilon": empirical, "auc": None, "tpr_at_fpr": None, "plain": plain}
    auc = max(a["auc"] for a in attacks.values())
    plain.append(_sentence(auc_plain(auc)))
    return {
        "empirical_epsilon": empirical,
        "auc": auc,
        "tpr_at_fpr": {f"{f:g}": max(a["tpr_at_fpr"][f"{f:g}"] for a in attacks.values()) for f in LOW_FPRS},
        "plain": plain,
    }


def run_audit(checkpoint_path: str | Path, out_dir: str | Path, *, seed: int = 0, max_examples: int = MAX_EXAMPLES,
              reference: str = "model", reference_steps: int | None = None, confidence: float = CONFIDENCE,
              device: str = "cpu", data: LMData | None = None,
              audit_canaries: AuditCanaries | None = None) -> dict[str, Any]:
    """Audit a checkpoint, write ``out_dir/audit.json`` and return its content.

    ``data`` overrides the rebuilt training data (for runs trained on a corpus the config cannot
    name, e.g. an upload with a user's own canary); it must match the checkpoint all the same. It is
    the real data *without* the audit canaries (see the module docstring).
    ``audit_canaries``: the canaries planted before training (:func:`dpcore.audit.one_run.make_audit_canaries`),
    whose included rows were appended to the training windows; with them the one-run ε lower bound is
    computed and becomes the report's ``empirical_epsilon`` (full result under ``one_run``), without
    them ``empirical_epsilon.value`` is None and the report says why.
    ``reference`` is "model" (train the calibration reference, see :mod:`dpcore.audit.reference`)
    or "none" (loss-threshold attack only).
    """
    if reference not in REFERENCES:
        raise ConfigError(f"reference must be one of {', '.join(REFERENCES)}; got {reference!r}")
    if not 0.5 <= confidence < 1.0:
        raise ConfigError(f"the confidence level must be in [0.5, 1), got {confidence!r}")
    if isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < MIN_EXAMPLES:
        raise ConfigError(f"max examples must be a whole number of at least {MIN_EXAMPLES}, got {max_examples!r}")
    started = time.perf_counter()
    ckpt = load_checkpoint(checkpoint_path, device=device)
    config = config_of(ckpt, checkpoint_path)
    data = data if data is not None else rebuild_data(config)
    check_same_data(ckpt, data, audit_canaries)
    result = ckpt.result
    num_train = int(data.train.shape[0]) + (audit_canaries.num_included if audit_canaries is not None else 0)
    delta = result.delta
    delta_source = "the run's δ"
    if delta is None:
        delta, delta_source = default_delta(num_train), f"{DEFAULT_DELTA_RULE}: the run claims no δ"
    steps = int(result.steps or config.max_steps or MAX_REFERENCE_STEPS)
    ref_steps = reference_steps if reference_steps is not None else max(1, min(steps, MAX_REFERENCE_STEPS))
    claimed = result.epsilon
    claimed = claimed if claimed is not None and math.isfinite(claimed) else None

    one_run, empirical, scores = _one_run_part(ckpt, audit_canaries, delta=delta, confidence=confidence,
                                               claimed=claimed)
    # the extraction game only on the built-in corpus: an upload's own canary could be someone's real text
    exposure, targets = _exposure_part(ckpt, data, seed, game=scores is not None and config.corpus == "builtin")
    if audit_canaries is not None and scores is not None:  # the attack lab's secret file (dpcore.audit.lab)
        save_lab_canaries(out_dir, [ckpt.tokenizer.decode(row[1:].tolist()) for row in audit_canaries.rows],
                          scores, audit_canaries.included, extraction=targets)
    membership = _membership_part(ckpt, config, data, seed=seed, max_examples=max_examples,
                                  reference=reference, reference_steps=ref_steps, device=device)
    audit: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "checkpoint": str(checkpoint_path),
        "seed": seed,
        "mechanism": result.mechanism if result.has("mechanism") else config.mechanism,
        "guarantee": result.guarantee,
        "privacy_unit": result.privacy_unit,
        "claimed_epsilon": claimed,
        "delta": delta,
        "delta_source": delta_source,
        "bug_alarm": empirical.get("alarm"),
        **_summary(membership, exposure, one_run, empirical),
        "one_run": one_run,
        **exposure,
        "membership": membership,
        "caveat": CAVEAT,
        "wall_time_s": time.perf_counter() - started,
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (AUDIT_FILE + ".tmp")
    tmp.write_text(json.dumps(audit, indent=2, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8")
    tmp.replace(out / AUDIT_FILE)
    return audit
