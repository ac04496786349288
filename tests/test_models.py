import pytest
import torch

from components.config import DLRCfg, S4DCfg, TransformerCfg
from components.models import build_backbone
from components.models.s4d import S4D, s4d_kernel_ref, ssm_conv, ssm_recurrence_ref
from components.training.optim import param_groups

ARCHS = {"transformer": TransformerCfg(d_model=16, n_layers=2, n_heads=2),
         "s4d": S4DCfg(d_model=16, n_layers=2, d_state=8)}
V, PAD = 17, 0


@pytest.mark.parametrize("arch", ARCHS)
def test_same_seed_same_weights(arch):
    a, b = build_backbone(ARCHS[arch], V, PAD, seed=5), build_backbone(ARCHS[arch], V, PAD, seed=5)
    c = build_backbone(ARCHS[arch], V, PAD, seed=6)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_s4d_fft_matches_recurrence():
    torch.manual_seed(0)
    layer = S4D(ARCHS["s4d"])
    u = torch.randn(2, 16, 21)  # (B, D, L)
    k = layer.kernels(21)
    with torch.no_grad():
        torch.testing.assert_close(ssm_conv(u, k), ssm_recurrence_ref(layer.kernel, u), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("cfg", [S4DCfg(d_model=8, d_state=16), S4DCfg(d_model=8, d_state=16, bidirectional=False),
                                 S4DCfg(d_model=8, d_state=16, rand_init=True), DLRCfg(d_model=8, d_state=16)],
                         ids=["s4d", "s4d_causal", "s4d_rand", "dlr"])
@pytest.mark.parametrize("L", [1, 2, 15, 16, 17, 200])  # T = ceil(sqrt L) tiles: exact squares and one past
def test_chunked_kernel_matches_the_vandermonde_reference_with_gradients(cfg, L):
    torch.manual_seed(0)
    kernel = S4D(cfg).kernel
    if cfg.rand_init:  # as build_backbone does: every parameter ~ N(0, 0.1)
        with torch.no_grad():
            for p in kernel.parameters():
                p.normal_(0.0, 0.1)
    fast, ref = kernel(L), s4d_kernel_ref(kernel, L)  # (C, D, L)
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-4)
    w = torch.randn_like(ref)
    g_fast = torch.autograd.grad((fast * w).sum(), list(kernel.parameters()))
    g_ref = torch.autograd.grad((ref * w).sum(), list(kernel.parameters()))
    for a, b in zip(g_fast, g_ref):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_s4d_backward_direction_sees_only_later_inputs():
    layer = S4D(ARCHS["s4d"])
    k = layer.kernels(10).detach()
    k[0] = 0  # keep only the backward kernel
    u = torch.zeros(1, 16, 10)
    u[..., 4] = 1.0
    y = ssm_conv(u, k)
    assert torch.allclose(y[..., 4:], torch.zeros_like(y[..., 4:]), atol=1e-6)
    assert y[..., :4].abs().sum() > 0


def test_ssm_parameters_get_their_own_lr_and_no_weight_decay():
    cfg = ARCHS["s4d"]
    model = build_backbone(cfg, V, PAD, seed=0)
    groups = param_groups(model, lr=5e-3, weight_decay=0.01)
    by_param = {id(p): g for g in groups for p in g["params"]}
    for name, p in model.named_parameters():
        g = by_param[id(p)]
        if name.split(".")[-1] in ("log_dt", "C", "log_A_real", "A_imag"):
            assert (g["lr"], g["weight_decay"]) == (cfg.ssm_lr, 0.0), name
        elif p.ndim >= 2:
            assert (g["lr"], g["weight_decay"]) == (5e-3, 0.01), name
        else:
            assert (g["lr"], g["weight_decay"]) == (5e-3, 0.0), name
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_s4d_kernel_and_convolution_stay_fp32_under_bf16_autocast():
    """CUDA's FFT takes no bf16; the kernel's GEMM must not be rounded by autocast either."""
    torch.manual_seed(0)
    layer = S4D(S4DCfg(d_model=8, d_state=16))
    exact = layer.kernel(300)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        k = layer.kernel(300)
        y = ssm_conv(torch.randn(2, 8, 300).bfloat16(), k)
    assert k.dtype == torch.float32 and y.dtype == torch.float32
    torch.testing.assert_close(k, exact)
