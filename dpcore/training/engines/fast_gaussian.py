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

costing T²(p+q) per example instead of T·p·q for G itself. A bias b has gradient Σ_t g_t. For the
embedding, a_t is the one-hot vector of token x_t, so a_t·a_s = [x_t = x_s]: the Gram is the
token-equality matrix.

**Two routes.** Either way the clipped sum Σ_i c_i G_i costs the T·p·q multiply-adds of a
non-private weight gradient. The Gram route adds T²(p+q) per example (ghost norms) and does the
sum as one matmul Γᵀ(c ⊙ A); the other materialises G_i, a chunk of examples at a time, and adds
memory-bound passes over p·q entries per example. Gram wins when T²(p+q) is small next to p·q
(the word-level head: T = 35, p·q = 128·2000), materialising for long sequences over narrow maps
(the char-level GRU at T = 64); :func:`_choose_routes` picks per map, counting a Gram that two
maps share once. The embedding likewise: its materialised gradient is a [V, E] table filled by
one scatter of e_t into row x_t — cheap for a character vocabulary.

**Units.** Example-level, a unit is a row. User-level (``users=``), a unit is a user and its
gradient the mean of its rows' gradients. Materialised, a user's gradient is summed over its rows
inside the batched matmuls (rows come grouped by user, so row j of every user with m rows is one
strided slice); Gram-routed, each user's rows are laid end to end (:meth:`_Units.by_unit`) so that
the Gram covers the cross terms between its sequences, and the clipped sum is the row-wise matmul
with each row weighted by its user's c_u / n_u. User-level clipping costs one backward pass too.

**The GRU.** ``nn.GRU`` computes, per layer and step (gates r, z, n; ⊙ elementwise),

    u_t = W_ih x_t + b_ih                       (all t at once: one matmul on [B·T, D])
    v_t = W_hh h_{t-1} + b_hh,   h_{-1} = 0     (recurrent)
    r, z = σ(u_r + v_r), σ(u_z + v_z),   n = tanh(u_n + r ⊙ v_n),   h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}.

:class:`_GRULayer` runs it by hand so that its backward keeps the gradients of the two linear maps:
∂L/∂u_t (the output gradients of W_ih, whose inputs are x_t) and ∂L/∂v_t = (∂L/∂u_{r,z}, r ⊙ ∂L/∂u_n)
(those of W_hh, whose inputs are h_{t-1}). They share their r, z blocks, so the layer keeps one
buffer [B, T, 4, H] of gate gradients in the order (n_u, r, z, n_v): ∂L/∂u is its first three slots
(rows of W_ih in the order n, r, z, put back in nn.GRU's order at the end), ∂L/∂v its last three.

**Speed.** At the app's size (characters, hidden 128) a step costs about what a non-private nn.GRU
step costs (``bench/bench_engines.py``): the layer's buffers are time-major, so that each step
touches contiguous memory, and kept from one step to the next (:class:`Workspace`); tanh goes
through σ; a Gram that two maps share is computed once; per-user sums come out of the matmuls.

The model's own dropout modules are called in the order of its forward, on tensors with nn.GRU's
memory layout, so from one RNG state both draw the same dropout masks.

Everything else follows :class:`~dpcore.training.engines.opacus_gaussian.OpacusGaussianEngine`, the
reference: the same Poisson sampler and rate, the loss (each sequence's mean token loss, so
per-example gradients are B × those of the batch mean, like Opacus's ``loss_reduction="mean"``),
flat L2 clipping over all parameters with factor min(1, C/(‖g‖+1e-6)), N(0, (σC)²) noise on the
clipped sum drawn from the same generator in the same parameter order, division by the expected
batch size. With equal seeds both engines take the same steps up to floating-point error. With
secure noise both draw from the OS's CSPRNG instead (:class:`~dpcore.privacy.noise.SecureNoise`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from dpcore.training.engines.base import Engine, EngineSetup, StepStats, split_noise
from dpcore.training.model import GRULanguageModel, sequence_losses

#: The most bytes one unit's materialised gradient of one map may take (else that map takes the Gram route).
MATERIALIZE_BUDGET = 8 * 2**20
#: Bytes of per-unit gradients materialised at once (see :func:`_materialized_sums`). Measured on
#: the char model: chunks of an L2 cache (1 MB) are slower than 8 MB ones, the per-call overhead of
#: many small batched matmuls outweighing the cache misses of the passes that follow them.
CHUNK_BYTES = 8 * 2**20
#: Cost, in multiply-adds per entry, of a materialised per-example gradient beyond the matmul
#: that makes it (see :func:`_choose_routes`).
MATERIALIZE_COST = 32.0


class Workspace:
    """Large buffers kept from one step to the next, each a view into storage grown as needed.

    The GRU layers' buffers are tens of MB a step; freshly allocated, such buffers come straight from
    the operating system, and the first touch of each page (a fault, the kernel zeroing it) costs
    about as much as the arithmetic done in them. Reusing them avoids that. A buffer is valid until
    the next call that asks for the same name: nothing :func:`clipped_gradient_sum` returns is one.
    """

    def __init__(self) -> None:
        self._storage: dict[str, torch.Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """An uninitialised tensor of ``shape`` (``like``'s dtype and device)."""
        n = math.prod(shape)
        buf = self._storage.get(name)
        if buf is None or buf.numel() < n or buf.dtype != like.dtype or buf.device != like.device:
            buf = like.new_empty(n + n // 8)  # room for the next Poisson batch to be a little larger
            self._storage[name] = buf
        return buf[:n].view(shape)


class _GRULayer(torch.autograd.Function):
    """One GRU layer x [B, T, D] → h [B, T, H] whose backward leaves the gate gradients in ``tape``.

    Forward: the input projections u for all steps in one matmul, then the recurrence. n = tanh(y)
    is computed as 2σ(2y) − 1 (σ is several times cheaper than tanh on CPU; the doubling of u_n is
    folded into W_ih's n rows). With δ_t = ∂L/∂h_t (from the output and from step t+1), the backward
    needs per step

        ∂L/∂u_n = δ (1-z)(1-n²),   ∂L/∂u_z = δ (h_{t-1} - n) z(1-z),   ∂L/∂u_r = ∂L/∂u_n ⊙ v_n ⊙ r(1-r),
        ∂L/∂v_n = r ⊙ ∂L/∂u_n,     δ_{t-1} = δ ⊙ z + ∂L/∂v_t W_hh  (+ output gradient at t-1).

    The forward computes the factors multiplying δ while its operands are in cache, into the
    buffer ``k`` (slots n_u, r, z, n_v); the backward multiplies each step's slots by δ in place (one
    op), runs one matmul for δ_{t-1}, and sums the slots over time (the per-example bias gradients)
    while they are still in cache. The saved buffer is consumed: the backward can run only once.

    Every buffer is time-major ([T, B, ...], like nn.GRU's), so that each step reads and writes
    contiguous memory; the output is the [B, T, H] view of the time-major h, exactly nn.GRU's
    (batch_first) output layout, so dropout on it draws the same masks.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, w_ih: torch.Tensor, b_ih: torch.Tensor, w_hh: torch.Tensor,
                b_hh: torch.Tensor, tape: _LayerTape, work: Workspace) -> torch.Tensor:
        B, T, D = x.shape
        H = w_hh.shape[1]
        x_tm = x.detach().transpose(0, 1)  # detached: kept (in ``tape``) beyond the graph
        if not x_tm.is_contiguous():
            x_tm = torch.empty_like(x_tm, memory_format=torch.contiguous_format).copy_(x_tm)
        # u without its bias, u_n doubled (σ(2(u_n + r ⊙ v_n)) = (1 + n) / 2): b_ir, b_iz join the
        # recurrent matmul's bias, 2 b_in is added at each step (cheaper than a pass over u).
        w_u = torch.cat([w_ih[: 2 * H], 2.0 * w_ih[2 * H :]])
        u = torch.mm(x_tm.view(T * B, D), w_u.t(), out=work.get("u", (T * B, 3 * H), x)).view(T, B, 3 * H)
        b_v = b_hh + torch.cat([b_ih[: 2 * H], b_ih.new_zeros(H)])
        b_n = 2.0 * b_ih[2 * H :]
        out = work.get(f"h{tape.layer}", (T, B, H), x)
        rz = work.get(f"rz{tape.layer}", (T, B, 2 * H), x)  # gates r, z
        k = work.get(f"k{tape.layer}", (T, B, 4, H), x)
        h = x.new_zeros(B, H)
        w_t = w_hh.t()
        for t in range(T):
            v = torch.addmm(b_v, h, w_t)  # W_hh h_{t-1} + b_hh (+ b_ir, b_iz in the r, z rows)
            r, z = torch.add(u[t, :, : 2 * H], v[:, : 2 * H], out=rz[t]).sigmoid_().chunk(2, 1)
            v_n = v[:, 2 * H :]
            s = torch.addcmul(u[t, :, 2 * H :], r, v_n, value=2.0).add_(b_n).sigmoid_()  # n = 2s - 1
            k_nu, k_r, k_z, k_nv = k[t].unbind(1)
            one_minus_z = torch.rsub(z, 1.0)
            d = torch.add(h, s, alpha=-2.0).add_(1.0)  # h_{t-1} - n
            torch.mul(d, z, out=k_z).mul_(one_minus_z)  # (h_{t-1} - n) z (1-z)
            torch.addcmul(s, s, s, value=-1.0, out=k_nu).mul_(one_minus_z).mul_(4.0)  # (1-z)(1-n²)
            torch.mul(k_nu, r, out=k_nv)
            torch.addcmul(r, r, r, value=-1.0, out=k_r).mul_(v_n).mul_(k_nu)  # r(1-r) v_n (1-z)(1-n²)
            h = torch.addcmul(h, one_minus_z, d, value=-1.0, out=out[t])  # (1-z) n + z h_{t-1}
        ctx.save_for_backward(k, rz, w_ih, w_hh)
        ctx.tape = tape
        tape.x, tape.h = x_tm.transpose(0, 1), out.transpose(0, 1)
        return out.transpose(0, 1)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        k, rz, w_ih, w_hh = ctx.saved_tensors  # the factors, overwritten step by step below
        T, B, _, H = k.shape
        z = rz[..., H:]
        dh = grad_out.new_zeros(B, H)
        k_sum = grad_out.new_zeros(B, 4, H)
        for t in range(T - 1, -1, -1):
            dh.add_(grad_out[:, t])
            k_t = k[t]
            k_t.mul_(dh.unsqueeze(1))
            k_sum.add_(k_t)
            dh.mul_(z[t]).addmm_(k_t[:, 1:].flatten(1), w_hh)  # δ z + ∂L/∂v_t W_hh
        ctx.tape.k, ctx.tape.k_sum = k.transpose(0, 1), k_sum
        grad_x = None
        if ctx.needs_input_grad[0]:
            w_nrz = torch.cat([w_ih[2 * H :], w_ih[: 2 * H]])  # W_ih's rows in k's order n, r, z
            grad_x = (k[:, :, :3].reshape(T * B, 3 * H) @ w_nrz).view(T, B, -1).transpose(0, 1)
        return grad_x, None, None, None, None, None, None


_GRU_PARAMS = ("weight_ih", "bias_ih", "weight_hh", "bias_hh")


@dataclass
class _LayerTape:
    """What one GRU layer's backward leaves for the engine."""

    layer: int
    x: torch.Tensor | None = None  # [B, T, D] the layer's input (a view of time-major memory)
    h: torch.Tensor | None = None  # [B, T, H] its output (the same)
    k: torch.Tensor | None = None  # [B, T, 4, H] (the same): ∂L/∂u_n, ∂L/∂u_r = ∂L/∂v_r, ∂L/∂u_z = ∂L/∂v_z, ∂L/∂v_n
    k_sum: torch.Tensor | None = None  # [B, 4, H]: the same summed over time


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


def _sq_rows(x: torch.Tensor) -> torch.Tensor:
    """[n, m] → [n] squared row norms (one reduction pass, no temporary of x's size)."""
    return torch.linalg.vector_norm(x, dim=1).square()


@dataclass(frozen=True)
class _Chunk:
    """Units u0..u1-1, whole, and their rows r0..r1-1 (in grouped order), as runs of equal-size units.

    A run (ua, ub, m, start) holds units ua..ub-1 (chunk-relative) of m rows each, from row ``start``:
    row j of each of them is ``start + j``, ``start + j + m``, ... (a strided slice).
    """

    u0: int
    u1: int
    r0: int
    r1: int
    runs: tuple[tuple[int, int, int, int], ...]


class _Units:
    """The clipping units of a batch of B rows: the rows themselves, or (``groups``) users.

    A unit's gradient is the sum of its rows' gradients times ``scale`` (1/n_u: the user's mean);
    per-unit quantities here are those sums, and :meth:`sq_scale` / :meth:`unit_weights` apply the
    scale.
    """

    def __init__(self, num_rows: int, groups: torch.Tensor | None) -> None:
        self.groups = groups
        if groups is None:
            self.count, self.most, self.scale, self.order = num_rows, 1, None, None
            self._counts = [1] * num_rows
            return
        counts = torch.bincount(groups)
        self.count, self.most = len(counts), int(counts.max())
        self.scale = 1.0 / counts.clamp(min=1).to(torch.get_default_dtype())
        grouped = bool((groups[1:] >= groups[:-1]).all())
        self.order = None if grouped else torch.argsort(groups, stable=True)
        self._counts = counts.tolist()

    def chunks(self, units_per_chunk: int) -> Iterator[_Chunk]:
        """The units, ``units_per_chunk`` at a time."""
        row = 0
        for u0 in range(0, self.count, units_per_chunk):
            u1 = min(self.count, u0 + units_per_chunk)
            if self.groups is None:  # one row each
                yield _Chunk(u0, u1, u0, u1, ((0, u1 - u0, 1, u0),))
                continue
            runs, r0, ua = [], row, u0
            while ua < u1:
                m, ub = self._counts[ua], ua + 1
                while ub < u1 and self._counts[ub] == m:
                    ub += 1
                runs.append((ua - u0, ub - u0, m, row))  # m = 0: users without rows (zero gradient)
                row += (ub - ua) * m
                ua = ub
            yield _Chunk(u0, u1, r0, row, tuple(runs))

    def rows(self, start: int, stop: int, step: int = 1) -> slice | torch.Tensor:
        """Rows ``start:stop:step`` of the grouped order, as an index into the batch."""
        return slice(start, stop, step) if self.order is None else self.order[start:stop:step]

    def row_units(self, chunk: _Chunk) -> torch.Tensor:
        """The chunk-relative unit of each of the chunk's rows."""
        if self.groups is None:
            return torch.arange(chunk.u1 - chunk.u0)
        return self.groups[self.rows(chunk.r0, chunk.r1)] - chunk.u0

    def per_unit(self, x: torch.Tensor) -> torch.Tensor:
        """[B, n] per-row values → [U, n] per-unit sums."""
        if self.groups is None:
            return x
        return x.new_zeros(self.count, x.shape[1]).index_add_(0, self.groups, x)

    def unit_weights(self, factors: torch.Tensor, u0: int = 0, u1: int | None = None) -> torch.Tensor:
        """Clipping factors c_u → the weights of the per-unit SUMS in the clipped sum (c_u / n_u)."""
        return factors if self.scale is None else factors * self.scale[u0:u1].to(factors.dtype)

    def row_weights(self, factors: torch.Tensor) -> torch.Tensor:
        """Clipping factors c_u → each row's weight in the clipped sum (c_u / n_u of its unit)."""
        return factors if self.groups is None else self.unit_weights(factors)[self.groups]

    def sq_scale(self, sq: torch.Tensor, u0: int = 0, u1: int | None = None) -> torch.Tensor:
        """Squared norms of per-unit sums → those of per-unit gradients (× 1/n_u²)."""
        return sq if self.scale is None else sq * self.scale[u0:u1].to(sq.dtype) ** 2

    def by_unit(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, d] → [U, K·T, d]: each unit's rows end to end, zero rows where it has fewer than K.

        A zero row adds nothing to a Gram, so a user's block behaves like one long "example"
        whose gradient is the sum of its rows' gradients.
        """
        if self.groups is None:
            return x
        counts = torch.tensor(self._counts, device=x.device)
        order = self.order if self.order is not None else torch.arange(len(self.groups), device=x.device)
        starts = torch.cumsum(counts, 0) - counts
        slots = torch.empty_like(self.groups)
        slots[order] = torch.arange(len(self.groups), device=x.device) - starts[self.groups[order]]
        out = x.new_zeros((self.count, self.most) + tuple(x.shape[1:]))
        out[self.groups, slots] = x
        return out.flatten(1, 2)


class _LinearUse:
    """A weight W [q, p] (and optional bias) applied at every step: per-example grad Σ_t g_t a_tᵀ.

    With ``shift`` the map's input at step t is a_{t-1} (a_{-1} = 0): W_hh reads h_{t-1}, while its
    bias still acts at every step. ``g_sum`` [B, q] holds the per-example bias gradients Σ_t g_t (None:
    no bias); ``parts``, column blocks of g whose Grams add up to g's, lets maps that share a block
    share its Gram. a and g are [B, T, ·], possibly views of time-major memory (the GRU's buffers).
    Its norms come by one of two routes (see :func:`_clip`).
    """

    def __init__(self, a: torch.Tensor, g: torch.Tensor, *, g_sum: torch.Tensor | None = None,
                 shift: bool = False, parts: tuple[torch.Tensor, ...] | None = None) -> None:
        self.a, self.g, self.shift, self.g_sum = a, g, shift, g_sum
        self.parts = parts if parts is not None else (g,)
        self.time_major = a.stride(0) < a.stride(1)
        self.materialize = False

    @property
    def shape(self) -> tuple[int, int]:
        return self.g.shape[-1], self.a.shape[-1]

    def gram_sq_norms(self, grams: _Grams) -> torch.Tensor:
        """‖Σ_t g_t a_tᵀ‖² for every example through ⟨AAᵀ, ΓΓᵀ⟩: T²(p+q) per example."""
        ga = grams.of(self.a)
        gg = grams.of(self.parts[0])
        for part in self.parts[1:]:
            gg = gg + grams.of(part)
        if self.shift:
            ga, gg = ga[:, :-1, :-1], gg[:, 1:, 1:]
        return (ga * gg).sum(dim=(1, 2))

    def unit_gram_sq_norms(self, units: _Units) -> torch.Tensor:
        """The same for units made of several rows (unscaled sums): Grams over each unit's rows end to end."""
        a = self.a
        if self.shift:  # shifted within each sequence first: a_{t-1} never comes from another row
            a = torch.cat([a.new_zeros(a[:, :1].shape), a[:, :-1]], dim=1)
        a, g = units.by_unit(a), units.by_unit(self.g)
        return (torch.bmm(a, a.transpose(1, 2)) * torch.bmm(g, g.transpose(1, 2))).sum(dim=(1, 2))

    def unit_grads(self, units: _Units, chunk: _Chunk) -> torch.Tensor:
        """The weight gradients [u, q·p] of the chunk's units (sums over their rows): T·p·q per row.

        Row j of every unit of a run is one strided slice, so a unit's sum builds up inside the
        batched matmuls (one per row slot), without per-row gradients.
        """
        q, p = self.shape
        out = self.a.new_empty(chunk.u1 - chunk.u0, q, p)
        for ua, ub, m, start in chunk.runs:
            if m == 0:
                out[ua:ub] = 0.0
            for j in range(m):
                rows = units.rows(start + j, start + (ub - ua) * m, m)
                a, g = self.a[rows], self.g[rows]
                if self.shift:
                    a, g = a[:, :-1], g[:, 1:]
                if j == 0:
                    torch.bmm(g.transpose(1, 2), a, out=out[ua:ub])
                else:
                    out[ua:ub].baddbmm_(g.transpose(1, 2), a)
        return out.flatten(1)

    def _steps(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, d] → [B·T, d], the rows in the memory order of ``a`` (a view when x shares it)."""
        return (x.transpose(0, 1) if self.time_major else x).reshape(-1, x.shape[-1])

    def _new(self, d: int) -> torch.Tensor:
        """An uninitialised [B, T, d] tensor laid out like ``a``."""
        B, T, _ = self.a.shape
        if self.time_major:
            return self.a.new_empty(T, B, d).transpose(0, 1)
        return self.a.new_empty(B, T, d)

    def weighted_sum(self, w: torch.Tensor) -> torch.Tensor:
        """Σ_i w_i Σ_t g_{i,t} a_{i,t}ᵀ as one matmul over all rows and steps (the narrower side weighted)."""
        q, p = self.shape
        a, g, w = self.a, self.g, w.view(-1, 1, 1)
        if p <= q:  # weight the inputs; shifted: ca_t = w a_{t-1}, ca_0 = 0
            a = self._new(p)
            if self.shift:
                torch.mul(self.a[:, :-1], w, out=a[:, 1:])
                a[:, 0] = 0.0
            else:
                torch.mul(self.a, w, out=a)
        else:  # weight the output gradients; shifted: cg_t = w g_{t+1}, cg_{T-1} = 0
            g = self._new(q)
            if self.shift:
                torch.mul(self.g[:, 1:], w, out=g[:, :-1])
                g[:, -1] = 0.0
            else:
                torch.mul(self.g, w, out=g)
        return self._steps(g).t() @ self._steps(a)


class _EmbeddingUse:
    """The embedding as a linear map of one-hot tokens: per-example grad Σ_t onehot(x_t) e_tᵀ."""

    def __init__(self, tokens: torch.Tensor, e: torch.Tensor, vocab_size: int) -> None:
        self.tokens, self.e, self.vocab_size = tokens, e, vocab_size
        self.materialize = False

    def sq_norms(self, units: _Units) -> torch.Tensor:
        """Each unit's squared gradient norm: materialised [V, E] tables, or the token-equality Gram."""
        if self.materialize:
            V, E = self.vocab_size, self.e.shape[-1]
            sq = self.e.new_empty(units.count)
            for chunk in units.chunks(max(1, CHUNK_BYTES // (V * E * self.e.element_size()))):
                rows = units.rows(chunk.r0, chunk.r1)
                index = (units.row_units(chunk).to(self.tokens.device).view(-1, 1) * V + self.tokens[rows])
                table = self.e.new_zeros((chunk.u1 - chunk.u0) * V, E)
                table.index_add_(0, index.flatten(), self.e[rows].flatten(0, 1))
                table = table.view(chunk.u1 - chunk.u0, V * E)
                sq[chunk.u0 : chunk.u1] = _sq_rows(table)
            return units.sq_scale(sq)
        tokens, e = self.tokens, self.e
        if units.groups is not None:
            tokens = units.by_unit(tokens.unsqueeze(-1)).squeeze(-1)
            e = units.by_unit(e)
        same = (tokens.unsqueeze(2) == tokens.unsqueeze(1)).to(e.dtype)
        return units.sq_scale((same * torch.bmm(e, e.transpose(1, 2))).sum(dim=(1, 2)))

    def clipped_sum(self, w_rows: torch.Tensor) -> torch.Tensor:
        ce = (self.e * w_rows.view(-1, 1, 1)).flatten(0, 1)
        out = ce.new_zeros(self.vocab_size, ce.shape[-1])
        return out.index_add_(0, self.tokens.flatten(), ce)


def _choose_routes(uses: list[_LinearUse], emb: _EmbeddingUse, route: str, units: _Units) -> None:
    """Mark the maps whose per-unit gradients are materialised rather than Gram-normed.

    Both routes compute the same T·p·q product once (the Gram route as its final weighted matmul,
    the other as batched matmuls per example); beyond it the Gram route costs T²·d per unit for the
    Gram of each of its tensors (T: a unit's steps, all its rows end to end; d: the tensor's width;
    a Gram shared with another Gram-routed map is paid once) and materialising about
    ``MATERIALIZE_COST``·p·q (writing, squaring and weighting the [q, p] gradient, memory-bound).
    Short sequences and wide maps favour materialising. The embedding's materialised gradient is a
    [V, E] table.
    """
    T = emb.tokens.shape[1] * units.most
    V, E = emb.vocab_size, emb.e.shape[-1]
    emb.materialize = route == "materialize" or (route == "auto" and MATERIALIZE_COST * V * E < T * T * (E + 1))
    for use in uses:
        use.materialize = route != "gram"
    if route != "auto":
        return

    def fits(use: _LinearUse) -> bool:
        return math.prod(use.shape) * use.a.element_size() <= MATERIALIZE_BUDGET

    def gram_cost(use: _LinearUse, have: set[int]) -> float:
        return T * T * sum(x.shape[-1] for x in (use.a, *use.parts) if id(x) not in have)

    for use in uses:  # each map on its own ...
        use.materialize = fits(use) and MATERIALIZE_COST * math.prod(use.shape) < gram_cost(use, set())
    changed = True
    while changed:  # ... then onto the Gram route where the Grams it needs are computed anyway
        have = {id(x) for use in uses if not use.materialize for x in (use.a, *use.parts)}
        changed = False
        for use in uses:
            if use.materialize and gram_cost(use, have) < MATERIALIZE_COST * math.prod(use.shape):
                use.materialize, changed = False, True
                have |= {id(x) for x in (use.a, *use.parts)}


def _materialized_sums(uses: list[_LinearUse], units: _Units, sq: torch.Tensor,
                       clip: float) -> dict[_LinearUse, torch.Tensor]:
    """The clipped sums of the materialised maps; completes ``sq`` (the other maps' norms) in place.

    A chunk of whole units at a time (about ``CHUNK_BYTES`` of per-unit gradients): their
    gradients complete the chunk's norms, hence its clipping factors, and are added into the sums
    at once and dropped.
    """
    sums = {use: use.a.new_zeros(use.shape) for use in uses}
    per_unit = sum(q * p for q, p in (use.shape for use in uses)) * uses[0].a.element_size()
    for chunk in units.chunks(max(1, CHUNK_BYTES // per_unit)):
        u0, u1 = chunk.u0, chunk.u1
        grads = [use.unit_grads(units, chunk) for use in uses]
        part = sq[u0:u1]
        for g in grads:
            part = part + units.sq_scale(_sq_rows(g), u0, u1)
        sq[u0:u1] = part
        w = units.unit_weights((clip / (part.clamp(min=0).sqrt() + 1e-6)).clamp(max=1.0), u0, u1)
        for use, g in zip(uses, grads, strict=True):
            sums[use].view(-1).addmv_(g.t(), w)
    return sums


def _clip(uses: list[_LinearUse], emb: _EmbeddingUse, units: _Units, clip: float
          ) -> tuple[torch.Tensor, torch.Tensor, dict[_LinearUse, torch.Tensor], dict[_LinearUse, torch.Tensor]]:
    """Per-unit norms and clipping factors, and the clipped weight and bias sums of every map.

    First the norms that need no per-unit weight gradient (embedding, biases, Gram-routed weights);
    then the materialised weights, chunk by chunk (:func:`_materialized_sums`); the Gram-routed
    weights last, one weighted matmul each.
    """
    sq = emb.sq_norms(units)
    bias = {use: units.per_unit(use.g_sum) for use in uses if use.g_sum is not None}
    for s in bias.values():
        sq = sq + units.sq_scale(_sq_rows(s))
    gram_uses = [use for use in uses if not use.materialize]
    if units.groups is None and gram_uses:
        grams = _Grams([x for use in gram_uses for x in (use.a, *use.parts)])
        for use in gram_uses:
            sq = sq + use.gram_sq_norms(grams)
        del grams
    else:
        for use in gram_uses:
            sq = sq + units.sq_scale(use.unit_gram_sq_norms(units))
    mat_uses = [use for use in uses if use.materialize]
    sums = _materialized_sums(mat_uses, units, sq, clip) if mat_uses else {}
    norms = sq.clamp(min=0).sqrt()
    factors = (clip / (norms + 1e-6)).clamp(max=1.0)
    w_rows = units.row_weights(factors)
    for use in gram_uses:
        sums[use] = use.weighted_sum(w_rows)
    w_units = units.unit_weights(factors)
    bias_sums = {use: w_units @ s for use, s in bias.items()}
    return norms, factors, sums, bias_sums


@dataclass
class ClippedSum:
    """One batch's clipped, un-noised gradient sum and what produced it."""

    grads: dict[str, torch.Tensor]  # parameter name (nn.GRU names) → Σ_i clip_i · grad_i
    norms: torch.Tensor  # [B] per-unit (example, or user) flat L2 gradient norms, before clipping
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


def _nrz_to_rzn(x: torch.Tensor) -> torch.Tensor:
    """Rows of a W_ih-shaped gradient in k's gate order (n, r, z) → nn.GRU's (r, z, n)."""
    H = x.shape[0] // 3
    return torch.cat([x[H:], x[:H]])


@torch.enable_grad()
def clipped_gradient_sum(model: GRULanguageModel, batch: torch.Tensor, pad_id: int, clip: float,
                         route: str = "auto", users: torch.Tensor | None = None,
                         workspace: Workspace | None = None) -> ClippedSum:
    """Σ_i min(1, C/(‖∇ℓ_i‖+1e-6)) ∇ℓ_i over the examples of ``batch`` [B, T+1], one backward pass.

    With ``users`` (each row's user, 0..U-1) the units are users: ∇ℓ_u is the mean of user u's
    rows' gradients, its norm that of the sum of the rows' per-example gradients (materialised) or
    of the Grams over the user's rows end to end, so user-level clipping costs one backward pass too.

    ℓ_i is sequence i's mean token loss from a zero hidden state; ‖·‖ is the flat L2 norm over
    all parameters jointly. Dropout follows ``model.training``, exactly as ``model(tokens)``.
    ``route`` ("auto", "gram" or "materialize") picks how the weights' norms are computed; the
    result is the same up to floating-point error. ``workspace`` (the engine's) keeps large buffers
    from one call to the next.
    """
    if len(batch) == 0:
        zeros = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
        return ClippedSum(zeros, torch.zeros(0, device=batch.device), None)
    tokens, targets = batch[:, :-1], batch[:, 1:]
    gru = model.gru
    work = workspace if workspace is not None else Workspace()
    x0 = F.embedding(tokens, model.embedding.weight.detach()).requires_grad_()
    x = model.drop_in(x0)
    tapes = []
    for layer in range(gru.num_layers):
        w_ih, b_ih, w_hh, b_hh = (getattr(gru, f"{name}_l{layer}").detach() for name in _GRU_PARAMS)
        tape = _LayerTape(layer)
        x = _GRULayer.apply(x, w_ih, b_ih, w_hh, b_hh, tape, work)
        tapes.append(tape)
    y, head_in = x, tapes[-1].h
    if model.training and model.drop_out.p > 0:  # on nn.GRU's output layout, as the model does
        y = model.drop_out(x)
        head_in = y.detach()
    logits = F.linear(y.contiguous(), model.head.weight.detach(), model.head.bias.detach())
    captured: list[torch.Tensor] = []
    logits.register_hook(captured.append)  # ∂L/∂logits, without keeping the logits alive:
    losses = sequence_losses(logits, targets, pad_id)  # [B]: ℓ_i
    del logits  # the largest activation; the loss's backward needs only its softmax
    (d_x0,) = torch.autograd.grad(losses.sum(), [x0])
    d_logits = captured[0]

    # Every (weight, bias) pair as one linear map used at every step; the gate-gradient buffer k of
    # each layer holds both W_ih's (slots n, r, z) and W_hh's (slots r, z, n) output gradients.
    # A tensor that feeds several maps is passed as the same object, so that its Gram is shared.
    head = _LinearUse(head_in, d_logits, g_sum=d_logits.sum(dim=1))
    named = [("head.weight", "head.bias", head, None)]
    for layer, tape in enumerate(tapes):
        k, k_sum = tape.k, tape.k_sum
        g_n, g_rz, g_v = k[:, :, 0], k[:, :, 1:3].flatten(2), k[:, :, 3]
        x_in = tapes[layer - 1].h if layer else tape.x  # no dropout between layers
        w_ih_use = _LinearUse(x_in, k[:, :, :3].flatten(2), g_sum=k_sum[:, :3].flatten(1), parts=(g_n, g_rz))
        w_hh_use = _LinearUse(tape.h, k[:, :, 1:].flatten(2), g_sum=k_sum[:, 1:].flatten(1),
                              parts=(g_rz, g_v), shift=True)
        named.append((f"gru.weight_ih_l{layer}", f"gru.bias_ih_l{layer}", w_ih_use, _nrz_to_rzn))
        named.append((f"gru.weight_hh_l{layer}", f"gru.bias_hh_l{layer}", w_hh_use, None))
    uses = [use for _, _, use, _ in named]
    emb = _EmbeddingUse(tokens, d_x0, model.embedding.num_embeddings)
    units = _Units(len(batch), None if users is None else users.to(tokens.device))
    _choose_routes(uses, emb, route, units)
    norms, factors, sums, bias_sums = _clip(uses, emb, units, clip)

    grads = {"embedding.weight": emb.clipped_sum(units.row_weights(factors))}
    for weight, bias, use, order in named:
        grads[weight] = sums[use] if order is None else order(sums[use])
        grads[bias] = bias_sums[use] if order is None else order(bias_sums[use])
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
        self.loader = self.dp_loader()  # sets expected_batch_size (sequences, or users)
        self.grad_noise_multiplier, self.count_noise = split_noise(setup.noise_multiplier, self.expected_batch_size)
        self.noise_std = self.grad_noise_multiplier * setup.clip
        self.optimizer = self.make_optimizer(self.model.parameters())
        self._noise_order = opacus_param_order(self.model)
        self._workspace = Workspace()

    @property
    def module(self) -> nn.Module:
        return self.model

    def clipped_sum(self, batch: torch.Tensor, groups: torch.Tensor | None = None) -> ClippedSum:
        """The clipped per-unit gradient sum of ``batch`` (before noise), in training mode."""
        self.model.train()
        return clipped_gradient_sum(self.model, batch.to(self.device), self.setup.pad_id,
                                    self.setup.clip, route=self.route, users=groups, workspace=self._workspace)

    def step(self, batch: torch.Tensor, groups: torch.Tensor | None = None) -> StepStats:
        result = self.clipped_sum(batch, groups)
        params = dict(self.model.named_parameters())
        for name in self._noise_order:  # an empty batch still gets noise and a step
            p, grad = params[name], result.grads[name]
            if self.noise_std > 0:  # as Opacus: no draw at σ = 0
                grad = self.noise.add_gaussian(grad, self.noise_std)
            p.grad = (grad / self.expected_batch_size).view_as(p)
        self.optimizer.step()
        b = len(result.norms)  # units: sequences, or users
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
