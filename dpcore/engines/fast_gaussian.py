"""Gaussian DP-SGD for the GRU language model at close to non-private cost (ghost clipping).

DP-SGD needs each example's gradient norm, not the per-example gradients themselves. Every
parameter of the model is a linear map used at every time step (the embedding too: a linear map
of one-hot tokens), so one backward pass of the *summed* per-sequence losses gives, for each map,
its inputs ``a_t`` and the gradients ``g_t`` of its outputs; from those follow the per-example norms
and then the clipped sum, one weighted matmul per weight. This is ghost clipping / book-keeping
(Li et al. 2022, Bu et al. 2023) adapted to recurrence.

**The Gram identity.** For example i (index dropped) a weight W used at steps t = 1..T, with
inputs a_t ∈ R^p and output gradients g_t ∈ R^q, has gradient G = Σ_t g_t a_tᵀ, and

    ‖G‖²_F = tr(GᵀG) = Σ_{t,s} tr(a_t g_tᵀ g_s a_sᵀ) = Σ_{t,s} (g_t·g_s)(a_s·a_t)
           = ⟨A Aᵀ, Γ Γᵀ⟩_F          with A = [a_t]_t ∈ R^{T×p}, Γ = [g_t]_t ∈ R^{T×q},

costing T²(p+q) per example instead of T·p·q for G itself. A bias b has gradient Σ_t g_t, whose
squared norm is the sum of all entries of ΓΓᵀ. For the embedding, a_t is the one-hot vector of
token x_t, so a_t·a_s = [x_t = x_s]: the Gram is the token-equality matrix.

**Two routes.** Either way the clipped sum Σ_i c_i G_i costs the T·p·q multiply-adds of a
non-private weight gradient. The Gram route adds T²(p+q) per example (ghost norms) and does the sum
as one matmul Γᵀ(c ⊙ A); the other materialises G_i, a few examples at a time so that memory stays
bounded, and adds memory-bound passes over p·q entries per example (norm, weighted sum). Gram wins
when T²(p+q) is small next to p·q (the word-level head: T = 35, p·q = 128·2000), materialising
for long sequences over narrow maps (the char-level GRU); :func:`_choose_routes` picks per map.

**The GRU.** ``nn.GRU`` computes, per layer and step (gates r, z, n; ⊙ elementwise),

    u_t = W_ih x_t + b_ih                       (all t at once: one Linear on [B, T, D])
    v_t = W_hh h_{t-1} + b_hh,   h_{-1} = 0     (recurrent)
    r, z = σ(u_r + v_r), σ(u_z + v_z),   n = tanh(u_n + r ⊙ v_n),   h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}.

The input projection is an ordinary Linear on [B, T, D]: its g_t = ∂L/∂u_t comes out of the
handwritten recurrence backward (:class:`_GRURecurrence`), which also yields ∂L/∂v_t =
(∂L/∂u_{r,z}, r ⊙ ∂L/∂u_n): the gradients of the recurrent map W_hh, whose inputs are h_{t-1}.

The model's own dropout modules are called in the order of its forward, and the GRU output has
nn.GRU's (time-major) memory layout, so from one RNG state both draw the same dropout masks.

Everything else follows :class:`~dpcore.engines.opacus_gaussian.OpacusGaussianEngine`, the
reference: the same Poisson sampler and rate, the loss (each sequence's mean token loss, so
per-example gradients are B × those of the batch mean, like Opacus's ``loss_reduction="mean"``),
flat L2 clipping over all parameters with factor min(1, C/(‖g‖+1e-6)), N(0, (σC)²) noise on the
clipped sum drawn from the same generator in the same parameter order, division by the expected
batch size. With equal seeds both engines take the same steps up to floating-point error.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from dpcore.engines.base import Engine, EngineSetup, StepStats, split_noise
from dpcore.model import GRULanguageModel, sequence_losses

#: Bytes of per-example gradients materialised at once (a chunk of examples; see :func:`_clip`).
MATERIALIZE_BUDGET = 8 * 2**20
#: Cost, in multiply-adds per entry, of a materialised per-example gradient beyond the matmul
#: that makes it (see :func:`_choose_routes`).
MATERIALIZE_COST = 32.0


class _GRURecurrence(torch.autograd.Function):
    """The recurrent half of one GRU layer, h = GRU(u), whose backward keeps the gate gradients.

    Forward: u [B, T, 3H] (input projections, gate order r, z, n as in nn.GRU), w_hh [3H, H] and
    b_hh [3H] (detached: the engine assembles their gradients) → h [B, T, H].
    Backward: returns ∂L/∂u and leaves in ``tape`` ∂L/∂u and ∂L/∂v_n = r ⊙ ∂L/∂u_n (the r,z
    blocks of ∂L/∂v equal those of ∂L/∂u). With δ_t = ∂L/∂h_t (from the output and from step t+1):

        ∂L/∂u_n = δ (1-z)(1-n²),   ∂L/∂u_z = δ (h_{t-1} - n) z(1-z),
        ∂L/∂u_r = ∂L/∂u_n ⊙ v_n ⊙ r(1-r),   δ_{t-1} = δ ⊙ z + ∂L/∂v_t W_hh  (+ output gradient at t-1).

    The forward computes the factors multiplying δ at each step while its operands are still in
    cache, and the backward overwrites them with the gradients: per step it costs two multiplies
    and the recurrent matmul, and it allocates nothing of size T. The saved buffers are
    consumed, so the backward can run only once.
    """

    @staticmethod
    def forward(ctx, u: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor,
                tape: _LayerTape) -> torch.Tensor:
        B, T, H3 = u.shape
        H = H3 // 3
        hs = u.new_empty(T, B, H)  # time-major like nn.GRU's output, so dropout masks match
        rz = u.new_empty(B, T, 2 * H)  # gates r, z
        k = u.new_empty(B, T, 3, H)  # factors: ∂L/∂u_t = δ_t ⊙ [k_r, k_z, k_n]
        k_nr = u.new_empty(B, T, H)  # and ∂L/∂v_n,t = δ_t ⊙ k_n ⊙ r
        h = u.new_zeros(B, H)
        w_t = w_hh.t()
        for t in range(T):
            v = torch.addmm(b_hh, h, w_t)  # W_hh h_{t-1} + b_hh
            r, z = torch.add(u[:, t, : 2 * H], v[:, : 2 * H], out=rz[:, t]).sigmoid_().chunk(2, 1)
            v_n = v[:, 2 * H :]
            n = torch.addcmul(u[:, t, 2 * H :], r, v_n).tanh_()
            k_r, k_z, k_n = k[:, t].unbind(1)
            one_minus_z = torch.rsub(z, 1.0)
            torch.sub(h, n, out=k_z).mul_(z).mul_(one_minus_z)  # (h_{t-1} - n) z (1-z)
            torch.addcmul(one_minus_z, one_minus_z, n * n, value=-1.0, out=k_n)  # (1-z)(1-n²)
            torch.addcmul(r, r, r, value=-1.0, out=k_r).mul_(v_n).mul_(k_n)  # r(1-r) v_n k_n
            torch.mul(k_n, r, out=k_nr[:, t])
            h = torch.lerp(n, h, z, out=hs[t])  # (1-z) n + z h
        ctx.save_for_backward(k, k_nr, rz, w_hh)
        ctx.tape = tape
        return hs.transpose(0, 1)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_h: torch.Tensor):
        du, dv_n, rz, w_hh = ctx.saved_tensors  # the factors, overwritten step by step below
        B, T, H = dv_n.shape
        z = rz[..., H:]
        w_rz, w_n = w_hh[: 2 * H], w_hh[2 * H :]
        dh = grad_h.new_zeros(B, H)
        for t in range(T - 1, -1, -1):
            dh = dh + grad_h[:, t]
            du[:, t].mul_(dh.unsqueeze(1))
            dv_n[:, t].mul_(dh)
            dh = torch.addmm(dh * z[:, t], du[:, t, :2].flatten(1), w_rz).addmm_(dv_n[:, t], w_n)
        du = du.view(B, T, 3 * H)
        ctx.tape.du, ctx.tape.dv_n = du, dv_n
        return du, None, None, None


_GRU_PARAMS = ("weight_ih", "bias_ih", "weight_hh", "bias_hh")


@dataclass
class _LayerTape:
    """What one GRU layer's backward leaves for the engine."""

    du: torch.Tensor | None = None  # ∂L/∂u_t [B, T, 3H]: output gradients of W_ih
    dv_n: torch.Tensor | None = None  # ∂L/∂v_n,t [B, T, H]: those of W_hh's n rows


class _Grams:
    """Per-example Gram matrices [B, T, T] of activations and gradients, each computed once.

    The same tensors feed several maps: a GRU layer's output h is the input of its own W_hh (shifted
    by one step), of the next layer's W_ih and of the head; ∂L/∂u_{r,z} is the output gradient of
    both W_ih and W_hh in the r and z rows. ``requests`` lists every tensor that will be asked for
    (with repeats), so that each Gram is dropped after its last use (they add up for large B).
    """

    def __init__(self, requests: list[torch.Tensor]) -> None:
        self._left = Counter(id(x) for x in requests)
        self._cache: dict[int, torch.Tensor] = {}

    def of(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, d] → [B, T, T], the per-example inner products x_t·x_s."""
        key = id(x)
        gram = self._cache.pop(key, None)
        if gram is None:
            gram = torch.bmm(x, x.transpose(1, 2))
        self._left[key] -= 1
        if self._left[key] > 0:
            self._cache[key] = gram
        return gram


class _LinearUse:
    """A weight W [q, p] (and optional bias) applied at every step: per-example grad Σ_t g_t a_tᵀ.

    With ``shift`` the map's input at step t is a_{t-1} (a_{-1} = 0): W_hh reads h_{t-1}, while its
    bias still acts at every step. Its norms come by one of two routes (see :func:`_clip`): the Gram
    identity, or per-example gradients materialised a few examples at a time.
    """

    def __init__(self, a: torch.Tensor, g: torch.Tensor, *, bias: bool, shift: bool = False) -> None:
        self.a, self.g, self.shift = a, g, shift
        self.g_sum = g.sum(dim=1) if bias else None  # [B, q]: per-example bias gradients
        self.materialize = False

    @property
    def shape(self) -> tuple[int, int]:
        return self.g.shape[-1], self.a.shape[-1]

    def _aligned(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(a, g) with a_t and g_t meeting at the same index (dropping the zero a_{-1})."""
        return (self.a[:, :-1], self.g[:, 1:]) if self.shift else (self.a, self.g)

    def bias_sq_norms(self) -> torch.Tensor | float:
        return self.g_sum.pow(2).sum(1) if self.g_sum is not None else 0.0

    def gram_sq_norms(self, grams: _Grams) -> torch.Tensor:
        """‖Σ_t g_t a_tᵀ‖² for every example through ⟨AAᵀ, ΓΓᵀ⟩: T²(p+q) per example."""
        ga, gg = grams.of(self.a), grams.of(self.g)
        if self.shift:
            ga, gg = ga[:, :-1, :-1], gg[:, 1:, 1:]
        return (ga * gg).sum(dim=(1, 2))

    def per_example(self, rows: slice) -> torch.Tensor:
        """The per-example weight gradients [b, q, p] of examples ``rows``: T·p·q each."""
        a, g = self._aligned()
        return torch.bmm(g[rows].transpose(1, 2), a[rows])

    def weighted_sum(self, c: torch.Tensor) -> torch.Tensor:
        """Σ_i c_i Σ_t g_{i,t} a_{i,t}ᵀ as one matmul Γᵀ(c ⊙ A) over all examples and steps."""
        ca = self.a.new_zeros(self.a.shape) if self.shift else self.a.new_empty(self.a.shape)
        if self.shift:
            torch.mul(self.a[:, :-1], c.view(-1, 1, 1), out=ca[:, 1:])
        else:
            torch.mul(self.a, c.view(-1, 1, 1), out=ca)
        return self.g.reshape(-1, self.g.shape[-1]).t() @ ca.reshape(-1, ca.shape[-1])

    def bias_sum(self, c: torch.Tensor) -> torch.Tensor | None:
        return c @ self.g_sum if self.g_sum is not None else None


class _EmbeddingUse:
    """The embedding as a linear map of one-hot tokens: per-example grad Σ_t onehot(x_t) e_tᵀ."""

    def __init__(self, tokens: torch.Tensor, e: torch.Tensor, vocab_size: int) -> None:
        self.tokens, self.e, self.vocab_size = tokens, e, vocab_size

    def sq_norms(self, grams: _Grams) -> torch.Tensor:
        same = (self.tokens.unsqueeze(2) == self.tokens.unsqueeze(1)).to(self.e.dtype)
        return (same * grams.of(self.e)).sum(dim=(1, 2))

    def clipped_sum(self, c: torch.Tensor) -> torch.Tensor:
        ce = (self.e * c.view(-1, 1, 1)).flatten(0, 1)
        out = ce.new_zeros(self.vocab_size, ce.shape[-1])
        return out.index_add_(0, self.tokens.flatten(), ce)


def _choose_routes(uses: list[_LinearUse], route: str, budget: int) -> None:
    """Mark the maps whose per-example gradients are materialised rather than Gram-normed.

    Both routes compute the same T·p·q product once (the Gram route as its final weighted matmul,
    the other as a batched matmul per example); beyond it the Gram route costs T²(p+q) per example
    and materialising about ``MATERIALIZE_COST``·p·q (writing, squaring and weighting the [q, p]
    gradient, memory-bound). Short sequences and wide maps favour materialising.
    """
    for use in uses:
        q, p = use.shape
        T = use.a.shape[1]
        fits = q * p * use.a.element_size() <= budget
        cheaper = MATERIALIZE_COST * p * q < T * T * (p + q)
        use.materialize = route == "materialize" or (route == "auto" and fits and cheaper)


def _clip(uses: list[_LinearUse], emb: _EmbeddingUse, clip: float,
          budget: int) -> tuple[torch.Tensor, torch.Tensor, dict[_LinearUse, torch.Tensor]]:
    """Per-example norms and clipping factors, and the clipped weight sum of every map.

    First the norms that need no per-example gradient (Gram-routed weights, biases, embedding);
    then, a chunk of examples at a time (at most ``budget`` bytes of per-example gradients), the
    materialised gradients: their norms complete the chunk's norms, hence its clipping factors,
    and they are added into the sums at once and dropped. The Gram-routed weights come last, one
    weighted matmul each.
    """
    B = emb.e.shape[0]
    gram_uses = [u for u in uses if not u.materialize]
    mat_uses = [u for u in uses if u.materialize]
    grams = _Grams([emb.e] + [t for u in gram_uses for t in (u.a, u.g)])
    sq = emb.sq_norms(grams)
    for use in uses:
        sq = sq + use.bias_sq_norms()
    for use in gram_uses:
        sq = sq + use.gram_sq_norms(grams)
    del grams
    sums = {u: u.a.new_zeros(u.shape) for u in mat_uses}
    if mat_uses:
        per_bytes = sum(q * p for q, p in (u.shape for u in mat_uses)) * emb.e.element_size()
        chunk = max(1, budget // per_bytes)
        for start in range(0, B, chunk):
            rows = slice(start, start + chunk)
            grads = [u.per_example(rows).flatten(1) for u in mat_uses]
            for g in grads:
                sq[rows] += g.pow(2).sum(1)
            c = (clip / (sq[rows].clamp(min=0).sqrt() + 1e-6)).clamp(max=1.0)
            for use, g in zip(mat_uses, grads, strict=True):
                sums[use].view(-1).addmv_(g.t(), c)
    norms = sq.clamp(min=0).sqrt()
    factors = (clip / (norms + 1e-6)).clamp(max=1.0)
    for use in gram_uses:
        sums[use] = use.weighted_sum(factors)
    return norms, factors, sums


@dataclass
class ClippedSum:
    """One batch's clipped, un-noised gradient sum and what produced it."""

    grads: dict[str, torch.Tensor]  # parameter name (nn.GRU names) → Σ_i clip_i · grad_i
    norms: torch.Tensor  # [B] per-example flat L2 gradient norms, before clipping
    loss: torch.Tensor | None  # mean per-sequence loss (None on an empty batch)


def opacus_param_order(model: GRULanguageModel) -> list[str]:
    """Parameter names in the order Opacus's DPGRU model lists them (ih weight, ih bias, hh ...).

    Noise is drawn in this order so that, with equal seeds, this engine draws exactly the noise the
    Opacus engine draws for each parameter.
    """
    names = ["embedding.weight"]
    for layer in range(model.cfg.num_layers):
        names += [f"gru.{kind}_{mat}_l{layer}" for mat in ("ih", "hh") for kind in ("weight", "bias")]
    return names + ["head.weight", "head.bias"]


@torch.enable_grad()
def clipped_gradient_sum(model: GRULanguageModel, batch: torch.Tensor, pad_id: int, clip: float,
                         route: str = "auto") -> ClippedSum:
    """Σ_i min(1, C/(‖∇ℓ_i‖+1e-6)) ∇ℓ_i over the examples of ``batch`` [B, T+1], one backward pass.

    ℓ_i is sequence i's mean token loss from a zero hidden state; ‖·‖ is the flat L2 norm over
    all parameters jointly. Dropout follows ``model.training``, exactly as ``model(tokens)``.
    ``route`` ("auto", "gram" or "materialize") picks how the weights' norms are computed; the
    result is the same up to floating-point error.
    """
    if len(batch) == 0:
        zeros = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
        return ClippedSum(zeros, torch.zeros(0, device=batch.device), None)
    tokens, targets = batch[:, :-1], batch[:, 1:]
    gru = model.gru
    x0 = F.embedding(tokens, model.embedding.weight.detach()).requires_grad_()
    x = model.drop_in(x0)
    layer_inputs, layer_outputs, tapes = [x.detach()], [], []
    for layer in range(gru.num_layers):
        w_ih, b_ih, w_hh, b_hh = (getattr(gru, f"{name}_l{layer}").detach() for name in _GRU_PARAMS)
        tape = _LayerTape()
        x = _GRURecurrence.apply(F.linear(x, w_ih, b_ih), w_hh, b_hh, tape)
        layer_outputs.append(x.detach())
        layer_inputs.append(layer_outputs[-1])  # no dropout between layers (as nn.GRU(dropout=0))
        tapes.append(tape)
    y = model.drop_out(x)
    logits = F.linear(y, model.head.weight.detach(), model.head.bias.detach())
    captured: list[torch.Tensor] = []
    logits.register_hook(captured.append)  # ∂L/∂logits, without keeping the logits alive:
    losses = sequence_losses(logits, targets, pad_id)  # [B]: ℓ_i
    del logits  # the largest activation; the loss's backward needs only its softmax
    (d_x0,) = torch.autograd.grad(losses.sum(), [x0])
    d_logits = captured[0]

    # Every (weight, bias) pair as row blocks, each a linear map used at every step. The r,z rows
    # of W_ih and W_hh share their output gradients ∂L/∂u_{r,z}; W_hh's n rows see r ⊙ ∂L/∂u_n.
    y = layer_outputs[-1] if y is x else y.detach()  # the same object when dropout is off
    groups = [("head.weight", "head.bias", [_LinearUse(y, d_logits, bias=True)])]
    for layer, tape in enumerate(tapes):
        x_in, h = layer_inputs[layer], layer_outputs[layer]
        H = h.shape[-1]
        du_rz, du_n, dv_n = tape.du[..., : 2 * H], tape.du[..., 2 * H :], tape.dv_n
        groups.append((f"gru.weight_ih_l{layer}", f"gru.bias_ih_l{layer}",
                       [_LinearUse(x_in, du_rz, bias=True), _LinearUse(x_in, du_n, bias=True)]))
        hh = [_LinearUse(h, du_rz, bias=True, shift=True), _LinearUse(h, dv_n, bias=True, shift=True)]
        groups.append((f"gru.weight_hh_l{layer}", f"gru.bias_hh_l{layer}", hh))
    blocks = [use for *_, group in groups for use in group]
    _choose_routes(blocks, route, MATERIALIZE_BUDGET)
    emb = _EmbeddingUse(tokens, d_x0, model.embedding.num_embeddings)
    norms, factors, sums = _clip(blocks, emb, clip, MATERIALIZE_BUDGET)

    grads = {"embedding.weight": emb.clipped_sum(factors)}
    for weight, bias, group in groups:
        grads[weight] = torch.cat([sums[use] for use in group])
        grads[bias] = torch.cat([use.bias_sum(factors) for use in group])
    return ClippedSum(grads, norms.detach(), losses.detach().mean())


class FastGaussianEngine(Engine):
    """Gaussian DP-SGD with ghost clipping on the plain model (nn.GRU parameter names)."""

    guarantee = "dp"
    #: How weight norms are computed: "auto" (by cost), "gram" or "materialize" (for tests).
    route: str = "auto"

    def __init__(self, setup: EngineSetup) -> None:
        super().__init__(setup)
        if setup.noise_multiplier is None or setup.sample_rate is None:
            raise ValueError("DP engines need a noise multiplier and a sample rate")
        self.loader = self.poisson_loader()  # sets expected_batch_size
        self.grad_noise_multiplier, self.count_noise = split_noise(setup.noise_multiplier, self.expected_batch_size)
        self.noise_std = self.grad_noise_multiplier * setup.clip
        self.optimizer = self.make_optimizer(self.model.parameters())
        self._noise_order = opacus_param_order(self.model)

    @property
    def module(self) -> nn.Module:
        return self.model

    def clipped_sum(self, batch: torch.Tensor) -> ClippedSum:
        """The clipped per-example gradient sum of ``batch`` (before noise), in training mode."""
        self.model.train()
        return clipped_gradient_sum(self.model, batch.to(self.device), self.setup.pad_id,
                                    self.setup.clip, route=self.route)

    def step(self, batch: torch.Tensor) -> StepStats:
        result = self.clipped_sum(batch)
        params = dict(self.model.named_parameters())
        for name in self._noise_order:  # an empty batch still gets noise and a step
            p, grad = params[name], result.grads[name]
            if self.noise_std > 0:  # as Opacus: no draw at σ = 0
                grad = grad + torch.normal(mean=0, std=self.noise_std, size=grad.shape,
                                           device=grad.device, generator=self._noise_gen, dtype=grad.dtype)
            p.grad = (grad / self.expected_batch_size).view_as(p)
        self.optimizer.step()
        b = len(batch)
        clipped = int((result.norms > self.setup.clip).sum().item()) if b else 0
        noisy = self.noisy_clip_fraction(clipped)  # drawn on every step, empty batches included
        if b == 0:
            return StepStats(loss=None, batch_size=0, noisy_frac_clipped=noisy)
        return StepStats(
            loss=float(result.loss.item()),
            batch_size=b,
            frac_clipped=clipped / b,
            median_grad_norm=float(result.norms.median().item()),
            noisy_frac_clipped=noisy,
        )
