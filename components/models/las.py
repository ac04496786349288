"""LaS attention, "Local and Smooth" (Zimerman & Wolf, ICML 2024): per head, the pre-softmax
scores are multiplied by exp(-alpha_h * |i - j|) (head 0: alpha = 0, global; the others fixed and
log-spaced up to B), then after the softmax every row of the attention matrix is smoothed by a
1-D average pool of width P that keeps the L x L shape. No trainable parameters are added.
In causal use the causal mask is applied again after pooling, so no future position leaks in.
LaS-chunk runs the same operator inside fixed chunks of C positions: O(L * C).

The fast path (`las_attend`) never builds the pooled matrix: average-pooling a row of weights
over keys and then mixing values equals mixing average-pooled values, w P V = w (P V), exactly
where the masks re-applied after pooling do not depend on the query (padding: zero the padded
values before pooling). The causal mask does depend on it near the diagonal, where the pooled
row would reach r = P // 2 keys into the future; those few terms are subtracted again. Decay and
scale fold into one cached (H, L, L) factor and the masks into one additive bias, so the scores
make three passes over (B, H, L, L) instead of about ten. From SDPA_FROM positions on, no L x L
tensor at all: a head without decay (head 0) is plain attention on pooled values, one SDPA call
(`las_attend_global`, bidirectional); for the others (`las_attend_sdpa`), within each triangle
the decay separates into a query factor times a key factor, so each triangle is one causal call
of the fused SDPA kernel, and the two softmaxes are joined through their masses (causal LaS reads
the weights next to the diagonal from its mass): on CPU the flash kernel's log-sum-exps
(`_CausalFlash`, `_Triangles`, their own backwards; the upper triangle on each sequence
reversed), elsewhere a sink key's weight. Heads whose factors would leave
fp32 (alpha L > SEPARABLE) decay so fast that beyond a reach W (a few hundred positions) every
decayed score rounds to 0 and every key weighs e^0 = 1: they run banded (`las_attend_band`, O(L W)),
the keys beyond the band summed by prefix sums, or dense where the band would span most of the
sequence. `las_attend_ref` (the paper's order of operations, materialized) is the reference twin;
tests/test_architectures.py shows all agree.

Ablations are settings, not flags: decay only = `pool: 1`; smoothing only = `decay_max: 0`.

Legend: B batch, H heads, L length, E head width, C chunk size, n number of chunks.
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from components.config import LaSCfg, LaSChunkCfg
from components.models.attention import SelfAttention, attention_mask, right_padded

# helpers --------------------------------------------------------------------------------------


def decay_rates(n_heads: int, decay_max: float, decay_min: float = 1e-4) -> torch.Tensor:
    """(H,) fixed rates: 0 for head 0, the others log-spaced over [min(decay_min, B), B]
    (our reading of the paper's "exponential-uniform in [0, B]")."""
    if n_heads == 1 or decay_max == 0:
        return torch.zeros(n_heads)
    lo = math.log(min(decay_min, decay_max))
    rest = torch.exp(torch.linspace(math.log(decay_max), lo, n_heads - 1)).flip(0)  # (H-1,), ends at B
    return torch.cat([torch.zeros(1), rest])


def _in_fp32(fn):
    """Run fn(q, k, v, ...) with autocast off and q, k, v in fp32 (float64 stays), the output cast
    back to q's dtype: decay factors, masses and prefix sums need fp32 even under bf16 autocast."""

    @functools.wraps(fn)
    def wrapped(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        dtype = q.dtype
        wide = torch.promote_types(dtype, torch.float32)
        with torch.autocast(q.device.type, enabled=False):
            return fn(q.to(wide), k.to(wide), v.to(wide), *args, **kwargs).to(dtype)

    return wrapped


def real_keys(mask: torch.Tensor) -> torch.Tensor:
    """(B, L) -> (B, L) the keys each sequence may attend: its real positions, or every position of
    a sequence with none (an all-padding chunk: its outputs are padding, read by nothing, and must
    only stay finite)."""
    return mask | ~mask.any(-1, keepdim=True)


def _allowed(mask: torch.Tensor, causal: bool, L: int) -> torch.Tensor:
    """(B, 1, L, L) True = may attend; a query with no real key at all (an all-padding chunk)
    attends to itself, never to nothing."""
    allowed = attention_mask(mask, causal).expand(-1, -1, L, -1)  # (B, 1, L, L)
    return allowed | (torch.eye(L, dtype=torch.bool, device=mask.device) & ~allowed.any(-1, keepdim=True))


def decay_factor(alphas: torch.Tensor, L: int, E: int, device, dtype) -> torch.Tensor:
    """(H, L, L): exp(-alpha_h |i - j|) / sqrt(E), the decay and the score scale in one factor."""
    pos = torch.arange(L, device=device)
    dist = (pos[:, None] - pos[None, :]).abs().to(dtype)  # (L, L)
    return torch.exp(-alphas.to(device=device, dtype=dtype)[:, None, None] * dist) / math.sqrt(E)


def pool_values(v: torch.Tensor, mask: torch.Tensor, pool: int) -> torch.Tensor:
    """v: (B, H, L, E), mask: (B, L) -> the padding-masked values average-pooled over positions,
    width `pool` (odd), zero padding at the ends (as avg_pool1d counts it): (B, H, L, E). A sum of
    `pool` shifted slices in fp32 (or float64), in avg_pool1d's order (the same bits, forward and
    backward), without its transposes: 3-5x faster on CPU in the layout attention uses."""
    kv = v * mask[:, None, :, None]  # (B, H, L, E)
    if pool == 1:
        return kv
    L = kv.shape[2]
    kv = F.pad(kv.to(torch.promote_types(kv.dtype, torch.float32)), (0, 0, pool // 2, pool // 2))  # summed in fp32, as avg_pool1d
    total = kv[:, :, :L]  # (B, H, L, E)
    for s in range(1, pool):
        total = total + kv[:, :, s:s + L]
    return (total / pool).to(v.dtype)


def _bias(mask: torch.Tensor, causal: bool, dtype: torch.dtype) -> torch.Tensor:
    """Additive mask, 0 = may attend, -inf = not: (B, 1, 1, L) bidirectional, (B, 1, L, L) causal."""
    L = mask.shape[1]
    allowed = real_keys(mask)[:, None, None, :]  # (B, 1, 1, L)
    if causal:
        allowed = allowed & torch.ones(L, L, dtype=torch.bool, device=mask.device).tril()  # (B, 1, L, L)
    return torch.zeros(allowed.shape, dtype=dtype, device=mask.device).masked_fill_(~allowed, float("-inf"))


def las_attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, factor: torch.Tensor,
               pool: int, causal: bool) -> torch.Tensor:
    """Fast LaS: q, k, v (B, H, L, E), mask (B, L), factor (H, L, L) from `decay_factor` -> (B, H, L, E)."""
    w = torch.addcmul(_bias(mask, causal, q.dtype), q @ k.transpose(-1, -2), factor).softmax(-1)  # (B, H, L, L)
    y = w @ pool_values(v, mask, pool)  # (B, H, L, E)
    if causal and pool // 2:  # row i pooled over keys i+1..i+r: remove what they would mix in
        y = unpool_future(y, v, mask, pool, lambda d: torch.diagonal(w, offset=-d, dim1=-2, dim2=-1)[..., None])
    return y


@_in_fp32
def las_attend_global(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, pool: int) -> torch.Tensor:
    """Bidirectional LaS of heads without decay (alpha 0: head 0, or every head with `decay_max: 0`):
    plain attention on pooled values, one fused SDPA call instead of two triangles; in fp32 (or
    float64) even under bf16 autocast, as the other heads. q, k, v: (B, H, L, E), mask: (B, L) ->
    (B, H, L, E)."""
    vp = pool_values(v, mask, pool).contiguous()  # (B, H, L, E); fused kernels read the head width as contiguous
    return F.scaled_dot_product_attention(q, k, vp, attn_mask=real_keys(mask)[:, None, None, :])


def unpool_future(y: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, pool: int, diag) -> torch.Tensor:
    """Causal LaS through pooled values: the weight w[i, i - d] (d < r = pool // 2), pooled over
    keys, reaches keys i + 1 .. i - d + r, which the causal mask re-applied after pooling removes;
    subtract what they mixed in. y, v: (B, H, L, E); diag(d) -> w[i, i - d] for i >= d, (B, H, L - d, 1)."""
    r, L = pool // 2, v.shape[2]
    kv = v * mask[:, None, :, None]  # (B, H, L, E)
    c = torch.cat([kv.cumsum(2), kv.sum(2, keepdim=True).expand(-1, -1, r, -1)], 2)  # (B, H, L + r, E)
    rows = torch.arange(L, device=v.device)
    for d in range(r):
        i = rows[d:]
        future = c[:, :, i - d + r] - c[:, :, i]  # (B, H, L - d, E): sum of kv over i+1 .. i-d+r
        y = torch.cat([y[:, :, :d], y[:, :, d:] - diag(d) * future / pool], 2)
    return y


SINK = 10.0  # the sink key's score is -SINK: it makes each part's softmax mass readable, 1/s - 1 = Z e^SINK
SDPA_FROM = 512  # lengths from which LaS runs through SDPA (at 128-256 the dense path is as fast or faster)
SEPARABLE = 150.0  # heads with alpha (L - 1) up to this run through SDPA: e^(alpha L / 2) stays within fp32


def _sdpa_part(qs: torch.Tensor, ks: torch.Tensor, vp: torch.Tensor, kbias: torch.Tensor, shift: bool) -> tuple:
    """One triangle of the scores through causal SDPA, with its softmax mass. qs, ks: (B, H, L, E)
    scaled so that qs . ks is the decayed score; vp: (B, H, L, E); kbias: (B, H, L, 1), 0 or -1e4 per
    key. Keys are [sink, k_0 .. k_{L-1}] with a sink of score -SINK and a value in its own channel
    (channel E; on GPUs the head width is padded to a multiple of 8, which their kernels need); `shift`
    prepends a dummy query so that query i sees keys 0..i, else one is appended and query i sees
    keys 0..i-1 (square either way: fused kernels take causal masks on square shapes only).
    -> (numerator N e^SINK (B, H, L, E), mass Z e^SINK (B, H, L, 1)) of the keys it saw."""
    B, H, L, E = qs.shape
    W = E + 1 if qs.device.type == "cpu" else (E + 8) // 8 * 8  # E + 1 channels, padded on GPUs
    qa = F.pad(torch.cat([qs, qs.new_ones(B, H, L, 1)], -1), (0, W - E - 1))  # (B, H, L, W): channel E reads key biases
    sink_k = qs.new_zeros(B, H, 1, W)
    sink_k[..., E] = -SINK
    sink_v = qs.new_zeros(B, H, 1, W)
    sink_v[..., E] = 1.0
    K = torch.cat([sink_k, F.pad(torch.cat([ks, kbias], -1), (0, W - E - 1))], 2)  # (B, H, L + 1, W)
    V = torch.cat([sink_v, F.pad(vp, (0, W - E))], 2)  # (B, H, L + 1, W)
    qa = F.pad(qa, (0, 0, 1, 0) if shift else (0, 0, 0, 1))  # (B, H, L + 1, W): one dummy query
    o = F.scaled_dot_product_attention(qa, K, V, is_causal=True, scale=1.0)  # (B, H, L + 1, W)
    o = o[:, :, 1:] if shift else o[:, :, :L]  # (B, H, L, W)
    s = o[..., E:E + 1]  # (B, H, L, 1): e^-SINK / (Z + e^-SINK)
    return o[..., :E] / s, 1.0 / s - 1.0


def mirror(mask: torch.Tensor) -> torch.Tensor | None:
    """(B, L) -> (B, L) gather indices that reverse each sequence's real positions and leave its
    padding in place at the end (applying them twice is the identity); None when no position is
    padding, where the mirror is a plain flip (`_along`: no index tensor, no scatter backward)."""
    if bool(mask.all()):
        return None
    n = mask.sum(-1, keepdim=True)  # (B, 1)
    t = torch.arange(mask.shape[1], device=mask.device)
    return torch.where(t < n, n - 1 - t, t)  # (B, L)


def _along(x: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
    """x (B, H, L, ...) reordered along L by idx (B, L) from `mirror`; reversed along L if None."""
    if idx is None:
        return x.flip(2)
    shape = (idx.shape[0], 1, idx.shape[1]) + (1,) * (x.dim() - 3)
    return x.gather(2, idx.view(shape).expand(x.shape))


_FLASH_CPU = hasattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu")


class _Triangles(torch.autograd.Function):
    """Bidirectional LaS through two causal calls of the CPU flash kernel, joined by their
    log-sum-exps instead of a sink channel (so the head width stays E).

    Lower: query i sees keys j <= i (ql, kl). Upper: the same on each sequence mirrored (qu, ku,
    `mirror`), so query i sees j >= i. Both hold the diagonal, with score d_i: it is taken out once.
    o = (Z_l o_l + Z_u o_u - e^d vp_i) / (Z_l + Z_u - e^d). Backward: the gradient of a score
    s_ij of either part is w P_ij dO . (v_j - o), w = Z_part / Z, which is the flash backward of
    that part given grad_out w dO and, in place of its own output, the joined output o."""

    @staticmethod
    def forward(ctx, ql, kl, qu, ku, vp, d, idx):
        """ql, kl, qu, ku, vp: (B, H, L, E) (qu, ku mirrored), d: (B, H, L), idx: (B, L) or None
        (`mirror`) -> (B, H, L, E)."""
        flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
        vp = vp.contiguous()  # the kernel reads the head width as contiguous
        vu = _along(vp, idx)
        ol, ll = flash(ql, kl, vp, 0.0, True, scale=1.0)  # (B, H, L, E), (B, H, L)
        ou, lu = flash(qu, ku, vu, 0.0, True, scale=1.0)
        ou, lu_back = _along(ou, idx), _along(lu, idx)  # in sequence order
        top = torch.maximum(ll, lu_back)  # (B, H, L); d <= both
        zl, zu, zd = (ll - top).exp(), (lu_back - top).exp(), (d - top).exp()
        z = zl + zu - zd  # >= max(zl, zu) = 1
        wl, wu, wd = zl / z, zu / z, zd / z  # (B, H, L)
        o = wl[..., None] * ol + wu[..., None] * ou - wd[..., None] * vp  # (B, H, L, E)
        ctx.save_for_backward(ql, kl, qu, ku, vp, vu, ll, lu, o, wl, wu, wd, idx)
        return o

    @staticmethod
    def backward(ctx, do):
        ql, kl, qu, ku, vp, vu, ll, lu, o, wl, wu, wd, idx = ctx.saved_tensors
        flash_back = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward
        do = do.contiguous()
        dql, dkl, dvl = flash_back(wl[..., None] * do, ql, kl, vp, o, ll, 0.0, True, scale=1.0)
        dqu, dku, dvu = flash_back(_along(wu[..., None] * do, idx), qu, ku, vu, _along(o, idx), lu, 0.0, True,
                                   scale=1.0)
        dd = -wd * (do * (vp - o)).sum(-1)  # (B, H, L): the diagonal taken out once
        dvp = dvl + _along(dvu, idx) - wd[..., None] * do
        return dql, dkl, dqu, dku, dvp, dd, None


class _CausalFlash(torch.autograd.Function):
    """One causal call of the CPU flash kernel, differentiable in its output and its log-sum-exp
    (causal LaS reads the weights next to the diagonal as exp(score - lse)). q, k, v: (B, H, L, E)
    -> o (B, H, L, E), lse (B, H, L).

    Backward: a score's gradient is P_ij (dO_i . v_j - D_i + dlse_i), D_i = dO_i . o_i. The flash
    backward reads D_i off the output it is given, so it gets o'_i = o_i - dlse_i dO_i / |dO_i|^2,
    whose D'_i is D_i - dlse_i (dlse_i is a sum of dO_i . x terms: 0 wherever dO_i is), computed on
    each row scaled to max |dO| 1."""

    @staticmethod
    def forward(ctx, q, k, v):
        flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
        o, lse = flash(q, k, v, 0.0, True, scale=1.0)  # (B, H, L, E), (B, H, L)
        ctx.save_for_backward(q, k, v, o, lse)
        return o, lse

    @staticmethod
    def backward(ctx, do, dlse):
        q, k, v, o, lse = ctx.saved_tensors
        flash_back = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward
        do = do.contiguous()
        s = do.abs().amax(-1, keepdim=True)  # (B, H, L, 1)
        u = do / s  # each row's largest entry +-1: |u|^2 in [1, E], never under- or overflows (NaN where s = 0, unused)
        o2 = torch.where(s > 0, o - (dlse[..., None] / s) * u / (u * u).sum(-1, keepdim=True), o)
        return flash_back(do, q, k, v, o2, lse, 0.0, True, scale=1.0)


@_in_fp32
def las_attend_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, alphas: torch.Tensor,
                    pool: int, causal: bool, sink: bool = False) -> torch.Tensor:
    """LaS through the fused SDPA kernel, never an L x L tensor: q, k, v (B, H, L, E), mask (B, L),
    alphas (H,) with alpha (L - 1) <= SEPARABLE -> (B, H, L, E).

    Within each triangle the decay separates, exp(-a |i - j|) = exp(-a (i - c)) exp(a (j - c)) for
    j <= i (c the centre, so no factor leaves fp32), so the lower triangle is causal SDPA on
    rescaled queries and keys, and the upper one (bidirectional only) causal SDPA on the reversed
    sequence. Smoothing pools the values, as in `las_attend`. Runs in fp32 (or float64) even under
    bf16 autocast: the factors and masses need its precision.

    On CPU (unless `sink`), the flash kernel's log-sum-exps give each softmax's mass: causal is one
    call (`_CausalFlash`), bidirectional two joined by them (`_Triangles`); no extra channel, so the
    head width stays E. A right-padded mask keeps padding out of every real query's causal view
    (the upper triangle runs on each sequence mirrored, `mirror`, where its padding stays at the
    end). Elsewhere, and for a mask with padding before a real position (never made by our
    loaders), a sink key with its own channel gives the masses (`_sdpa_part`); should a row's
    scores exceed ~75, the sink's weight would underflow, and the call is recomputed on the dense
    path."""
    B, H, L, E = q.shape
    alphas = alphas.to(q)
    pos = torch.arange(L, device=q.device, dtype=q.dtype) - (L - 1) / 2  # (L,): i - c
    up = torch.exp(alphas[:, None] * pos)[None, :, :, None]  # (1, H, L, 1): e^(a (i - c))
    vp = pool_values(v, mask, pool)  # (B, H, L, E)
    qs = q / math.sqrt(E)

    def decayed(d: int) -> torch.Tensor:  # (B, H, L - d, 1): the score of query i and key i - d, i >= d
        return (qs[:, :, d:] * k[:, :, :L - d]).sum(-1, keepdim=True) * torch.exp(-alphas * d)[:, None, None]

    flash = q.device.type == "cpu" and _FLASH_CPU and not sink and right_padded(mask)
    if flash and causal:
        y, lse = _CausalFlash.apply((qs / up).contiguous(), (k * up).contiguous(), vp.contiguous())
        if pool // 2:  # as in las_attend, with w[i, i - d] = exp(score - lse_i)
            y = unpool_future(y, v, mask, pool, lambda d: torch.exp(decayed(d) - lse[:, :, d:, None]))
        return y
    if flash:
        idx = mirror(mask)
        ql, qu, qd = qs / up, qs * up, qs
        if idx is not None:
            real = mask[:, None, :, None]  # (B, 1, L, 1)
            # padded queries zeroed after their factors (a padded query's upper part sees every
            # real key, where factor products leave fp32; `where` passes them no gradient, not
            # inf * 0), so their diagonal score (0) is the same in both parts, as the join assumes
            ql, qu, qd = (torch.where(real, t, 0.0) for t in (ql, qu, qd))
        d = qd.mul(k).sum(-1)  # (B, H, L)
        return _Triangles.apply(ql, k * up, _along(qu, idx), _along(k / up, idx), vp, d, idx)
    keys = real_keys(mask)  # (B, L)
    kbias = torch.zeros(B, 1, L, 1, dtype=q.dtype, device=q.device).masked_fill(~keys[:, None, :, None], -1e4)
    kbias = kbias.expand(B, H, L, 1)
    num, mass = _sdpa_part(qs / up, k * up, vp, kbias, shift=True)  # j <= i
    if not causal:  # j > i: reversed, query i' sees keys j' < i'
        flip = lambda t: t.flip(2)  # noqa: E731
        n2, m2 = _sdpa_part(flip(qs * up), flip(k / up), flip(vp), flip(kbias), shift=False)
        num, mass = num + flip(n2), mass + flip(m2)
    if not bool((mass < 1e30).all()):  # a sink weight underflowed (or NaN): the dense path has no sink
        return las_attend(q, k, v, mask, decay_factor(alphas, L, E, q.device, q.dtype), pool, causal)
    y = num / mass.clamp_min(1e-30)  # (B, H, L, E)
    if causal and pool // 2:  # as in las_attend, with w[i, i - d] = exp(score + SINK) / mass
        y = unpool_future(y, v, mask, pool, lambda d: torch.exp(decayed(d) + SINK + kbias[:, :, :L - d])
                          / mass[:, :, d:].clamp_min(1e-30))
    return y


def band_width(q: torch.Tensor, k: torch.Tensor, alphas: torch.Tensor) -> int:
    """The reach W beyond which every decayed score of these heads is within rounding of 0, so
    exp(score) is exactly 1 in the band's dtype (fp32, or fp64): |q_i . k_j| / sqrt(E) e^(-a d) <
    eps / 4 for d > W. q, k: (B, H, L, E), alphas: (H,) all > 0 -> W (a host int; one sync per
    call); L where q or k is not finite, so the caller takes the dense path and the loss shows it."""
    E, L = q.shape[-1], q.shape[2]
    dtype = torch.promote_types(q.dtype, torch.float32)
    norms = [t.detach().to(dtype).norm(dim=-1).amax((0, 2)) for t in (q, k)]  # 2 x (H,)
    smax = norms[0] * norms[1] / math.sqrt(E)  # (H,)
    eps = torch.finfo(dtype).eps / 4
    reach = float((torch.log(smax.clamp_min(eps) / eps) / alphas.to(smax)).max())
    return max(1, math.ceil(reach)) if math.isfinite(reach) else L


@_in_fp32
def las_attend_band(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, alphas: torch.Tensor,
                    pool: int, causal: bool, width: int) -> torch.Tensor:
    """LaS for fast-decaying heads in O(L W) instead of O(L^2): q, k, v (B, H, L, E), mask (B, L),
    alphas (H,), width W from `band_width` (causal: at least pool // 2) -> (B, H, L, E).

    Beyond W positions a key's decayed score rounds to 0, so its weight is e^0 = 1 (before the
    normalisation) whatever q and k are: those far keys add up to one extra column per block of
    queries, with logit log(n_far) and value their mean pooled value (prefix sums). The near keys
    are attended densely in blocks: queries [s, s + T) with keys [s - W, s + T + W), T = W, scale,
    decay and masks folded into one factor (same for every block) and one bias, as in `las_attend`.
    The far keys' gradients through q and k are below rounding too and are left out. Runs in
    fp32 (or float64) even under bf16 autocast, as `las_attend_sdpa`: counts and prefix sums need it."""
    B, H, L, E = q.shape
    alphas = alphas.to(q)
    assert not causal or width >= pool // 2, "causal pooling reaches pool // 2 keys: the band must hold them"
    T = W = width  # R = T + 2W + 1 keys per block: the window and the far column
    n = math.ceil(L / T)
    keys = real_keys(mask)  # (B, L)
    vp = pool_values(v, mask, pool)  # (B, H, L, E)

    def windows(t: torch.Tensor) -> torch.Tensor:  # (B, H, L, E) -> (B, H, n, T + 2W, E)
        return F.pad(t, (0, 0, W, n * T - L + W)).unfold(2, T + 2 * W, T).transpose(-1, -2)

    # far keys of block b: [0, bT - W) and (bidirectional) [bT + T + W, L), through prefix sums
    starts = torch.arange(n, device=q.device) * T
    lo, hi = (starts - W).clamp(0, L), (starts + T + W).clamp(0, L)  # (n,)
    real = keys.to(q.dtype)  # (B, L)
    cnt = F.pad(real.cumsum(-1), (1, 0))  # (B, L + 1): real keys before t
    tot = F.pad((vp * real[:, None, :, None]).cumsum(2), (0, 0, 1, 0))  # (B, H, L + 1, E)
    n_far, s_far = cnt[:, lo], tot[:, :, lo]  # (B, n), (B, H, n, E)
    if not causal:
        n_far = n_far + cnt[:, L:] - cnt[:, hi]
        s_far = s_far + tot[:, :, L:] - tot[:, :, hi]
    far_v = s_far / n_far.clamp_min(1)[:, None, :, None]  # (B, H, n, E): the far keys' mean value
    kb = torch.cat([windows(k), k.new_zeros(B, H, n, 1, E)], 3)  # (B, H, n, R, E): the far column scores 0
    vb = torch.cat([windows(vp), far_v[:, :, :, None]], 3)  # (B, H, n, R, E)

    rel = torch.arange(T, device=q.device)[:, None] + W - torch.arange(T + 2 * W, device=q.device)  # (T, T + 2W): i - j
    factor = torch.exp(-alphas[:, None, None] * rel.abs().to(q.dtype)) / math.sqrt(E)  # (H, T, T + 2W)
    factor = F.pad(factor, (0, 1))[:, None]  # (H, 1, T, R)
    ok = F.pad(keys, (W, n * T - L + W)).unfold(1, T + 2 * W, T)[:, None, :, None]  # (B, 1, n, 1, T + 2W)
    if causal:
        ok = ok & (rel >= 0)  # (B, 1, n, T, T + 2W)
    bias = torch.zeros(ok.shape, dtype=q.dtype, device=q.device).masked_fill_(~ok, float("-inf"))
    far_bias = n_far.log()[:, None, :, None, None].expand(*bias.shape[:-1], 1)  # (B, 1, n, ., 1); -inf if none
    bias = torch.cat([bias, far_bias], -1)  # (B, 1, n, T or 1, R)

    qb = F.pad(q, (0, 0, 0, n * T - L)).view(B, H, n, T, E)  # (B, H, n, T, E)
    w = torch.addcmul(bias, qb @ kb.transpose(-1, -2), factor).softmax(-1)  # (B, H, n, T, R)
    y = (w @ vb).view(B, H, n * T, E)[:, :, :L]  # (B, H, L, E)
    if causal and pool // 2:  # w[i, i - d] sits at column t + W - d of its block

        def diag(d: int) -> torch.Tensor:  # (B, H, L - d, 1)
            return torch.diagonal(w, offset=W - d, dim1=-2, dim2=-1).reshape(B, H, n * T)[:, :, d:L, None]

        y = unpool_future(y, v, mask, pool, diag)
    return y


def las_attend_ref(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, alphas: torch.Tensor,
                   pool: int, causal: bool) -> torch.Tensor:
    """The paper's order of operations, L x L materialized: q, k, v (B, H, L, E) -> (B, H, L, E)."""
    w = las_weights(q, k, mask, alphas, pool, causal)  # (B, H, L, L)
    return torch.einsum("bhij, bhje -> bhie", w, v)


def las_weights(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor, alphas: torch.Tensor, pool: int,
                causal: bool) -> torch.Tensor:
    """q, k: (B, H, L, E), mask: (B, L), alphas: (H,) -> attention weights (B, H, L, L)."""
    L = q.shape[2]
    pos = torch.arange(L, device=q.device)
    dist = (pos[:, None] - pos[None, :]).abs().float()  # (L, L)
    scores = torch.einsum("bhie, bhje -> bhij", q, k) / math.sqrt(q.shape[-1])  # (B, H, L, L)
    scores = scores * torch.exp(-alphas.to(q.device)[:, None, None] * dist)  # (B, H, L, L) ELD
    allowed = _allowed(mask, causal, L)  # (B, 1, L, L)
    w = scores.masked_fill(~allowed, float("-inf")).softmax(-1)  # (B, H, L, L)
    if pool > 1:  # row-wise average pool, zero padding, same width (pool is odd)
        w = F.avg_pool1d(w.flatten(0, 2)[:, None], pool, stride=1, padding=pool // 2).view_as(w)
        w = w.masked_fill(~allowed, 0.0)  # re-apply causal and padding masks after smoothing
    return w


# main classes ---------------------------------------------------------------------------------


class LaSAttention(SelfAttention):
    """Multi-head attention with exponential locality decay and row smoothing (dense below
    SDPA_FROM positions, through SDPA from there)."""

    def __init__(self, cfg: LaSCfg):
        super().__init__(cfg)
        self.pool = cfg.pool
        self.register_buffer("alphas", decay_rates(cfg.n_heads, cfg.decay_max), persistent=False)
        self.rates = self.alphas.tolist()  # on the host: dispatching heads needs no device sync
        self._factors: dict[tuple, torch.Tensor] = {}  # (heads, L, E, device, dtype) -> (H', L, L); no gradient

    def factor(self, heads: tuple[int, ...], L: int, E: int, device, dtype) -> torch.Tensor:
        key = (heads, L, E, str(device), dtype)
        if key not in self._factors:
            if len(self._factors) > 8:  # lengths vary by batch: keep the cache small
                self._factors.clear()
            self._factors[key] = decay_factor(self.alphas[list(heads)], L, E, device, dtype)
        return self._factors[key]

    def attend(self, q, k, v, mask):
        """q, k, v: (B, H, L, E), mask: (B, L) -> (B, H, L, E). Below SDPA_FROM positions every head
        runs on the dense path (`las_attend`). From there, bidirectional heads without decay are one
        SDPA call (`las_attend_global`), the other heads whose decay separates within fp32 run
        through SDPA by triangles (`las_attend_sdpa`), and the rest decay so fast that they are
        banded (`las_attend_band`), or dense where the band would span most of the sequence."""
        H, L, E = q.shape[1], q.shape[2], q.shape[3]
        if L < SDPA_FROM:
            return las_attend(q, k, v, mask, self.factor(tuple(range(H)), L, E, q.device, q.dtype), self.pool,
                              self.causal)
        # the rates grow with the head: heads ..g have none, heads f.. decay fast
        g = 0 if self.causal else sum(a == 0 for a in self.rates)
        f = sum(a * (L - 1) <= SEPARABLE for a in self.rates)
        parts = []
        if g:
            parts.append(las_attend_global(q[:, :g], k[:, :g], v[:, :g], mask, self.pool))  # (B, g, L, E)
        if f > g:
            parts.append(las_attend_sdpa(q[:, g:f], k[:, g:f], v[:, g:f], mask, self.alphas[g:f], self.pool,
                                         self.causal))  # (B, f - g, L, E)
        if f < H:
            qn, kn, vn = q[:, f:], k[:, f:], v[:, f:]  # (B, H - f, L, E)
            width = max(band_width(qn, kn, self.alphas[f:]), self.pool // 2)
            if 3 * width + 1 <= L // 2:
                parts.append(las_attend_band(qn, kn, vn, mask, self.alphas[f:], self.pool, self.causal, width))
            else:
                parts.append(las_attend(qn, kn, vn, mask, self.factor(tuple(range(f, H)), L, E, q.device, q.dtype),
                                        self.pool, self.causal))
        return parts[0] if len(parts) == 1 else torch.cat(parts, 1)  # (B, H, L, E), heads in order

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: (B, L, D), mask: (B, L) bool -> (B, L, D)."""
        q, k, v = self.split_heads(x)  # (B, H, L, E)
        return self.merge_heads(self.attend(q, k, v, mask))  # (B, L, D)


class LaSChunkAttention(LaSAttention):
    """LaS inside non-overlapping chunks of `cfg.chunk` positions (linear in L)."""

    def __init__(self, cfg: LaSChunkCfg):
        super().__init__(cfg)
        self.chunk = cfg.chunk

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: (B, L, D), mask: (B, L) bool -> (B, L, D)."""
        q, k, v = self.split_heads(x)  # (B, H, L, E); rotary (if any) uses absolute positions
        B, H, L, E = q.shape
        C = min(self.chunk, L)
        n = math.ceil(L / C)
        pad = n * C - L

        def chunks(t):  # (B, H, L, E) -> (B n, H, C, E)
            return F.pad(t, (0, 0, 0, pad)).view(B, H, n, C, E).transpose(1, 2).reshape(B * n, H, C, E)

        m = F.pad(mask, (0, pad)).view(B * n, C)  # (B n, C)
        y = self.attend(chunks(q), chunks(k), chunks(v), m)  # (B n, H, C, E)
        y = y.view(B, n, H, C, E).transpose(1, 2).reshape(B, H, n * C, E)[:, :, :L]  # (B, H, L, E)
        return self.merge_heads(y)  # (B, L, D)
