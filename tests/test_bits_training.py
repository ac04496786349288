"""FPT's bit tasks trained end to end: patch batches, the per-bit head, the per-bit loss, and a
tiny bit-memory cell through pretrain -> finetune -> evaluate."""
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from components import paths
from components.config import BitMemoryCfg, ConfigError, FPTCfg, LSTMCfg, S4DCfg, TransformerCfg, parse_params
from components.data import bits
from components.data.batching import BitSplit, eval_batches, train_stream
from components.grid import Cell
from components.models import BitClassifier, build_backbone, new_head
from components.models.backbone import PatchEmbedding
from components.objectives import classification_loss
from components.spec import resolve
from components.stages import evaluate, finetune, materialize, pretrain

TINY = dict(kind="bit_memory", n_bits=20, n_patterns=3, patch_size=5, n_train=48, n_val=16, n_test=16)
ROWS, L, P, N_BITS = 4, 16, 5, 20  # 3 patterns + the query, each 20 bits in 4 tokens of 5


def tiny_split(n: int = 12) -> BitSplit:
    cfg = BitMemoryCfg(**{k: v for k, v in TINY.items() if k != "kind"})
    inputs, targets = bits.memory_rows(cfg, n, np.random.default_rng(0))  # (n, 4, 20), (n, 20)
    return BitSplit.from_rows(inputs.reshape(n, -1), targets, cfg.patch_size)


# ----------------------------------------------------------------------------------------------
# batches


def test_bit_batches_are_patch_vectors_with_the_query_row_last():
    split = tiny_split()
    x, mask, y = split.batch(np.array([3, 0, 7]))
    assert x.shape == (3, L, P) and x.dtype == torch.float32 and set(x.unique().tolist()) <= {-1.0, 0.0, 1.0}
    assert mask.shape == (3, L) and mask.dtype == torch.bool and mask.all()
    assert y.shape == (3, N_BITS) and y.dtype == torch.int64
    query = x[:, -N_BITS // P:].reshape(3, N_BITS)  # (B, n_bits): the last row, its tokens in order
    visible = query != 0
    assert torch.equal(query[visible], (2 * y - 1).float()[visible])  # every visible query bit is its target
    assert (split.lengths == L).all() and len(split.subset([1, 2])) == 2
    assert sorted(np.concatenate(list(eval_batches(split.lengths, 5)))) == list(range(len(split)))
    first = next(train_stream(split.lengths, 4, seed=1))
    assert split.batch(first)[0].shape == (4, L, P)
    assert 0.5 <= split.majority() < 0.75  # the commoner bit value's share over every target bit


def test_a_ragged_bits_file_is_one_line_naming_the_row(tmp_path):
    import pandas as pd

    from components.data.contract import DataError
    from components.data.parquet import read_bits, write_split

    rows = [np.array([1, -1, 0, 1], np.int8), np.array([1, 0, -1], np.int8)]
    write_split(pd.DataFrame({"input": rows, "target": [np.array([1, 0], np.int8)] * 2}), tmp_path / "x.parquet", "bits")
    with pytest.raises(DataError, match=r"x\.parquet: row 1, column 'input': 3 values, row 0 has 4$"):
        read_bits(tmp_path / "x.parquet")


def test_patch_size_must_divide_n_bits_and_the_cpu_setting_is_the_calibrated_one(raw_params):
    raw_params["tasks"]["bit_memory"] = {"kind": "bit_memory", "n_bits": 50, "patch_size": 7}
    with pytest.raises(ConfigError, match=r"^params: tasks\.bit_memory: patch_size: 7 does not divide n_bits = 50"):
        parse_params(raw_params)
    cpu = BitMemoryCfg(setting="cpu")
    assert (cpu.n_bits, cpu.n_patterns, cpu.patch_size, cpu.mask_prob) == (50, 5, 10, 0.5)
    assert bits.meta(cpu)["patch_size"] == 10


# ----------------------------------------------------------------------------------------------
# models


KINDS = {"transformer": TransformerCfg(d_model=16, n_layers=1, n_heads=2), "s4d": S4DCfg(d_model=16, n_layers=1, d_state=8),
         "lstm": LSTMCfg(d_model=16, n_layers=1), "fpt": FPTCfg(n_layers=1)}


@pytest.mark.parametrize("kind", KINDS)
def test_per_bit_head_gives_two_logits_per_bit(kind):
    backbone = build_backbone(KINDS[kind], None, None, seed=0, input_dim=P)
    assert isinstance(backbone.embed, PatchEmbedding)
    model = new_head(BitClassifier, backbone, N_BITS, seed=1)
    x, mask, y = tiny_split().batch(np.arange(3))
    logits = model(x, mask)  # (B, n_bits, 2)
    assert logits.shape == (3, N_BITS, 2) and torch.isfinite(logits).all()
    loss, _, n = classification_loss(logits, y)
    loss.backward()
    assert n == 3 * N_BITS and backbone.embed.weight.grad is not None


def test_bit_t_times_p_plus_p_is_read_from_query_token_t():
    class Identity(nn.Module):  # features = the input projection alone: each output sees its own token only
        def __init__(self):
            super().__init__()
            self.embed, self.d_model = PatchEmbedding(P, 8), 8

        def forward(self, x, mask):
            return self.embed(x)

    model = BitClassifier(Identity(), N_BITS)
    x, mask, _ = tiny_split().batch(np.arange(2))
    changed = x.clone()
    changed[:, L - 3] += 1.0  # the query row's second token (t = 1): bits 5..9
    moved = (model(changed, mask) - model(x, mask)).abs().sum((0, 2)) > 0  # (n_bits,)
    assert moved.nonzero().flatten().tolist() == list(range(P, 2 * P))
    changed = x.clone()
    changed[:, 0] += 1.0  # a pattern row's token is not read by the head directly
    assert torch.equal(model(changed, mask), model(x, mask))


def test_inputs_are_tokens_or_patches_never_both_or_neither():
    with pytest.raises(ValueError, match="either a vocab_size"):
        build_backbone(KINDS["transformer"], 12, 0, seed=0, input_dim=P)
    with pytest.raises(ValueError, match="either a vocab_size"):
        build_backbone(KINDS["transformer"], None, None, seed=0)
    with pytest.raises(ValueError, match="per-bit head reads patch inputs"):
        BitClassifier(build_backbone(KINDS["transformer"], 12, 0, seed=0), N_BITS)


# ----------------------------------------------------------------------------------------------
# loss


def test_per_bit_cross_entropy_and_accuracy_on_known_logits():
    p1 = torch.tensor(0.75)
    logits = torch.stack([torch.zeros(2, 3), torch.full((2, 3), math.log(3.0))], -1)  # (2, 3, 2): P(bit = 1) = 0.75
    targets = torch.tensor([[1, 1, 0], [1, 0, 0]])  # 3 ones, 3 zeros
    loss, correct, n = classification_loss(logits, targets)
    expected = -(3 * torch.log(p1) + 3 * torch.log(1 - p1)) / 6
    assert torch.allclose(loss, expected) and correct == 3 and n == 6  # per bit: 3 of 6 bits right
    flat, _, rows = classification_loss(logits.reshape(6, 2), targets.reshape(6))
    assert torch.allclose(flat, loss) and rows == 6  # the per-row loss is the same function


# ----------------------------------------------------------------------------------------------
# end to end


def test_bit_memory_cells_finetune_and_evaluate_per_bit(workdir, raw_params):
    raw_params["tasks"]["bit_memory"] = dict(TINY)
    raw_params["grid"].update(tasks=["bit_memory"], archs=["fpt", "transformer"], inits=["fpt_frozen", "scratch"],
                              seeds=[0], fractions=[1.0], exclude=[])
    params = parse_params(raw_params)
    materialize.run(params, "bit_memory")
    for arch, init in (("fpt", "fpt_frozen"), ("transformer", "scratch")):
        spec = resolve(params, Cell("bit_memory", arch, init, 0))
        for stage in (pretrain, finetune, evaluate):
            stage.run(spec)
        record = json.loads(paths.metrics_path(spec.cell).read_text())
        assert record["status"] == "ok" and record["n_test"] == TINY["n_test"]
        bits_right = record["test_accuracy"] * TINY["n_test"] * TINY["n_bits"]  # a share of test *bits*
        assert 0.0 <= record["test_accuracy"] <= 1.0 and abs(bits_right - round(bits_right)) < 1e-6
        assert 0.0 <= record["val_accuracy"] <= 1.0
        assert 0.4 <= record["majority_accuracy"] <= 0.6 and record["flops_per_token"] > 0
        if init == "fpt_frozen":  # attention and feed-forward stay frozen
            assert record["params_trainable"] < record["params_total"] / 4


def test_token_self_pretraining_is_skipped_on_bit_tasks(raw_params):
    from components.grid import skip_reason

    raw_params["tasks"]["bit_memory"] = dict(TINY)
    raw_params["grid"].update(tasks=["bit_memory"], archs=["transformer"], inits=["scratch", "masked_spt"], exclude=[])
    params = parse_params(raw_params)
    assert skip_reason(params, Cell("bit_memory", "transformer", "scratch", 0)) is None
    assert "patch vectors" in skip_reason(params, Cell("bit_memory", "transformer", "masked_spt", 0))
