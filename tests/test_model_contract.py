"""Coverage guard: every architecture kind in the config passes one shared model contract.

The kinds are discovered from the config's discriminated union `ArchCfg` (never hand-listed), so a
new kind without a builder, or a builder without a kind, fails here; and every discovered kind is
built from its class defaults, shrunk generically, and checked for:

1. shape: backbone (B, L, D) finite, classifier (B, K);
2. backward: every trainable parameter gets a finite gradient, and some gradient is non-zero;
3. causality: causal variants (per `is_causal`) ignore later tokens; non-causal ones do not;
4. determinism: a seed fixes weights and outputs; another seed gives other weights.

Each kind is covered in its default form and, where the config has a causal switch (`causal`,
`bidirectional`), with that switch flipped. All on CPU, tiny sizes.
"""
from __future__ import annotations

import typing
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F

from components.config import ArchCfg
from components.models import BUILDERS, Classifier, build_backbone, new_head

try:
    from components.grid import is_causal
except ImportError:  # the grid helpers may move
    from components.spec import is_causal

V, PAD = 17, 0  # vocabulary and pad id as the tasks use them: pad 0, real tokens 2..V-1
N_CLASSES = 3
SEED, OTHER_SEED = 0, 1

# Generic shrinking: applied only where the kind's config has the field.
SHRINK = {"d_model": 16, "n_layers": 2, "n_heads": 2, "d_state": 8, "chunk": 4}
SHRINK_BY_KIND = {"fpt": {"n_layers": 1}}  # a 22M-parameter language model: keep one block
# Optional fields whose default (None) turns a mode off; a variant switches the mode on.
MODES = {"block_size": 4}
# Causal switches (attention kinds: `causal`; SSMs and LSTM: `bidirectional`): each is flipped.
CAUSAL_SWITCHES = ("causal", "bidirectional")


def _arch_classes() -> list[type]:
    union, *_ = typing.get_args(ArchCfg)  # Annotated[Union[...], Field(discriminator="kind")]
    classes = list(typing.get_args(union)) or [union]
    assert classes and all(isinstance(c, type) and "kind" in c.model_fields for c in classes), classes
    return classes


def _kind(cls: type) -> str:
    return cls.model_fields["kind"].default


ARCH_CLASSES = _arch_classes()
KINDS = [_kind(c) for c in ARCH_CLASSES]


@dataclass(frozen=True)
class Variant:
    id: str
    cfg: object
    causal: bool  # what components.grid.is_causal says

    @property
    def kind(self) -> str:
        return self.cfg.kind


def _tiny(cls: type, **extra) -> object:
    fields = cls.model_fields
    shrink = {**SHRINK, **SHRINK_BY_KIND.get(_kind(cls), {})}
    kwargs = {k: v for k, v in shrink.items() if k in fields}
    return cls(**kwargs, **extra)


def _variants() -> list[Variant]:
    out = []
    for cls in ARCH_CLASSES:
        kind, fields = _kind(cls), cls.model_fields
        modes = [{}] + [{f: v} for f, v in MODES.items() if f in fields and fields[f].default is None]
        for mode in modes:
            name = kind + "".join(f"-{f}" for f in mode)
            switches = [{}] + [{f: (not fields[f].default)} for f in CAUSAL_SWITCHES if f in fields]
            for switch in switches:
                cfg = _tiny(cls, **mode, **switch)
                causal = is_causal(cfg)
                label = ("-causal" if causal else "-noncausal") if switch else ""
                out.append(Variant(name + label, cfg, causal))
    return out


VARIANTS = _variants()
IDS = [v.id for v in VARIANTS]


def batch(lengths, L, seed=0):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(2, V, (len(lengths), L), generator=g)
    mask = torch.arange(L)[None, :] < torch.tensor(lengths)[:, None]
    return tokens.masked_fill(~mask, PAD), mask


_cache: dict = {}


def backbone(v: Variant, seed: int = SEED, replica: int = 0):
    """Built once per session per (variant, seed, replica): FPT's language model is large."""
    key = (id(v), seed, replica)
    if key not in _cache:
        _cache[key] = build_backbone(v.cfg, V, PAD, seed, pretrained=False)
    net = _cache[key]
    for p in net.parameters():
        p.grad = None
    return net


# ---------------------------------------------------------------------------------------------
# coverage


def test_every_config_kind_has_a_builder_and_every_builder_a_kind():
    assert len(KINDS) == len(set(KINDS)), f"a kind appears twice in ArchCfg: {KINDS}"
    assert set(KINDS) - set(BUILDERS) == set(), "kinds in ArchCfg without a builder in components.models.BUILDERS"
    assert set(BUILDERS) - set(KINDS) == set(), "builders in components.models.BUILDERS for no kind in ArchCfg"


def test_every_kind_is_covered_with_each_side_of_its_causal_switch():
    covered = {v.kind for v in VARIANTS}
    assert len(IDS) == len(set(IDS)), f"variants share an id: {IDS}"
    assert covered == set(KINDS)
    for cls in ARCH_CLASSES:
        sides = {v.causal for v in VARIANTS if v.kind == _kind(cls)}
        if any(f in cls.model_fields for f in CAUSAL_SWITCHES):
            assert sides == {True, False}, f"{_kind(cls)}: its causal switch does not change is_causal"


# ---------------------------------------------------------------------------------------------
# the contract


@pytest.mark.parametrize("v", VARIANTS, ids=IDS)
def test_shapes_and_finite_outputs(v):
    net = backbone(v).eval()
    L = 12
    tokens, mask = batch([L, 7, 3], L)
    with torch.no_grad():
        h = net(tokens, mask)
    D = net.d_model
    if "d_model" in type(v.cfg).model_fields:
        assert D == v.cfg.d_model
    assert h.shape == (3, L, D)
    assert torch.isfinite(h).all()
    model = new_head(Classifier, net, N_CLASSES, SEED).eval()
    with torch.no_grad():
        logits = model(tokens, mask)
    assert logits.shape == (3, N_CLASSES)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("v", VARIANTS, ids=IDS)
def test_backward_reaches_every_trainable_parameter(v):
    model = new_head(Classifier, backbone(v), N_CLASSES, SEED).train()
    tokens, mask = batch([10, 6], 10, seed=2)
    loss = F.cross_entropy(model(tokens, mask), torch.tensor([0, 2]))
    loss.backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trainable
    missing = [n for n, p in trainable if p.grad is None]
    assert not missing, f"no gradient reaches {missing}"
    bad = [n for n, p in trainable if not torch.isfinite(p.grad).all()]
    assert not bad, f"non-finite gradient in {bad}"
    backbone_norm = sum(float(p.grad.norm()) for n, p in trainable if n.startswith("backbone."))
    assert backbone_norm > 0
    for p in model.parameters():
        p.grad = None


def _later_token_effects(net, L=12):
    """For each t: the largest change in outputs at positions <= t when every token after t
    changes, and the change at positions > t. Full-length rows (no padding)."""
    tokens, mask = batch([L, L], L, seed=3)
    earlier, later = [], []
    with torch.no_grad():
        base = net(tokens, mask)
        for t in range(L - 1):
            changed = tokens.clone()
            changed[:, t + 1:] = (changed[:, t + 1:] - 2 + 1 + t % 3) % (V - 2) + 2  # another real token
            assert (changed[:, t + 1:] != tokens[:, t + 1:]).all()
            out = net(changed, mask)
            earlier.append(float((out[:, :t + 1] - base[:, :t + 1]).abs().max()))
            later.append(float((out[:, t + 1:] - base[:, t + 1:]).abs().max()))
    return earlier, later


@pytest.mark.parametrize("v", VARIANTS, ids=IDS)
def test_causality_matches_is_causal(v):
    earlier, later = _later_token_effects(backbone(v).eval())
    assert min(later) > 1e-4, "changing tokens did not change the outputs at their own positions"
    if v.causal:
        assert max(earlier) <= 1e-5, f"causal model: later tokens change earlier outputs by {max(earlier):.2e}"
    else:
        assert max(earlier) > 1e-4, "non-causal model: no later token changes any earlier output"


@pytest.mark.parametrize("v", VARIANTS, ids=IDS)
def test_seed_determines_weights_and_outputs(v):
    first = backbone(v, SEED).eval()
    with torch.random.fork_rng(devices=[]):
        torch.rand(7)  # a different global RNG state must not matter
        again = backbone(v, SEED, replica=1).eval()
    a, b = first.state_dict(), again.state_dict()
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"same seed, different weights: {differ[:5]}"
    tokens, mask = batch([11, 8], 11, seed=4)
    with torch.no_grad():
        assert torch.equal(first(tokens, mask), again(tokens, mask))
    other = backbone(v, OTHER_SEED).state_dict()
    assert any(not torch.equal(a[k], other[k]) for k in a), "another seed gave the same weights"
