import itertools

import numpy as np
import pytest
import torch

from components.config import OptimCfg, TransformerCfg
from components.data.batching import TokenSplit, epoch_batches, eval_batches
from components.models import Classifier, build_backbone, new_head
from components.objectives import classification_loss
from components.training import checkpoint
from components.training.loop import Diverged, read_meta, train
from components.training.optim import lr_factor

CFG = OptimCfg(steps=30, batch_size=8, lr={"t": 3e-3}, warmup_steps=3, eval_every=10, log_every=5).for_arch("t")


def toy_split(n: int = 64, seed: int = 0) -> TokenSplit:
    """Label = first token parity: learnable in a few dozen steps."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 12, n)
    rows = [rng.integers(2, 12, L) for L in lengths]
    labels = np.array([r[0] % 2 for r in rows])
    return TokenSplit(np.concatenate(rows), np.concatenate([[0], np.cumsum(lengths)]), labels)


def stream(split, seed):
    def start_at(step):
        every = (split.batch(r, 0) for e in itertools.count() for r in epoch_batches(split.lengths, 8, seed, e))
        return itertools.islice(every, step, None)

    return start_at


def run(split, seed=0, evaluate=None, cfg=CFG, **options):
    torch.manual_seed(123)  # global RNG must not matter: init comes from the seed below
    model = new_head(Classifier, build_backbone(TransformerCfg(d_model=16, n_layers=1, n_heads=2), 12, 0, seed), 2, seed)
    logs = []

    def loss_fn(m, b):
        return classification_loss(m(b[0], b[1]), b[2])

    result = train(model, stream(split, seed), loss_fn, evaluate or default_eval(split), cfg, cfg.steps,
                   lambda m, s: logs.append((s, m)), **options)
    return model, result, logs


def test_loss_is_finite_and_decreases():
    _, result, logs = run(toy_split())
    losses = [m["train_loss"] for _, m in logs if "train_loss" in m]
    assert all(np.isfinite(losses))
    assert losses[-1] < losses[0]
    assert [s for s, m in logs if "val_score" in m] == [10, 20, 30]


def test_logged_lr_is_the_main_rate_even_with_hinted_groups():
    from components.config import S4DCfg

    split = toy_split()
    model = new_head(Classifier, build_backbone(S4DCfg(d_model=8, n_layers=1, d_state=4, ssm_lr=1e-4), 12, 0, 0), 2, 0)
    logs = []
    train(model, stream(split, 0), lambda m, b: classification_loss(m(b[0], b[1]), b[2]), lambda m: {"score": 0.0},
          CFG, CFG.steps, lambda m, s: logs.append((s, m)))
    lrs = {s: m["lr"] for s, m in logs if "lr" in m}
    assert lrs[5] == 3e-3 * lr_factor(4, CFG.warmup_steps, CFG.steps)


def test_same_seed_same_metrics():
    a, b = run(toy_split())[2], run(toy_split())[2]
    assert [m.get("train_loss") for _, m in a] == [m.get("train_loss") for _, m in b]


def test_returns_best_validation_state_not_last():
    scores = iter([0.2, 0.9, 0.5])
    snapshots = {}

    def evaluate(m):
        s = next(scores)
        snapshots[s] = {k: v.clone() for k, v in m.state_dict().items()}
        return {"score": s}

    model, result, _ = run(toy_split(), evaluate=evaluate)
    assert result.best_step == 20 and result.best_val["score"] == 0.9
    assert all(torch.equal(result.best_state[k], snapshots[0.9][k]) for k in snapshots[0.9])
    assert not all(torch.equal(result.best_state[k], v) for k, v in model.state_dict().items())


def test_batches_cover_each_epoch_once_and_depend_on_seed():
    lengths = np.random.default_rng(0).integers(5, 50, 203)
    batches = epoch_batches(lengths, 16, seed=1, epoch=0)
    assert sorted(np.concatenate(batches).tolist()) == list(range(203))
    again = epoch_batches(lengths, 16, seed=1, epoch=0)
    assert all(np.array_equal(x, y) for x, y in zip(batches, again))
    other = epoch_batches(lengths, 16, seed=2, epoch=0)
    assert not all(np.array_equal(x, y) for x, y in zip(batches, other))
    assert sorted(np.concatenate(eval_batches(lengths, 16)).tolist()) == list(range(203))


def test_lr_schedule_warms_up_then_decays_to_zero():
    f = [lr_factor(s, 10, 100) for s in range(100)]
    assert f[0] == 0.1 and f[9] == 1.0
    assert all(a >= b for a, b in zip(f[10:], f[11:]))
    assert lr_factor(100, 10, 100) == 0.0


def test_checkpoint_roundtrip_is_weights_only_and_atomic(tmp_path):
    state = {"w": torch.randn(3, 4)}
    digest = checkpoint.save(tmp_path / "c.pt", state, {"seed": 1, "run": None})
    loaded, meta = checkpoint.load(tmp_path / "c.pt")
    assert torch.equal(loaded["w"], state["w"]) and meta == {"seed": 1, "run": None}
    assert len(digest) == 64
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]
    assert checkpoint.save(tmp_path / "d.pt", state, {"seed": 1, "run": None}) == digest  # deterministic bytes


def test_constant_schedule_holds_after_warmup():
    assert [lr_factor(s, 3, 30, "constant") for s in (0, 2, 3, 29, 40)] == [1 / 3, 1.0, 1.0, 1.0, 1.0]


def test_early_stopping_after_patience_evaluations_without_improvement():
    scores = iter([0.5, 0.4, 0.3, 0.9])
    _, result, logs = run(toy_split(), evaluate=lambda m: {"score": next(scores)},
                          cfg=CFG.model_copy(update={"patience": 2, "eval_every": 5}))
    assert result.stopped_early and result.steps == 15 and result.best_step == 5
    assert max(s for s, _ in logs) == 15


def test_nan_loss_raises_diverged_with_the_step():
    split = toy_split()
    model = new_head(Classifier, build_backbone(TransformerCfg(d_model=16, n_layers=1, n_heads=2), 12, 0, 0), 2, 0)
    calls = iter(range(100))

    def loss_fn(m, b):
        loss, c, n = classification_loss(m(b[0], b[1]), b[2])
        return (loss * float("nan") if next(calls) == 6 else loss), c, n

    with pytest.raises(Diverged) as err:
        train(model, stream(split, 0), loss_fn, lambda m: {"score": 0.0}, CFG, CFG.steps, lambda m, s: None)
    assert err.value.step == 7


def test_resuming_from_a_checkpoint_ends_exactly_like_an_uninterrupted_run(tmp_path):
    """In-process twin of tests/test_resume.py: stop after step 12 (by raising from the logger),
    train again with the same arguments, compare everything to a run that never stopped."""
    cfg = CFG.model_copy(update={"checkpoint_every": 4})
    gen_seed = 7

    def go(path, stop_at=None):
        gen = torch.Generator().manual_seed(gen_seed)

        def loss_fn(m, b):  # draws from a generator, as masking does: its state must be restored too
            noise = torch.rand(b[0].shape, generator=gen) < 0.2
            return classification_loss(m(b[0].masked_fill(noise, 1), b[1]), b[2])

        logs = []

        def log(metrics, step):
            logs.append((step, metrics))
            if step == stop_at:
                raise KeyboardInterrupt

        torch.manual_seed(0)
        model = new_head(Classifier, build_backbone(TransformerCfg(d_model=16, n_layers=1, n_heads=2), 12, 0, 3), 2, 3)
        result = train(model, stream(toy_split(), 3), loss_fn, default_eval(toy_split()), cfg, cfg.steps, log,
                       generators=[gen], checkpoint=path, meta={"run_id": "r1"})
        return model, result, logs

    straight_model, straight, straight_logs = go(None)
    path = tmp_path / "resume.pt"
    with pytest.raises(KeyboardInterrupt):
        go(path, stop_at=15)  # past the checkpoint at step 12: steps 13-15 are redone
    assert read_meta(path) == {"run_id": "r1"}
    model, resumed, logs = go(path)
    assert resumed.resumed_from == 12 and resumed.steps == straight.steps
    assert resumed.best_step == straight.best_step and resumed.best_val == straight.best_val
    assert resumed.history == straight.history and resumed.tokens == straight.tokens
    assert all(torch.equal(resumed.best_state[k], v) for k, v in straight.best_state.items())
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), straight_model.state_dict().values()))
    losses = {s: m["train_loss"] for s, m in logs if "train_loss" in m}
    assert losses == {s: m["train_loss"] for s, m in straight_logs if "train_loss" in m and s > 12}


def default_eval(split):
    def evaluate(m):
        m.eval()
        with torch.no_grad():
            t, mk, y = split.batch(np.arange(len(split)), 0)
            acc = float((m(t, mk).argmax(-1) == y).float().mean())
        return {"accuracy": acc, "score": acc}

    return evaluate
