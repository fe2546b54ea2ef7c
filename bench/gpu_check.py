"""A short GPU check (under 2 minutes) for a session with a lent GPU: run it as it is.

    python bench/gpu_check.py            # cuda; exits 1 if there is none
    python bench/gpu_check.py --device cpu --no-bench   # the same checks on CPU (a dry run)

1. Equivalence on the device: the fast engine's clipped per-example gradient sum (noise off) equals
   Opacus's (p.summed_grad after clip_and_accumulate) for 1 and 2 layers, both norm routes, batch
   sizes 0, 1 and 24, with a clip norm that clips some examples and not others; then one whole
   step with noise on, same seeds: the same noisy gradients.
2. ``bench/bench_engines.py --device cuda --quick``: the s/step, tokens/s and peak-memory table.

TF32 is switched off for the equivalence checks so that float32 matmuls are float32.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dpcore.training.engines.base import EngineSetup  # noqa: E402
from dpcore.training.engines.fast_gaussian import FastGaussianEngine  # noqa: E402
from dpcore.training.engines.opacus_gaussian import OpacusGaussianEngine  # noqa: E402
from dpcore.training.model import ModelConfig  # noqa: E402

# (vocab, embed, hidden, layers, seq_len)
SIZES = [(50, 8, 16, 2, 12), (2000, 64, 128, 1, 35), (2000, 64, 128, 2, 35)]


def _setup(size: tuple, device: torch.device, clip: float, noise: float = 0.0) -> EngineSetup:
    vocab, embed, hidden, layers, seq = size
    gen = torch.Generator().manual_seed(sum(size))
    train = torch.randint(1, vocab, (240, seq + 1), generator=gen)
    train[::4, seq // 2 :] = 0  # padded tails
    return EngineSetup(train=train, model_config=ModelConfig(vocab, embed, hidden, layers), pad_id=0,
                       batch_size=24, lr=0.05, optimizer="sgd", clip=clip, noise_multiplier=noise,
                       sample_rate=1 / math.ceil(240 / 24), seed=1, device=device)


def _opacus_sum(engine: OpacusGaussianEngine, batch: torch.Tensor) -> dict[str, torch.Tensor]:
    engine.gsm.train()
    engine.optimizer.zero_grad(set_to_none=True)
    loss = engine.batch_loss(engine.gsm, batch)
    (loss.nan_to_num(0.0) * 0.0 if len(batch) == 0 else loss).backward()
    engine.optimizer.clip_and_accumulate()
    return {n.removeprefix("_module."): p.summed_grad for n, p in engine.gsm.named_parameters()}


def _max_rel_err(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> float:
    worst = 0.0
    for name, ref in expected.items():
        scale = float(ref.abs().max()) + 1e-8
        worst = max(worst, float((got[name] - ref).abs().max()) / scale)
    return worst


def check_equivalence(device: torch.device, tol: float = 2e-4) -> bool:
    ok = True
    for size in SIZES:
        train = _setup(size, device, 1.0).train
        for b in (0, 1, 24):
            batch = train[:b]
            probe = FastGaussianEngine(_setup(size, device, 1.0))
            norms = probe.clipped_sum(batch).norms
            clip = float(norms.median()) if b > 1 else 1.0
            for route in ("gram", "materialize"):
                fast = FastGaussianEngine(_setup(size, device, clip))
                fast.route = route
                got = fast.clipped_sum(batch)
                expected = _opacus_sum(OpacusGaussianEngine(_setup(size, device, clip)), batch)
                err = _max_rel_err(got.grads, expected)
                clipped = int((got.norms > clip).sum()) if b else 0
                good = err < tol
                ok &= good
                print(f"  size {size} B={b:2d} route={route:11s} clipped {clipped:2d}/{b:2d} "
                      f"max rel err {err:.1e} {'ok' if good else 'FAIL'}", flush=True)
    # One whole step with noise: equal seeds give the same noise and the same update.
    setup = _setup(SIZES[-1], device, 0.5, noise=1.0)
    fast, ref = FastGaussianEngine(setup), OpacusGaussianEngine(setup)
    batch = next(fast.batches())
    assert torch.equal(batch, next(ref.batches()))
    fast.step(batch)
    ref.step(batch)
    ref_grads = {n.removeprefix("_module."): p.grad for n, p in ref.module.named_parameters()}
    err = _max_rel_err({n: p.grad for n, p in fast.module.named_parameters()}, ref_grads)
    good = err < tol
    ok &= good
    print(f"  noisy step, B={len(batch)}: max rel err of the noisy gradients {err:.1e} "
          f"{'ok' if good else 'FAIL'}", flush=True)
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--no-bench", action="store_true", help="only the equivalence checks")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: nothing to check (use --device cpu for a dry run)")
        return 1
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    if device.type == "cuda":
        print(f"device: {torch.cuda.get_device_name(device)}, torch {torch.__version__}")
    start = time.time()
    print("equivalence, fast engine vs Opacus (noise off, then one noisy step):", flush=True)
    ok = check_equivalence(device)
    print(f"equivalence {'passed' if ok else 'FAILED'} in {time.time() - start:.0f} s", flush=True)
    if not args.no_bench:
        sys.path.insert(0, str(ROOT / "bench"))
        import bench_engines

        bench_engines.main(["--device", device.type, "--quick"])
    print(f"total {time.time() - start:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
