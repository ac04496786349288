"""Faithfulness of the generated tasks: ListOps at LRA's paper setting against the reference
statistics (tasks.md §2.2), Pathfinder against the generator's invariants (§6.6), FPT's bit tasks
against their definitions (§8)."""
import numpy as np
import pytest

from components.config import BitMemoryCfg, BitXORCfg, ListOpsCfg, PathfinderCfg
from components.data import bits, listops, pathfinder
from tests.test_listops import evaluate_independently

# ----------------------------------------------------------------------------------------------
# ListOps, paper setting


@pytest.fixture(scope="module")
def paper_rows():
    cfg = ListOpsCfg(setting="paper", n_train=1500, n_val=1, n_test=1)
    return cfg, listops.sample_expressions(cfg, np.random.default_rng(11), 1500)


def test_listops_paper_setting_is_lras_constants():
    cfg = ListOpsCfg(setting="paper")
    assert (cfg.max_depth, cfg.max_args, cfg.min_length, cfg.max_length) == (10, 10, 500, 2000)
    assert (cfg.n_train, cfg.n_val, cfg.n_test) == (96_000, 2_000, 2_000)
    assert ListOpsCfg(setting="paper", n_train=5).n_train == 5  # explicit keys win over the preset


def test_listops_paper_lengths_match_the_reference_quantiles(paper_rows):
    cfg, rows = paper_rows
    n = np.array([len(ids) for ids, _ in rows])
    assert n.min() > 500 and n.max() < 2000
    reference = {5: 540, 25: 704, 50: 957, 75: 1312, 95: 1805}  # simulation of LRA's generator, tasks.md §2.2
    for q, ref in reference.items():
        assert abs(np.percentile(n, q) - ref) / ref < 0.08, (q, np.percentile(n, q), ref)


def test_listops_paper_labels_match_reference_and_an_independent_evaluator(paper_rows):
    cfg, rows = paper_rows
    labels = np.array([value for _, value in rows])
    freq = np.bincount(labels, minlength=10) / len(labels)
    assert abs(freq[0] - 0.17) < 0.035 and abs(freq[9] - 0.17) < 0.035, freq
    assert np.all((freq[1:9] > 0.045) & (freq[1:9] < 0.125)), freq
    for ids, value in rows:
        assert evaluate_independently([listops.VOCAB[i] for i in ids]) == value
    assert len({ids for ids, _ in rows}) == len(rows)  # no duplicates


def test_listops_paper_trees_reach_full_operator_depth(paper_rows):
    _, rows = paper_rows
    close = listops.TOKEN_ID[listops.CLOSE]
    for ids, _ in rows[:200]:
        depth = deepest = 0
        for i in ids:
            depth += (listops.VOCAB[i].startswith("[")) - (i == close)
            deepest = max(deepest, depth)
        assert deepest == 9  # operators at depths 1-9, depth 10 is always a leaf (tasks.md §2.2)


# ----------------------------------------------------------------------------------------------
# Pathfinder

PF32 = PathfinderCfg(resolution=32, difficulty="hard", n_train=1, n_val=1, n_test=1, seed=5)


@pytest.fixture(scope="module")
def pf32():
    g, (contour, distractor, n_distractors) = pathfinder.GEOMETRY[32], pathfinder.counts(PF32)
    return [pathfinder.draw(g, contour, distractor, n_distractors, np.random.default_rng([5, i])) for i in range(400)]


def test_pathfinder_counts_follow_lras_settings():
    assert pathfinder.counts(PF32) == (14, 4, 5)  # 20 distractor paddles // length 4
    assert pathfinder.counts(PF32.model_copy(update={"difficulty": "easy"})) == (6, 2, 10)
    assert pathfinder.counts(PathfinderCfg(resolution=128)) == (14, 4, 8)
    assert pathfinder.counts(PathfinderCfg(resolution=128, distractors="baseline")) == (14, 4, 17)


def test_pathfinder_images_are_bytescaled_uint8_with_balanced_labels(pf32):
    labels = np.array([label for _, label, _ in pf32])
    assert abs(labels.mean() - 0.5) < 3 * 0.5 / np.sqrt(len(labels))
    for img, _, dbg in pf32:
        assert img.dtype == np.uint8 and img.shape == (32, 32)
        assert img.min() == 0 and img.max() == 255  # scipy's bytescale: min -> 0, max -> 255
        assert dbg["target_paddles"] == [14, 14]
        assert len(dbg["distractor_paddles"]) <= 5 and set(dbg["distractor_paddles"]) <= {4}


def test_pathfinder_markers_sit_on_the_snakes_the_label_says(pf32):
    rows, cols = np.mgrid[0:32, 0:32]
    for img, label, dbg in pf32:
        origin, other = dbg["marker_snakes"]
        assert (origin == other) == (label == 1)
        for centre, snake in zip(dbg["markers"], (origin, other)):
            near = np.hypot(rows - centre[0], cols - centre[1]) <= 1.5
            assert dbg["targets"][snake][near].max() > 0  # the marker touches its snake's paddles
            assert img[near].max() > 0  # and is lit in the image


def test_pathfinder_global_statistics_do_not_predict_the_label(pf32):
    """A linear classifier on brightness, lit-pixel count and marker distance stays near chance."""
    X = np.array([[img.mean(), (img > 0).sum(), np.linalg.norm(d["markers"][0] - d["markers"][1])]
                  for img, _, d in pf32])
    y = np.array([label for _, label, _ in pf32])
    X = np.c_[(X - X.mean(0)) / X.std(0), np.ones(len(X))]
    w = np.linalg.lstsq(X[:300], 2.0 * y[:300] - 1, rcond=None)[0]
    accuracy = ((X[300:] @ w > 0) == y[300:]).mean()
    assert accuracy < 0.65, accuracy  # chance is 0.5; 100 held-out images give about ±0.1 at 95%


def test_pathfinder_is_deterministic_for_any_worker_count():
    cfg = PathfinderCfg(resolution=64, n_train=6, n_val=2, n_test=2, seed=3)
    one, labels_one = pathfinder.draw_many(cfg, 10, workers=1)
    two, labels_two = pathfinder.draw_many(cfg, 10, workers=2)
    assert one.shape == (10, 64 * 64) and np.array_equal(one, two) and np.array_equal(labels_one, labels_two)
    splits = pathfinder.generate(cfg.model_copy(update={"workers": 1}))
    assert [len(df) for df in splits.values()] == [6, 2, 2]
    assert np.array_equal(np.stack(splits["val"]["input"]), one[6:8])


@pytest.mark.parametrize("resolution", [128, 256])
def test_pathfinder_large_resolutions_draw(resolution):
    cfg = PathfinderCfg(resolution=resolution)
    g, counts = pathfinder.GEOMETRY[resolution], pathfinder.counts(cfg)
    img, label, dbg = pathfinder.draw(g, *counts, np.random.default_rng(0))
    assert img.shape == (resolution, resolution) and img.max() == 255 and label in (0, 1)
    assert dbg["target_paddles"] == [14, 14]


def test_paddle_rendering_matches_a_dense_reference():
    """The windowed, box-averaged paddle equals rasterizing the whole canvas at the anti-aliasing scale."""
    g = pathfinder.GEOMETRY[64]
    a, b = np.array([10.3, 20.0]), np.array([14.0, 23.0])
    (r0, r1, c0, c1), cover = pathfinder.paddle(a, b, g)
    full = np.zeros((64, 64))
    full[r0:r1, c0:c1] = cover
    s = (np.arange(64 * g.aa) + 0.5) / g.aa - 0.5
    rows, cols = np.meshgrid(s, s, indexing="ij")
    d = b - a
    t = ((rows - a[0]) * d[0] + (cols - a[1]) * d[1]) / (d @ d)
    perp = np.abs((rows - a[0]) * d[1] - (cols - a[1]) * d[0]) / np.linalg.norm(d)
    lit = (t >= 0) & (t <= 1) & (perp <= round(g.thickness * g.aa) / (2 * g.aa))
    dense = lit.reshape(64, g.aa, 64, g.aa).mean(axis=(1, 3))
    assert np.allclose(full, dense) and dense.sum() > 0


# ----------------------------------------------------------------------------------------------
# bit tasks


def test_bit_memory_rows_follow_fpt():
    cfg = BitMemoryCfg(n_bits=200, n_train=300, n_val=10, n_test=10, seed=2)
    x, y = bits.memory_rows(cfg, 300, np.random.default_rng(0))
    assert x.shape == (300, 6, 200) and y.shape == (300, 200)
    assert set(np.unique(x[:, :5])) == {-1, 1} and set(np.unique(x[:, 5])) == {-1, 0, 1}
    assert set(np.unique(y)) == {0, 1} and abs(y.mean() - 0.5) < 0.02
    assert abs((x[:, 5] == 0).mean() - 0.5) < 0.02  # each query bit hidden with probability 0.5
    pattern = 2 * y - 1  # the target is one of the five patterns, and agrees with every visible bit
    assert all(any(np.array_equal(pattern[i], x[i, k]) for k in range(5)) for i in range(300))
    visible = x[:, 5] != 0
    assert np.array_equal(x[:, 5][visible], pattern[visible])


def test_bit_xor_rows_and_splits():
    cfg = BitXORCfg(n_train=500, n_val=50, n_test=50, seed=1)
    splits = bits.generate(cfg)
    x = np.stack(splits["train"]["input"]).reshape(-1, 2, 5)
    y = np.stack(splits["train"]["target"])
    assert set(np.unique(x)) == {0, 1} and np.array_equal(y, x[:, 0] != x[:, 1])
    assert abs(y.mean() - 0.5) < 0.05
    again = bits.generate(cfg)
    assert all(np.array_equal(np.stack(splits[s]["input"]), np.stack(again[s]["input"])) for s in splits)
    assert not np.array_equal(np.stack(splits["val"]["input"]), np.stack(splits["test"]["input"]))
    assert bits.meta(cfg)["shape"] == [2, 5] and bits.meta(BitMemoryCfg())["shape"] == [6, 1000]
