"""Every architecture kind: shapes, padding invariance, causality, fast paths against their
reference twins, initialisations, and FPT's freezing. All on CPU, tiny sizes."""
import math

import pytest
import torch

from components.config import (DLRCfg, FPTCfg, LaSCfg, LaSChunkCfg, LSTMCfg, S4DCfg, TransformerCfg)
from components.models import Classifier, build_backbone, count_parameters, new_head, ssm_kernels
from components.models.attention import SelfAttention, attention_ref
from components.models import las as las_module
from components.models.las import (LaSAttention, LaSChunkAttention, decay_factor, decay_rates, las_attend,
                                   las_attend_ref, las_attend_sdpa)
from components.models.local_attention import BlockLocalAttention, block_local_ref
from components.models.rotary import apply_rotary, rotary_tables
from components.models.s4d import S4D, ssm_conv, ssm_recurrence_ref

V, PAD = 17, 0
T = dict(d_model=16, n_layers=2, n_heads=4)
KINDS = {
    "transformer": TransformerCfg(**T),
    "transformer_causal_rotary": TransformerCfg(**T, causal=True, positions="rotary"),
    "block_local": TransformerCfg(**T, block_size=4),
    "block_local_causal": TransformerCfg(**T, block_size=4, causal=True),
    "las": LaSCfg(**T),
    "las_causal": LaSCfg(**T, causal=True),
    "las_chunk": LaSChunkCfg(**T, chunk=5),
    "las_chunk_causal": LaSChunkCfg(**T, chunk=5, causal=True),
    "s4d": S4DCfg(d_model=16, n_layers=2, d_state=8),
    "s4d_inv_causal": S4DCfg(d_model=16, n_layers=2, d_state=8, init="inv", bidirectional=False),
    "dlr": DLRCfg(d_model=16, n_layers=2, d_state=8),
    "s4d_rand": S4DCfg(d_model=16, n_layers=2, d_state=8, rand_init=True),
    "lstm": LSTMCfg(d_model=16, n_layers=2),
    "lstm_bi": LSTMCfg(d_model=16, n_layers=2, bidirectional=True),
    "fpt": FPTCfg(),  # language-pretrained weights (see PRETRAINED)
    "fpt_random": FPTCfg(),
    "fpt_2_layers": FPTCfg(n_layers=2),
}
PRETRAINED = {"fpt", "fpt_2_layers"}
CAUSAL = [k for k, c in KINDS.items() if getattr(c, "causal", False) or k in ("s4d_inv_causal", "lstm")]


def batch(lengths, L, seed=0):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(2, V, (len(lengths), L), generator=g)
    mask = torch.arange(L)[None, :] < torch.tensor(lengths)[:, None]
    return tokens.masked_fill(~mask, PAD), mask


_cache = {}


def backbone(kind, seed=0):
    key = (kind, seed)
    if key not in _cache:  # FPT loads a 22M-parameter model: build each once per session
        _cache[key] = build_backbone(KINDS[kind], V, PAD, seed, pretrained=kind in PRETRAINED).eval()
    return _cache[key]


@pytest.mark.parametrize("kind", KINDS)
def test_shape_and_padding_invariance(kind):
    model = new_head(Classifier, backbone(kind), 10, 1).eval()
    tokens, mask = batch([7], 7)
    with torch.no_grad():
        alone = model(tokens, mask)
        other, other_mask = batch([19], 19, seed=1)
        padded = torch.cat([torch.cat([tokens, torch.full((1, 12), PAD)], 1), other])
        padded_mask = torch.cat([torch.cat([mask, torch.zeros(1, 12, dtype=torch.bool)], 1), other_mask])
        both = model(padded, padded_mask)
    assert both.shape == (2, 10)
    torch.testing.assert_close(both[:1], alone, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("kind", CAUSAL)
def test_causal_mixers_see_no_later_positions(kind):
    net = backbone(kind)
    tokens, mask = batch([16], 16)
    later = tokens.clone()
    later[0, 9:] = (later[0, 9:] + 3) % (V - 2) + 2  # change every position after 8
    with torch.no_grad():
        a, b = net(tokens, mask), net(later, mask)
    torch.testing.assert_close(a[:, :9], b[:, :9], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(a[:, 9:], b[:, 9:])


def _qkv(cfg, L=13, seed=0):
    torch.manual_seed(seed)
    x = torch.randn(2, L, cfg.d_model)
    _, mask = batch([L, 8], L)
    return x, mask


@pytest.mark.parametrize("causal", [False, True])
def test_sdpa_matches_explicit_softmax(causal):
    attn = SelfAttention(TransformerCfg(**T, causal=causal, positions="rotary"))
    x, mask = _qkv(TransformerCfg(**T))
    ref = attn.merge_heads(attention_ref(*attn.split_heads(x), mask, causal))
    real = mask[..., None].expand_as(x)  # causal and right-padded: the kernel's own mask, padded rows read padding
    torch.testing.assert_close(attn(x, mask)[real], ref[real], atol=1e-5, rtol=1e-5)
    left = mask.flip(1)  # padding first: the explicit mask
    ref = attn.merge_heads(attention_ref(*attn.split_heads(x), left, causal))
    real = left[..., None].expand_as(x)
    torch.testing.assert_close(attn(x, left)[real], ref[real], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_block_local_with_one_block_is_full_attention(causal):
    full = SelfAttention(TransformerCfg(**T, causal=causal))
    local = BlockLocalAttention(TransformerCfg(**T, causal=causal, block_size=32))
    local.load_state_dict(full.state_dict())
    x, mask = _qkv(TransformerCfg(**T))
    real = mask[..., None].expand_as(x)  # causal SDPA leaves padded rows reading padding
    torch.testing.assert_close(local(x, mask)[real], full(x, mask)[real], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_block_local_matches_banded_dense_reference(causal):
    local = BlockLocalAttention(TransformerCfg(**T, causal=causal, block_size=3))
    x, mask = _qkv(TransformerCfg(**T), L=14)
    q, k, v = local.split_heads(x)
    ref = local.merge_heads(block_local_ref(q, k, v, mask, 3, causal))
    torch.testing.assert_close(local(x, mask), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_las_without_decay_or_smoothing_is_plain_attention(causal):
    plain = SelfAttention(TransformerCfg(**T, causal=causal, positions="none"))
    las = LaSAttention(LaSCfg(**T, causal=causal, decay_max=0.0, pool=1))
    las.load_state_dict(plain.state_dict())
    x, mask = _qkv(TransformerCfg(**T))
    real = mask[..., None].expand_as(x)  # causal SDPA leaves padded rows reading padding
    torch.testing.assert_close(las(x, mask)[real], plain(x, mask)[real], atol=1e-5, rtol=1e-5)


def test_las_backbone_by_default_is_the_transformer_with_two_changes():
    """With decay and smoothing off, a default LaS backbone is the default Transformer backbone,
    positions included: LaS changes the attention and nothing else."""
    tokens = torch.randint(1, V, (3, 12))
    mask = torch.ones(3, 12, dtype=torch.bool)
    mask[0, 9:] = False
    plain = build_backbone(TransformerCfg(**T), V, PAD, seed=0).eval()
    las = build_backbone(LaSCfg(**T, decay_max=0.0, pool=1), V, PAD, seed=0).eval()
    las.load_state_dict(plain.state_dict())
    torch.testing.assert_close(las(tokens, mask), plain(tokens, mask), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_las_chunk_with_one_chunk_is_las(causal):
    las = LaSAttention(LaSCfg(**T, causal=causal, decay_max=0.3, pool=5))
    chunk = LaSChunkAttention(LaSChunkCfg(**T, causal=causal, decay_max=0.3, pool=5, chunk=64))
    chunk.load_state_dict(las.state_dict())
    x, mask = _qkv(TransformerCfg(**T))
    torch.testing.assert_close(chunk(x, mask), las(x, mask), atol=1e-6, rtol=1e-6)


def test_las_adds_no_parameters_and_spreads_decay_over_heads():
    assert count_parameters(LaSAttention(LaSCfg(**T))) == count_parameters(SelfAttention(TransformerCfg(**T)))
    rates = decay_rates(4, 0.1)
    assert rates[0] == 0 and torch.isclose(rates[-1], torch.tensor(0.1)) and (rates.diff() > 0).all()
    torch.testing.assert_close(decay_rates(2, 0.1), torch.tensor([0.0, 0.1]))


def las_loop_ref(q, k, v, mask, alphas, P, causal):
    """LaS written out element by element, for one small case."""
    B, H, L, E = q.shape
    out = torch.zeros_like(v)
    for b in range(B):
        for h in range(H):
            for i in range(L):
                ok = [bool(mask[b, j]) and (not causal or j <= i) for j in range(L)]
                s = [float(q[b, h, i] @ k[b, h, j]) / E ** 0.5 * math.exp(-float(alphas[h]) * abs(i - j)) for j in range(L)]
                top = max(s[j] for j in range(L) if ok[j])
                e = [math.exp(s[j] - top) if ok[j] else 0.0 for j in range(L)]
                w = [x / sum(e) for x in e]
                pooled = [sum(w[t] for t in range(j - P // 2, j + P // 2 + 1) if 0 <= t < L) / P if ok[j] else 0.0
                          for j in range(L)]
                out[b, h, i] = sum(pooled[j] * v[b, h, j] for j in range(L))
    return out


@pytest.mark.parametrize("causal", [False, True])
def test_las_matches_an_element_by_element_reference(causal):
    las = LaSAttention(LaSCfg(**T, causal=causal, decay_max=0.5, pool=3))
    x, mask = _qkv(TransformerCfg(**T), L=7)
    q, k, v = las.split_heads(x)
    with torch.no_grad():
        torch.testing.assert_close(las.attend(q, k, v, mask)[mask[:, None, :, None].expand_as(v)],
                                   las_loop_ref(q, k, v, mask, las.alphas, 3, causal)[mask[:, None, :, None].expand_as(v)],
                                   atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("pool", [1, 3, 5, 7])
@pytest.mark.parametrize("decay_max", [0.0, 0.3])
@pytest.mark.parametrize("lengths", [[13, 9, 2], [13, 13, 13]])
def test_fast_las_equals_its_materialized_twin_values_and_gradients(causal, pool, decay_max, lengths):
    """w P V = w (P V): pooled values instead of the pooled L x L matrix, with padding and the
    causal terms near the diagonal handled, agree with the paper's order of operations; with no
    padding the upper triangle is a plain flip instead of a gather."""
    g = torch.Generator().manual_seed(pool)
    B, H, L, E = 3, 4, 13, 8
    q, k, v = (torch.randn(B, H, L, E, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3))
    mask = torch.arange(L)[None] < torch.tensor(lengths)[:, None]
    alphas = decay_rates(H, decay_max).double()
    ref = las_attend_ref(q, k, v, mask, alphas, pool, causal)
    real = mask[:, None, :, None].expand_as(v)
    ref_grads = torch.autograd.grad((ref * real).sum(), (q, k, v))
    fasts = [las_attend(q, k, v, mask, decay_factor(alphas, L, E, "cpu", torch.float64), pool, causal),
             las_attend_sdpa(q, k, v, mask, alphas, pool, causal),  # through SDPA: log-sum-exps on CPU
             las_attend_sdpa(q, k, v, mask, alphas, pool, causal, sink=True)]  # and with a sink (CUDA)
    if decay_max == 0 and not causal:
        fasts.append(las_module.las_attend_global(q, k, v, mask, pool))  # no decay: one plain SDPA call
    for fast in fasts:
        torch.testing.assert_close(fast[real], ref[real], atol=1e-12, rtol=1e-10)
        for a, b in zip(torch.autograd.grad((fast * real).sum(), (q, k, v)), ref_grads):
            torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-8)


def test_las_heads_without_decay_are_one_sdpa_call_with_padding_and_under_bf16():
    """Head 0 (alpha 0) is plain attention on pooled values: equal to the dense path with a factor
    of 1 / sqrt(E), a sequence of padding only included, and in fp32 under bf16 autocast, as the
    other heads. An unpadded mask mirrors by flip: no gather indices."""
    g = torch.Generator().manual_seed(5)
    B, H, L, E = 3, 2, 11, 8
    q, k, v = (torch.randn(B, H, L, E, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3))
    mask = torch.arange(L)[None] < torch.tensor([11, 4, 0])[:, None]
    real = mask[:, None, :, None].expand_as(v)
    for pool in (1, 3, 5):
        y = las_module.las_attend_global(q, k, v, mask, pool)
        ref = las_attend(q, k, v, mask, decay_factor(torch.zeros(H), L, E, "cpu", torch.float64), pool, False)
        assert torch.isfinite(y).all()
        torch.testing.assert_close(y[real], ref[real], atol=1e-12, rtol=1e-10)
        for a, b in zip(torch.autograd.grad((y * real).sum(), (q, k, v)), torch.autograd.grad((ref * real).sum(), (q, k, v))):
            torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)
    q32, k32, v32 = (t.detach().float() for t in (q, k, v))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = las_module.las_attend_global(q32, k32, v32, mask, 3)
    assert low.dtype == torch.float32  # the input's dtype, computed in it
    torch.testing.assert_close(low, las_module.las_attend_global(q32, k32, v32, mask, 3))
    assert las_module.mirror(torch.ones(2, 5, dtype=torch.bool)) is None
    assert las_module.mirror(mask).tolist()[1][:6] == [3, 2, 1, 0, 4, 5]


@pytest.mark.parametrize("causal", [False, True])
def test_las_sends_long_sequences_through_sdpa_and_keeps_far_decaying_heads_dense(causal, monkeypatch):
    """From SDPA_FROM positions on, heads whose decay separates within fp32 run through SDPA and
    the others stay dense; the heads come back in their order, and a float32 run at L 600 with
    the default B 0.1 (a L = 60) agrees with the reference."""
    las = LaSAttention(LaSCfg(**T, causal=causal, decay_max=0.3, pool=3))
    x, mask = _qkv(TransformerCfg(**T), L=13)
    q, k, v = las.split_heads(x)
    ref = las_attend_ref(q, k, v, mask, las.alphas, 3, causal)
    real = mask[:, None, :, None].expand_as(v)
    calls = []
    for name in ("las_attend", "las_attend_sdpa", "las_attend_global"):
        fn = getattr(las_module, name)
        monkeypatch.setattr(las_module, name, lambda *a, fn=fn, name=name: calls.append((name, a[0].shape[1])) or fn(*a))
    monkeypatch.setattr(las_module, "SDPA_FROM", 8)
    monkeypatch.setattr(las_module, "SEPARABLE", 0.3 * 12 * 0.5)  # the fastest-decaying head (a = 0.3) stays dense
    torch.testing.assert_close(las.attend(q, k, v, mask)[real], ref[real], atol=1e-5, rtol=1e-4)
    H = T["n_heads"]  # bidirectional, head 0 (no decay) is one plain call
    assert sorted(calls) == ([("las_attend", 1), ("las_attend_sdpa", H - 1)] if causal else
                             [("las_attend", 1), ("las_attend_global", 1), ("las_attend_sdpa", H - 2)])
    monkeypatch.undo()
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 4, 600, 16, generator=g) for _ in range(3))
    mask = torch.arange(600)[None] < torch.tensor([600, 450])[:, None]
    las = LaSAttention(LaSCfg(d_model=64, n_layers=1, n_heads=4, causal=causal))  # the default decay_max and pool
    with torch.no_grad():
        fast, ref = las.attend(q, k, v, mask), las_attend_ref(q, k, v, mask, las.alphas, las.pool, causal)
    real = mask[:, None, :, None].expand_as(v)
    torch.testing.assert_close(fast[real], ref[real], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("pool", [1, 3, 5])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_banded_las_equals_its_materialized_twin_values_and_gradients(causal, pool, dtype):
    """Fast-decaying heads in O(L W): a dense band of W keys either side, and every key beyond it
    (decayed score within rounding of 0, weight exactly e^0) as one far column per block. With
    padding, an all-padding sequence, and far keys on both sides of most blocks, values and
    gradients agree with the materialized reference to the dtype's rounding."""
    g = torch.Generator().manual_seed(pool)
    B, H, L, E = 3, 2, 240, 8
    q, k, v = (torch.randn(B, H, L, E, generator=g, dtype=dtype, requires_grad=True) for _ in range(3))
    mask = torch.arange(L)[None] < torch.tensor([L, 100, 0])[:, None]
    alphas = torch.tensor([1.5, 3.0], dtype=dtype)
    width = las_module.band_width(q, k, alphas)
    assert 3 * width < L / 2  # most blocks have far keys on both sides
    y = las_module.las_attend_band(q, k, v, mask, alphas, pool, causal, width)
    assert torch.isfinite(y).all()
    ref = las_attend_ref(q, k, v, mask, alphas, pool, causal)
    real = mask[:, None, :, None].expand_as(v)
    w = torch.randn(B, H, L, E, generator=g, dtype=dtype) * real
    tol = dict(atol=1e-12, rtol=1e-10) if dtype == torch.float64 else dict(atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(y[real], ref[real], **tol)
    for a, b in zip(torch.autograd.grad((y * w).sum(), (q, k, v)), torch.autograd.grad((ref * w).sum(), (q, k, v))):
        torch.testing.assert_close(a, b, **tol)
    narrow = las_module.las_attend_band(q, k, v, mask, alphas, pool, causal, 2)  # too narrow: scores not yet 0
    assert (narrow - ref)[real].abs().max() > 50 * tol["atol"]


@pytest.mark.parametrize("causal", [False, True])
def test_las_bands_heads_whose_decay_leaves_fp32(causal, monkeypatch):
    """From SDPA_FROM positions, a head with alpha (L - 1) > SEPARABLE runs banded when its band is
    narrow (a = 1 at L 600: W ~ 20) and the others through SDPA; heads come back in their order."""
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(2, 4, 600, 16, generator=g, requires_grad=True) for _ in range(3))
    mask = torch.arange(600)[None] < torch.tensor([600, 450])[:, None]
    las = LaSAttention(LaSCfg(d_model=64, n_layers=1, n_heads=4, causal=causal, decay_max=1.0, pool=3))
    calls = []
    for name in ("las_attend", "las_attend_sdpa", "las_attend_band", "las_attend_global"):
        fn = getattr(las_module, name)
        monkeypatch.setattr(las_module, name, lambda *a, fn=fn, name=name: calls.append((name, a[0].shape[1])) or fn(*a))
    fast = las.attend(q, k, v, mask)
    assert sorted(calls) == ([("las_attend_band", 1), ("las_attend_sdpa", 3)] if causal else
                             [("las_attend_band", 1), ("las_attend_global", 1), ("las_attend_sdpa", 2)])
    ref = las_attend_ref(q, k, v, mask, las.alphas, las.pool, causal)
    real = mask[:, None, :, None].expand_as(v)
    torch.testing.assert_close(fast[real], ref[real], atol=2e-5, rtol=1e-4)
    w = torch.randn(2, 4, 600, 16, generator=g) * real
    for a, b in zip(torch.autograd.grad((fast * w).sum(), (q, k, v)), torch.autograd.grad((ref * w).sum(), (q, k, v))):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)


def test_banded_las_holds_wide_pools_non_finite_inputs_and_bf16_autocast(monkeypatch):
    """Causal pooling reaches pool // 2 keys ahead: a pool wider than the reach widens the band
    (pool 61, W ~ 20). A NaN in q makes the reach unknowable: the head goes dense and the NaN
    shows in the output (the loop then reports divergence) instead of an exception. Under bf16
    autocast the band's counts and prefix sums stay fp32."""
    g = torch.Generator().manual_seed(4)
    q, k, v = (torch.randn(1, 2, 600, 16, generator=g) for _ in range(3))
    mask = torch.arange(600)[None] < torch.tensor([560])[:, None]
    real = mask[:, None, :, None].expand_as(v)
    las = LaSAttention(LaSCfg(d_model=32, n_layers=1, n_heads=2, causal=True, decay_max=1.0, pool=61))
    band = las_module.las_attend_band
    widths = []
    monkeypatch.setattr(las_module, "las_attend_band", lambda *a: widths.append(a[-1]) or band(*a))
    with torch.no_grad():
        torch.testing.assert_close(las.attend(q, k, v, mask)[real],
                                   las_attend_ref(q, k, v, mask, las.alphas, 61, True)[real], atol=2e-5, rtol=1e-4)
        assert widths == [30]
        bad = q.clone()
        bad[0, 1, 7, 3] = float("nan")
        assert las.attend(bad, k, v, mask)[:, 1].isnan().any() and widths == [30]  # dense, not banded
        alphas = torch.tensor([1.0])
        width = las_module.band_width(q[:, 1:], k[:, 1:], alphas)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast = band(q[:, 1:].bfloat16(), k[:, 1:].bfloat16(), v[:, 1:].bfloat16(), mask, alphas, 3, False, width)
        assert fast.dtype == torch.bfloat16
        ref = las_attend_ref(*(t[:, 1:].bfloat16().float() for t in (q, k, v)), mask, alphas, 3, False)
        torch.testing.assert_close(fast.float()[real[:, 1:]], ref[real[:, 1:]], atol=5e-4, rtol=0.0)  # |y| < 0.2: bf16 output rounding


@pytest.mark.parametrize("causal", [False, True])
def test_las_through_sdpa_survives_huge_scores_and_bf16_autocast(causal):
    """Scores near 100 would underflow the sink's weight: that call falls back to the dense path.
    Under bf16 autocast the factors and masses stay fp32, so the decay is not rounded."""
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, 4, 40, 8, generator=g) for _ in range(3))
    mask = torch.arange(40)[None] < torch.tensor([40, 31])[:, None]
    alphas = decay_rates(4, 0.1)
    real = mask[:, None, :, None].expand_as(v)
    big = q * 40.0  # row maxima of the scores far above 75
    ref = las_attend_ref(big, k, v, mask, alphas, 3, causal)
    for sink in (False, True):
        fast = las_attend_sdpa(big, k, v, mask, alphas, 3, causal, sink=sink)
        assert torch.isfinite(fast).all()  # padded rows included
        torch.testing.assert_close(fast[real], ref[real], atol=1e-4, rtol=1e-4)
    # long enough that bf16 would round the positions (i - c up to +-300) and thereby the decay
    q, k, v = (torch.randn(2, 4, 600, 8, generator=g) * s for s in (3.0, 3.0, 1.0))
    mask = torch.arange(600)[None] < torch.tensor([600, 591])[:, None]
    real = mask[:, None, :, None].expand_as(v)
    qb, kb, vb = (t.bfloat16() for t in (q, k, v))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast = las_attend_sdpa(qb, kb, vb, mask, alphas, 3, causal)
    assert fast.dtype == torch.bfloat16
    ref = las_attend_ref(qb.float(), kb.float(), vb.float(), mask, alphas, 3, causal)
    torch.testing.assert_close(fast.float()[real], ref[real], atol=2e-2, rtol=2e-2)  # bf16 output rounding only


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("pool", [1, 3, 5, 15])
def test_pooled_values_are_avg_pool1d_bit_for_bit(pool, dtype):
    """Shifted slices summed in avg_pool1d's order, in fp32 for bf16 input: the bits of fp32
    avg_pool1d (rounded once to bf16), forward and backward, so the fast pooling changes no fp32
    result; padded values are zeroed first."""
    g = torch.Generator().manual_seed(pool)
    B, H, L, E = 3, 2, 37, 8
    v = torch.randn(B, L, 3, H, E, generator=g).to(dtype).permute(2, 0, 3, 1, 4)[2].requires_grad_()  # as split_heads
    v32 = v.detach().float().requires_grad_()
    mask = torch.arange(L)[None] < torch.tensor([L, 20, 1])[:, None]
    kv = (v32 * mask[:, None, :, None]).permute(0, 1, 3, 2).reshape(B * H * E, 1, L)
    ref = torch.nn.functional.avg_pool1d(kv, pool, stride=1, padding=pool // 2).view(B, H, E, L).permute(0, 1, 3, 2)
    fast = las_module.pool_values(v, mask, pool)
    assert fast.dtype == dtype and torch.equal(fast, ref.to(dtype))
    w = torch.randn(B, H, L, E, generator=g).to(dtype)
    assert torch.equal(torch.autograd.grad(fast, v, w)[0], torch.autograd.grad(ref, v32, w.float())[0].to(dtype))


def test_mirror_reverses_each_sequence_and_leaves_its_padding_in_place():
    mask = torch.arange(6)[None] < torch.tensor([6, 4, 0, 1])[:, None]
    idx = las_module.mirror(mask)
    assert idx.tolist() == [[5, 4, 3, 2, 1, 0], [3, 2, 1, 0, 4, 5], [0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5]]
    assert torch.equal(idx.gather(1, idx), torch.arange(6).expand(4, 6))  # its own inverse


@pytest.mark.parametrize("causal", [False, True])
def test_las_on_cpu_reads_masses_from_flash_log_sum_exps(causal, monkeypatch):
    """On CPU the SDPA path never builds the sink channel: bidirectional, two causal flash calls
    joined by their log-sum-exps; causal, one call whose log-sum-exp gives the weights next to
    the diagonal (pool 3), its gradient included. In fp32 at L 1024 with the fastest head at
    a (L - 1) = 150 (SEPARABLE, factors up to e^75, masked scores beyond fp32) and padding, values
    and gradients agree with the materialized reference; every row, padded ones included, stays
    finite."""
    monkeypatch.setattr(las_module, "_sdpa_part", lambda *a, **k: pytest.fail("the sink path ran"))
    g = torch.Generator().manual_seed(5)
    B, H, L, E = 2, 3, 1024, 16
    q, k, v = (torch.randn(B, H, L, E, generator=g, requires_grad=True) for _ in range(3))
    mask = torch.arange(L)[None] < torch.tensor([L, 700])[:, None]
    alphas = torch.tensor([0.0, 0.01, las_module.SEPARABLE / (L - 1)])
    real = mask[:, None, :, None].expand_as(v)
    w = torch.randn(B, H, L, E, generator=g) * real
    fast = las_attend_sdpa(q, k, v, mask, alphas, 3, causal)
    assert torch.isfinite(fast).all()
    ref = las_attend_ref(q, k, v, mask, alphas, 3, causal)
    torch.testing.assert_close(fast[real], ref[real], atol=2e-5, rtol=1e-4)
    for a, b in zip(torch.autograd.grad((fast * w).sum(), (q, k, v)), torch.autograd.grad((ref * w).sum(), (q, k, v))):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)


def test_bidirectional_las_on_cpu_keeps_padded_rows_finite_and_left_padding_correct(monkeypatch):
    """Padded rows: a loss that reads them (a(L-1) = 150, so a padded query's upper part meets
    factor products beyond fp32) still gives finite gradients; an all-padding sequence stays
    finite too. A mask with padding before a real position is not mirrored: it takes the sink
    path and agrees with the reference."""
    g = torch.Generator().manual_seed(7)
    B, H, L, E = 3, 2, 64, 8
    q, k, v = (torch.randn(B, H, L, E, generator=g, requires_grad=True) for _ in range(3))
    alphas = torch.tensor([0.0, las_module.SEPARABLE / (L - 1)])
    mask = torch.arange(L)[None] < torch.tensor([L, 10, 0])[:, None]
    real = mask[:, None, :, None].expand_as(v)
    calls = []
    sink_part = las_module._sdpa_part
    monkeypatch.setattr(las_module, "_sdpa_part", lambda *a, **kw: calls.append(1) or sink_part(*a, **kw))
    y = las_attend_sdpa(q, k, v, mask, alphas, 3, False)
    assert torch.isfinite(y).all() and not calls
    for grad in torch.autograd.grad(y.sum(), (q, k, v)):  # padded rows weighted too
        assert torch.isfinite(grad).all()
    ref = las_attend_ref(q, k, v, mask, alphas, 3, False)
    torch.testing.assert_close(y[real], ref[real], atol=2e-5, rtol=1e-4)
    left = mask.flip(1)  # padding first
    real = left[:, None, :, None].expand_as(v)
    y = las_attend_sdpa(q, k, v, left, alphas, 3, False)
    assert calls  # the sink path
    torch.testing.assert_close(y[real], las_attend_ref(q, k, v, left, alphas, 3, False)[real], atol=2e-5, rtol=1e-4)


def test_causal_las_on_cpu_keeps_padded_rows_finite(monkeypatch):
    """Causal through one flash call: a loss that reads padded rows (their gradient reaches the
    log-sum-exp too) and an all-padding sequence give finite values and gradients, the real rows
    equal to the reference's. Rows whose incoming gradient is tiny (1e-30) or huge (1e20: |dO|^2
    would under- or overflow fp32) keep the log-sum-exp's share of the gradient."""
    monkeypatch.setattr(las_module, "_sdpa_part", lambda *a, **k: pytest.fail("the sink path ran"))
    g = torch.Generator().manual_seed(8)
    B, H, L, E = 3, 2, 64, 8
    q, k, v = (torch.randn(B, H, L, E, generator=g, requires_grad=True) for _ in range(3))
    mask = torch.arange(L)[None] < torch.tensor([L, 10, 0])[:, None]
    real = mask[:, None, :, None].expand_as(v)
    alphas = torch.tensor([0.0, las_module.SEPARABLE / (L - 1)])
    y = las_attend_sdpa(q, k, v, mask, alphas, 5, True)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y[real], las_attend_ref(q, k, v, mask, alphas, 5, True)[real], atol=2e-5, rtol=1e-4)
    for grad in torch.autograd.grad((y * torch.randn(B, H, L, E, generator=g)).sum(), (q, k, v)):  # padded rows too
        assert torch.isfinite(grad).all()
    alphas = torch.tensor([0.0, 0.05])
    scale = torch.ones(B, H, L, 1)
    scale[0, :, :8], scale[1, :, :8] = 1e-30, 1e20
    w = torch.randn(B, H, L, E, generator=g) * scale * real
    fast = torch.autograd.grad((las_attend_sdpa(q, k, v, mask, alphas, 5, True) * w).sum(), q)[0]
    ref = torch.autograd.grad((las_attend_ref(q, k, v, mask, alphas, 5, True) * w).sum(), q)[0]
    assert torch.isfinite(fast).all()
    for b in (0, 1):  # dq of a row depends on that row's dO only: compare each scaled block at its own size
        torch.testing.assert_close(fast[b, :, :8] / scale[b, 0, 0], ref[b, :, :8] / scale[b, 0, 0], atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(fast[:, :, 8:], ref[:, :, 8:], atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("causal", [False, True])
def test_las_chunk_is_las_on_each_chunk(causal):
    chunked = LaSChunkAttention(LaSChunkCfg(**T, causal=causal, decay_max=0.3, pool=3, chunk=5, positions="none"))
    x, mask = _qkv(TransformerCfg(**T), L=13)
    q, k, v = chunked.split_heads(x)
    with torch.no_grad():
        expected = torch.cat([chunked.attend(q[:, :, i:i + 5], k[:, :, i:i + 5], v[:, :, i:i + 5], mask[:, i:i + 5])
                              for i in range(0, 13, 5)], dim=2)
        got = chunked(x, mask)
    real = mask[..., None].expand_as(got)
    torch.testing.assert_close(got[real], chunked.merge_heads(expected)[real], atol=1e-5, rtol=1e-5)


def test_s4d_inv_initialisation_values():
    layer = S4D(S4DCfg(d_model=2, d_state=8, init="inv"))
    n = torch.arange(4).float()
    expected = 8 / math.pi * (8 / (2 * n + 1) - 1)  # N = d_state = 8, modes n = 0..3
    torch.testing.assert_close(layer.kernel.A_imag.detach()[0], expected)
    assert (layer.kernel.A_imag > 0).all()


def test_rotary_scores_depend_on_relative_position_only():
    q, k = torch.randn(1, 1, 1, 8).expand(1, 1, 20, 8), torch.randn(1, 1, 1, 8).expand(1, 1, 20, 8)
    cos, sin = rotary_tables(20, 8, torch.device("cpu"))
    s = torch.einsum("bhie, bhje -> ij", apply_rotary(q, cos, sin), apply_rotary(k, cos, sin))
    torch.testing.assert_close(s[3, 1], s[10, 8], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(s[2, 7], s[12, 17], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cfg", [S4DCfg(d_model=8, d_state=8, init="inv"), S4DCfg(d_model=8, d_state=8, bidirectional=False),
                                 DLRCfg(d_model=8, d_state=8), DLRCfg(d_model=8, d_state=8, bidirectional=False)],
                         ids=["s4d_inv", "s4d_causal", "dlr", "dlr_causal"])
def test_ssm_fft_matches_recurrence(cfg):
    torch.manual_seed(0)
    layer = S4D(cfg)
    u = torch.randn(2, 8, 19)
    with torch.no_grad():
        torch.testing.assert_close(ssm_conv(u, layer.kernels(19)), ssm_recurrence_ref(layer.kernel, u),
                                   atol=1e-4, rtol=1e-4)


def test_kernels_are_returned_per_layer():
    ks = ssm_kernels(backbone("s4d"), 32)
    assert len(ks) == 2 and ks[0].shape == (2, 16, 32)
    assert ssm_kernels(backbone("transformer"), 32) == []


def test_random_init_draws_every_parameter_from_normal_0_1():
    values = torch.cat([p.detach().flatten() for p in backbone("s4d_rand").parameters()])
    assert abs(values.mean()) < 0.01 and abs(values.std() - 0.1) < 0.01
    structured = backbone("s4d")
    assert structured.blocks[0].mixer.kernel.log_A_real.detach().exp().allclose(torch.tensor(0.5))


def test_fpt_trains_only_embedding_head_norms_positions():
    model = new_head(Classifier, build_backbone(FPTCfg(), V, PAD, 0, pretrained=True).freeze(), 10, 1)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert "backbone.embed.weight" in trainable and "head.weight" in trainable
    assert all(("LayerNorm" in n or "position_embeddings" in n or not n.startswith("backbone.lm"))
               for n in trainable)
    assert any("position_embeddings" in n for n in trainable)
    from components.training.optim import build_optimizer

    ln = "backbone.lm.encoder.layer.0.output.LayerNorm.weight"
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = build_optimizer(model, 1e-2, 0.01, (0.9, 0.98))
    tokens, mask = batch([9, 12], 12)
    torch.nn.functional.cross_entropy(model(tokens, mask), torch.tensor([1, 2])).backward()
    assert all(p.grad is None for p in model.parameters() if not p.requires_grad)
    opt.step()
    after = dict(model.named_parameters())
    assert not torch.equal(after[ln], before[ln])
    assert all(torch.equal(after[n], before[n]) for n in before if n not in trainable)


def test_fpt_groups_unfreeze_attention_and_feedforward():
    both = build_backbone(FPTCfg(train=["norms", "positions", "attention", "feedforward"]), V, PAD, 0).freeze()
    names = {n for n, p in both.named_parameters() if p.requires_grad}
    assert any("attention.self.query" in n for n in names) and any("intermediate.dense" in n for n in names)
    assert any(n.endswith("layer.0.output.dense.weight") for n in names)
    assert not any("word_embeddings" in n for n in names)


def test_fpt_random_weights_differ_from_pretrained_and_follow_the_seed():
    pre, rnd = backbone("fpt"), backbone("fpt_random")
    w = "lm.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(pre.state_dict()[w], rnd.state_dict()[w])
    again = build_backbone(KINDS["fpt_random"], V, PAD, 0)
    assert torch.equal(again.state_dict()[w], rnd.state_dict()[w])


def test_fpt_unfrozen_trains_every_used_weight_and_n_layers_keeps_the_first_blocks():
    full = build_backbone(FPTCfg(), V, PAD, 0, pretrained=True)
    frozen_names = {n for n, p in full.named_parameters() if not p.requires_grad}
    assert frozen_names == {"lm.embeddings.word_embeddings.weight", "lm.pooler.dense.weight",
                            "lm.pooler.dense.bias"}  # never in the forward pass
    rnd = backbone("fpt_random")
    assert torch.equal(full.embed.weight, rnd.embed.weight)  # pretrained or random LM: the same input embedding
    short = backbone("fpt_2_layers")
    assert len(short.lm.encoder.layer) == 2
    w = "lm.encoder.layer.1.attention.self.query.weight"
    assert torch.equal(short.state_dict()[w], full.state_dict()[w])  # the pretrained blocks, not random ones


def test_pretrained_weights_only_for_language_models():
    with pytest.raises(ValueError, match="no language-pretrained weights"):
        build_backbone(KINDS["transformer"], V, PAD, 0, pretrained=True)


def test_gpt2_loads_from_a_local_directory(tmp_path):
    from transformers import GPT2Config, GPT2Model

    GPT2Model(GPT2Config(n_layer=1, n_embd=16, n_head=2, n_positions=64, vocab_size=50)).save_pretrained(tmp_path)
    net = build_backbone(FPTCfg(backbone="gpt2", path=str(tmp_path)), V, PAD, 0, pretrained=True).freeze()
    tokens, mask = batch([5, 9], 9)
    assert net(tokens, mask).shape == (2, 9, 16)
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert "lm.wpe.weight" in trainable and "lm.h.0.ln_1.weight" in trainable
    assert "lm.h.0.attn.c_attn.weight" not in trainable and "lm.h.0.mlp.c_fc.weight" not in trainable


def test_missing_gpt2_directory_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a local Hugging Face model directory"):
        build_backbone(FPTCfg(backbone="gpt2", path=str(tmp_path / "gpt2")), V, PAD, 0)
