"""Fair by construction: the same declared candidates for every arm, selection on validation data
only (the test split is read once per grid cell, never by a trial), intervals that agree with
their closed forms, verdicts that follow them, and a tuned grid that a re-run does not retrain."""
import math

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats as sst

from components import paths, records, selection, tuning
from components.atomic import read_json
from components.config import ConfigError, parse_params
from components.grid import Cell
from components.records import CellRecord
from components.report import stats
from components.report.claims import check
from components.report.tables import budget
from components.spec import config_hash, resolve  # noqa: F401
from components.stages import evaluate, finetune, pretrain, tune

SPACE = {"finetune.lr": {"low": 3e-4, "high": 1e-2, "log": True},
         "finetune.weight_decay": {"low": 0.0, "high": 0.1},
         "finetune.warmup_steps": {"low": 0, "high": 4, "integer": True},
         "pretrain.lr": {"low": 3e-4, "high": 1e-2, "log": True}}


def tuned(raw: dict, trials: int = 3) -> dict:
    raw["tuning"] = {"trials": trials, "seed": 1000, "space": SPACE}
    return raw


# ----------------------------------------------------------------------------------------------
# candidates and selection


def test_every_arm_sees_the_same_seeded_candidates(raw_params):
    params = parse_params(tuned(raw_params, 4))
    points = tuning.candidates(params.tuning)
    assert len(points) == 4 and len({tuple(sorted(p.items())) for p in points}) == 4
    assert points == tuning.candidates(params.tuning)  # seeded: the same draw every time
    other = parse_params({**tuned(raw_params, 4), "tuning": {**raw_params["tuning"], "seed": 7}})
    assert tuning.candidates(other.tuning) != points
    for t, point in enumerate(points):
        assert 3e-4 <= point["finetune.lr"] <= 1e-2 and 0 <= point["finetune.weight_decay"] <= 0.1
        assert isinstance(point["finetune.warmup_steps"], int) and 0 <= point["finetune.warmup_steps"] <= 4
        for arch in ("transformer", "s4d"):  # each arm runs exactly the candidate, whatever its own default lr
            for init in ("scratch", "masked_spt"):
                spec = resolve(params, Cell("listops", arch, init, 1000, 1.0, t))
                assert spec.finetune.lr == point["finetune.lr"] and spec.pretrain.lr == point["pretrain.lr"]
                assert spec.finetune.weight_decay == point["finetune.weight_decay"]
                assert spec.finetune.warmup_steps == point["finetune.warmup_steps"]
                assert spec.choice.trial == t and spec.choice.values == point


@pytest.mark.parametrize("trials", [2, 3])
def test_defaults_first_makes_trial_0_each_archs_defaults_then_the_same_points(raw_params, trials):
    plain = parse_params(tuned(raw_params, trials))
    first = parse_params({**tuned(raw_params, trials), "tuning": {**tuned(raw_params, trials)["tuning"], "defaults_first": True}})
    points = tuning.candidates(first.tuning)
    assert len(points) == trials and points == [{}] + tuning.candidates(plain.tuning)[:trials - 1]
    assert all(p for p in points[1:])  # every later trial is a real point, never the defaults again
    for arch in ("transformer", "s4d"):  # trial 0 runs each arch's own default lr, not a shared one
        spec = resolve(first, Cell("listops", arch, "masked_spt", 1000, 1.0, 0))
        assert spec.finetune.lr == first.finetune.lr[arch] and spec.pretrain.lr == first.pretrain.lr[arch]
        assert spec.choice.values == {}
        spec = resolve(first, Cell("listops", arch, "masked_spt", 1000, 1.0, 1))
        assert spec.finetune.lr == points[1]["finetune.lr"]
    assert first.finetune.lr["transformer"] != first.finetune.lr["s4d"]


def test_the_reports_tuning_paragraph_says_what_trial_0_is(raw_params):
    from components.stages.report import _tuning_text

    raw = tuned(raw_params, 2)
    plain = _tuning_text(parse_params(raw))
    first = _tuning_text(parse_params({**raw, "tuning": {**raw["tuning"], "defaults_first": True}}))
    assert "the same quasi-random points" in plain and "defaults" not in plain.split("selection:")[0]
    assert "trial 0 each architecture's declared defaults" in first and "first 1 quasi-random point " in first


def test_one_trial_is_no_tuning_the_shared_defaults(raw_params):
    params = parse_params(raw_params)
    assert params.tuning.trials == 1 and tuning.candidates(params.tuning) == [{}]
    cell = Cell("listops", "s4d", "scratch", 0)
    spec = resolve(params, cell)  # no selection file needed, nothing changes
    assert spec.choice.values == {} and spec.choice.rule == tuning.NO_TUNING
    assert spec.finetune == params.finetune.for_arch("s4d") and spec.pretrain == params.pretrain.for_arch("s4d")


def test_bad_tuning_settings_fail_with_one_line(raw_params):
    for edit, expected in (
        ({"trials": 2, "space": {"finetune.momentum": {"low": 0, "high": 1}}}, "tuning: space.finetune.momentum: not tunable"),
        ({"trials": 2, "space": {}}, "tuning: trials: 2 needs a search space"),
        ({"trials": 2, "space": {"finetune.lr": {"low": 0, "high": 1, "log": True}}}, "a log range needs low > 0"),
        ({"trials": 2, "seed": 0, "space": SPACE}, "tuning.seed: 0 is also in grid.seeds"),
    ):
        raw = {**raw_params, "tuning": edit}
        with pytest.raises(ConfigError) as err:
            parse_params(raw, "params.yaml")
        assert expected in str(err.value) and "\n" not in str(err.value)


def test_selection_takes_the_best_validation_score_ties_to_the_lower_trial():
    def rec(**kw):
        return CellRecord(task="t", arch="a", init="i", seed=9, **kw)

    ok = lambda v: rec(val_accuracy=v)  # noqa: E731
    assert tuning.select({0: [ok(0.3)], 1: [ok(0.5)], 2: [ok(0.5)]}) == 1
    assert tuning.select({0: [ok(0.3), ok(0.7)], 1: [ok(0.6), ok(0.3)]}) == 0  # mean over fractions: 0.5 vs 0.45
    diverged = rec(status="diverged", reason="loss is nan")
    assert tuning.select({0: [diverged], 1: [ok(0.1)]}) == 1  # a diverged trial ranks last
    assert tuning.select({0: [diverged], 1: [rec(status="failed")]}) is None
    assert tuning.score([ok(0.2), diverged]) == -math.inf


# ----------------------------------------------------------------------------------------------
# intervals against closed forms


def test_paired_interval_matches_the_closed_form():
    a, b = np.array([60.0, 62.0, 64.0]), np.array([59.0, 60.0, 61.0])  # differences 1, 2, 3
    ci = stats.paired(a, b)
    half = 4.302652729749464 * 1.0 / math.sqrt(3)  # t_{0.975, 2} * sd(d) / sqrt(n), sd(d) = 1
    assert (ci.estimate, ci.n, ci.sd, ci.method) == (2.0, 3, 1.0, "paired t")
    assert ci.low == pytest.approx(2 - half, abs=1e-12) and ci.high == pytest.approx(2 + half, abs=1e-12)
    ref = sst.ttest_rel(a, b).confidence_interval(0.95)
    assert (ci.low, ci.high) == pytest.approx((ref.low, ref.high))


def test_welch_interval_matches_the_closed_form():
    a, b = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 4.0, 6.0])
    va, vb = np.var(a, ddof=1) / 4, np.var(b, ddof=1) / 3  # 5/12 and 4/3
    df = (va + vb) ** 2 / (va ** 2 / 3 + vb ** 2 / 2)
    half = sst.t.ppf(0.975, df) * math.sqrt(va + vb)
    ci = stats.welch(a, b)
    assert ci.estimate == pytest.approx(-1.5) and ci.method == "Welch"
    assert (ci.low, ci.high) == pytest.approx((-1.5 - half, -1.5 + half))
    ref = sst.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert (ci.low, ci.high) == pytest.approx((ref.low, ref.high))


def test_mean_interval_verdicts_and_seeds_needed():
    ci = stats.mean_ci([1.0, 2.0, 3.0])
    assert ci.estimate == 2.0 and ci.high - ci.low == pytest.approx(2 * 4.302652729749464 / math.sqrt(3))
    assert not stats.mean_ci([5.0]).has_interval and not stats.mean_ci([5.0, 6.0]).has_interval  # < 3 seeds
    assert stats.verdict(stats.Interval(2.0, 0.5, 3.5, 3, 1.0, "t")) == stats.HOLDS
    assert stats.verdict(stats.Interval(-2.0, -3.5, -0.5, 3, 1.0, "t")) == stats.CONTRADICTED
    assert stats.verdict(stats.Interval(0.5, -1.0, 2.0, 3, 1.0, "t")) == stats.INCONCLUSIVE
    assert stats.verdict(stats.Interval(-1.0, -1.5, -0.5, 3, 0.2, "t"), margin=-2.0) == stats.HOLDS  # "close"
    assert stats.verdict(stats.mean_ci([5.0, 6.0])) == stats.NO_VERDICT
    # exact paired-t power: d = 1, sd = 2 needs 34 seeds; the normal approximation (2.8 s / d)^2 said 32
    assert stats.seeds_needed(stats.Interval(1.0, -1.0, 3.0, 3, 2.0, "t")) == 34
    assert stats.power(34, 1.0, 2.0) >= 0.8 > stats.power(33, 1.0, 2.0)
    assert stats.seeds_needed(stats.Interval(-1.0, -3.0, 1.0, 3, 2.0, "t")) is None  # wrong side: no number
    assert stats.seeds_needed(stats.Interval(0.01, -3.0, 3.0, 3, 2.0, "t")) is None  # uninformative


def test_exact_power_matches_a_simulation():
    rng = np.random.default_rng(0)
    n, effect, sd = 5, 1.0, 1.0
    crit = sst.t.ppf(0.975, n - 1)
    d = rng.normal(effect, sd, size=(20000, n))
    t = d.mean(1) / (d.std(1, ddof=1) / math.sqrt(n))
    assert (t > crit).mean() == pytest.approx(stats.power(n, effect, sd), abs=0.01)


def test_zero_spread_gives_no_interval_and_no_verdict():
    ci = stats.paired([3.0, 4.0, 5.0], [1.0, 2.0, 3.0])  # every seed +2: sd 0
    assert ci.estimate == 2.0 and not ci.has_interval and stats.verdict(ci) == stats.NO_VERDICT
    assert "no spread" in ci.text()


def test_holm_adjusts_a_family_of_p_values():
    adjusted = stats.holm([0.01, 0.04, 0.03, math.nan, 0.005])
    assert adjusted[4] == pytest.approx(4 * 0.005) and adjusted[0] == pytest.approx(3 * 0.01)
    assert adjusted[2] == pytest.approx(2 * 0.03) and adjusted[1] == pytest.approx(0.06)  # monotone: max(0.04, 0.06)
    assert math.isnan(adjusted[3])
    # a claim whose raw p passes but whose adjusted p does not is inconclusive, not holds
    ci = stats.Interval(1.0, 0.1, 1.9, 5, 0.5, "paired t", 0.5 / math.sqrt(5), 4)
    assert stats.verdict(ci) == stats.HOLDS and stats.verdict(ci, 0.0, p_above=0.03) == stats.INCONCLUSIVE


def test_contrast_matches_welch_and_the_closed_form():
    a, b, c = np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0]), np.array([0.0, 1.0, 5.0])
    ci = stats.contrast([a, b, c], [1.0, -1.0, 1.0])
    parts = [np.var(x, ddof=1) / 3 for x in (a, b, c)]
    df = sum(parts) ** 2 / sum(p ** 2 / 2 for p in parts)
    half = sst.t.ppf(0.975, df) * math.sqrt(sum(parts))
    assert ci.estimate == pytest.approx(2.0 - 4.0 + 2.0) and (ci.low, ci.high) == pytest.approx((-half, half))
    assert ci.p_above(0.0) == pytest.approx(0.5)


# ----------------------------------------------------------------------------------------------
# claims


def _results(rows):
    return pd.DataFrame([{"task": "listops", "fraction": 1.0, "status": "ok", **r} for r in rows])


def _arm_rows(arch, init, accs, seeds=(0, 1, 2), **extra):
    return [{"arch": arch, "init": init, "seed": s, "test_accuracy": a, **extra} for s, a in zip(seeds, accs)]


def _claims(rows, params, claim):
    return [v for v in check(_results(rows), params.archs, params.inits) if v.claim == claim]


def test_claims_are_paired_differences_with_verdicts(tiny_params):
    scratch = [0.30, 0.32, 0.31]

    def verdict_for(spt):
        (v,) = _claims(_arm_rows("transformer", "scratch", scratch) + _arm_rows("transformer", "masked_spt", spt),
                       tiny_params, "SPT beats scratch for Transformers")
        return v

    v = verdict_for([0.35, 0.38, 0.36])  # +5, +6, +5 points
    assert v.verdict == "holds" and v.method == "paired t" and v.n == 3
    assert v.difference == pytest.approx(16 / 3) and v.low > 0 and v.p_holm <= 0.025
    assert verdict_for([0.25, 0.28, 0.26]).verdict == "contradicted"  # the effect reverses
    noisy = verdict_for([0.36, 0.29, 0.32])
    assert noisy.verdict == "inconclusive" and noisy.seeds_needed and "seeds would resolve it" in noisy.evidence
    none = verdict_for([0.31, 0.31, 0.3101])  # +1, -1, +0.01 points: no effect against a spread of 1
    assert none.verdict == "inconclusive" and none.seeds_needed is None and "uninformative" in none.evidence
    wrong = verdict_for([0.29, 0.33, 0.30])  # -1, +1, -1: the observed difference points the other way
    assert wrong.seeds_needed is None and "not on the claimed side" in wrong.evidence


def test_spt_for_ssms_is_a_claim_with_its_compute_ratio(tiny_params):
    rows = (_arm_rows("s4d", "scratch", [0.30, 0.32, 0.31], pretrain_steps=0, finetune_steps=100)
            + _arm_rows("s4d", "masked_spt", [0.40, 0.41, 0.43], pretrain_steps=60, finetune_steps=100))
    (v,) = _claims(rows, tiny_params, "SPT beats scratch for SSMs")
    assert v.verdict == "holds" and v.compute_ratio == pytest.approx(1.6) and "1.60× the steps of scratch" in v.evidence


def _gap_rows(t0, t1, s0, s1, seeds=((0, 1, 2),) * 4):
    return (_arm_rows("transformer", "scratch", t0, seeds[0]) + _arm_rows("transformer", "masked_spt", t1, seeds[1])
            + _arm_rows("s4d", "scratch", s0, seeds[2]) + _arm_rows("s4d", "masked_spt", s1, seeds[3]))


def test_narrowing_is_the_signed_difference_of_gains(tiny_params):
    claim = "SPT narrows the Transformer–SSM gap"
    # the SSM leads by 20; the Transformer gains 10, the SSM 0.83: the gap narrows by 9.17
    (v,) = _claims(_gap_rows([0.30, 0.31, 0.32], [0.40, 0.41, 0.42], [0.50, 0.51, 0.52], [0.51, 0.515, 0.53]),
                   tiny_params, claim)
    assert v.verdict == "holds" and v.difference == pytest.approx(10 - 2.5 / 3, abs=1e-6) and v.method == "paired t"
    # the SSM gains more than the Transformer: the gap widens (the |gap| reading would not say so)
    (w,) = _claims(_gap_rows([0.30, 0.31, 0.32], [0.31, 0.32, 0.33], [0.50, 0.51, 0.52], [0.60, 0.62, 0.61]),
                   tiny_params, claim)
    assert w.verdict == "contradicted" and w.difference < 0
    # the Transformer already leads from scratch: nothing to narrow, and no number is judged
    (p,) = _claims(_gap_rows([0.50, 0.51, 0.52], [0.55, 0.56, 0.57], [0.30, 0.31, 0.32], [0.31, 0.32, 0.33]),
                   tiny_params, claim)
    assert p.verdict == "premise not met" and "does not lead" in p.evidence and math.isnan(p.p_holm)
    # arms that ran unrelated seeds: a Welch contrast of the four arms, not "not run"
    (u,) = _claims(_gap_rows([0.30, 0.31, 0.32], [0.40, 0.41, 0.42], [0.50, 0.51, 0.52], [0.51, 0.515, 0.53],
                             seeds=((0, 1, 2), (0, 1, 3), (3, 4, 5), (3, 4, 6))), tiny_params, claim)
    assert u.method == "Welch" and u.verdict in ("holds", "inconclusive")


def test_narrowing_with_more_seeds_for_the_ssm_pairs_each_gain_then_compares_them(tiny_params):
    """The Transformer on seeds 0-2, the SSM on 0-4 (5 seeds where its effect is small): each
    gain is paired within its architecture, then the gains are compared by Welch."""
    claim, three, five = "SPT narrows the Transformer–SSM gap", (0, 1, 2), (0, 1, 2, 3, 4)
    t0, s0 = [0.30, 0.34, 0.31], [0.50, 0.55, 0.52, 0.49, 0.53]  # the SSM leads from scratch
    seeds = (three, three, five, five)

    def run(t_gain, s_gain):
        t1 = [a + g for a, g in zip(t0, t_gain)]
        s1 = [a + g for a, g in zip(s0, s_gain)]
        (v,) = _claims(_gap_rows(t0, t1, s0, s1, seeds=seeds), tiny_params, claim)
        return v

    holds = run([0.10, 0.11, 0.09], [0.01, 0.00, 0.02, 0.01, 0.015])  # the Transformer gains ~10, the SSM ~1
    assert holds.verdict == "holds" and holds.method == "Welch of paired gains"
    assert holds.difference == pytest.approx(10 - 1.1, abs=1e-6)
    reverses = run([0.01, 0.00, 0.02], [0.10, 0.11, 0.09, 0.10, 0.105])  # the SSM gains more: the gap widens
    assert reverses.verdict == "contradicted" and reverses.difference < 0
    none = run([0.01, -0.01, 0.005], [0.00, 0.01, -0.01, 0.005, 0.0])  # neither gains: no effect to find
    assert none.verdict == "inconclusive" and none.low < 0 < none.high


def test_a_claim_resting_on_an_unconverged_or_chance_cell_says_so(tiny_params):
    claim = "SPT beats scratch for Transformers"
    base = _arm_rows("transformer", "scratch", [0.30, 0.32, 0.31], majority_accuracy=0.1, val_rising=False)
    spt = _arm_rows("transformer", "masked_spt", [0.40, 0.41, 0.42], majority_accuracy=0.1, val_rising=True)
    (v,) = _claims(base + spt, tiny_params, claim)
    assert v.verdict == "not converged" and "transformer/masked_spt" in v.evidence
    # the lower arm at chance is evidence for the claim (scratch cannot learn it; SPT can)
    chance = _arm_rows("transformer", "scratch", [0.17, 0.165, 0.171], majority_accuracy=0.162, val_rising=False)
    spt_ok = _arm_rows("transformer", "masked_spt", [0.40, 0.41, 0.42], majority_accuracy=0.162, val_rising=False)
    (c,) = _claims(chance + spt_ok, tiny_params, claim)
    assert c.verdict == "holds"
    # the arm the claim says is higher is at chance: no claim rests on it
    spt_chance = _arm_rows("transformer", "masked_spt", [0.172, 0.17, 0.175], majority_accuracy=0.162,
                           val_rising=False)
    (c,) = _claims(chance + spt_chance, tiny_params, claim)
    assert c.verdict == "at chance" and "transformer/masked_spt" in c.evidence


def test_still_rising_ignores_a_noisy_plateau():
    from components.stages.finetune import still_rising

    def hist(accs):
        return [{"step": 10 * (i + 1), "accuracy": a} for i, a in enumerate(accs)]

    assert still_rising(hist([0.2, 0.4, 0.5, 0.49, 0.51, 0.5, 0.49, 0.5, 0.503, 0.5]), 100) is False  # plateau
    assert still_rising(hist([0.2, 0.3, 0.35, 0.4, 0.42, 0.45, 0.47, 0.5, 0.53, 0.56]), 100) is True  # climbing
    assert still_rising(hist([0.2]), 100) is None


def test_zero_spread_pairs_are_no_verdict_not_a_welch_interval(tiny_params):
    rows = (_arm_rows("transformer", "scratch", [0.30, 0.32, 0.31])
            + _arm_rows("transformer", "masked_spt", [0.31, 0.33, 0.32]))  # +1 point on every seed
    (v,) = _claims(rows, tiny_params, "SPT beats scratch for Transformers")
    assert v.verdict == "no verdict" and v.method == "paired t" and "no spread" in v.evidence


def test_many_claims_are_one_family_under_holm(tiny_params):
    """Seven SPT comparisons, each with a raw one-sided p of 0.01: alone each would hold (its 95%
    interval excludes 0); judged as one family, Holm's adjustment leaves none holding."""
    seeds, t = (0, 1, 2, 3, 4), sst.t.ppf(0.99, 4)
    z = (np.arange(5) - 2) / math.sqrt(2.5)  # mean 0, sd 1
    gain = (t / math.sqrt(5) + z) / 100  # per-seed differences in accuracy: mean / (sd / sqrt(5)) = t
    rows = []
    for arch in ("transformer", "transformer_rotary", "transformer_local", "s4d", "s4d_inv", "dlr", "s4d_rand"):
        rows += _arm_rows(arch, "scratch", [0.30] * 5, seeds) + _arm_rows(arch, "masked_spt", list(0.30 + gain), seeds)
    verdicts = [v for v in check(_results(rows), tiny_params.archs, tiny_params.inits)
                if v.claim.startswith("SPT beats scratch for") and v.verdict != "not run"]
    assert len(verdicts) == 7
    for v in verdicts:
        assert v.p_raw == pytest.approx(0.01, rel=1e-6) and v.low > 0  # alone: holds
        assert v.p_holm >= 0.07 - 1e-9 and v.verdict == "inconclusive"  # in the family: not after correction


def test_unpaired_arms_use_welch_and_diverged_seeds_are_reported(tiny_params):
    rows = _arm_rows("transformer", "scratch", [0.30, 0.31, 0.32])
    rows += _arm_rows("transformer", "masked_spt", [0.40, 0.41, 0.42], seeds=(0, 1, 5))
    rows += [{"arch": "transformer", "init": "masked_spt", "seed": 6, "status": "diverged", "reason": "nan"}]
    (v,) = _claims(rows, tiny_params, "SPT beats scratch for Transformers")
    assert v.method == "Welch" and v.verdict == "holds"
    assert "1 seed run(s) diverged or failed (seed 6)" in v.evidence  # kept in the record, never silently dropped


def test_an_arm_that_never_finished_is_a_result_not_a_missing_arm(tiny_params):
    scratch = _arm_rows("transformer", "scratch", [0.30, 0.31, 0.32, 0.33], seeds=(0, 1, 2, 3))
    dead = [{"arch": "transformer", "init": "masked_spt", "seed": s, "status": "diverged", "reason": "nan"}
            for s in (0, 1, 2, 3)]

    def spt(rows):
        (v,) = _claims(rows, tiny_params, "SPT beats scratch for Transformers")
        return v

    v = spt(scratch + dead)
    assert v.verdict == "no verdict" and v.n == 0
    assert "no seed of these arms finished" in v.evidence and "4 seed run(s) diverged or failed (seed 0, 1, 2, 3)" in v.evidence
    # same seeds, but only two pairs finished: the two arms' own spreads (3 seeds each) give a Welch interval
    part = _arm_rows("transformer", "masked_spt", [0.50, 0.52, 0.51], seeds=(0, 1, 2)) + [dead[3]]
    scratch[0].update(status="failed", test_accuracy=None)
    v = spt(scratch + part)
    assert v.method == "Welch" and v.verdict == "holds" and v.n == 3
    assert spt([r for r in scratch if r["seed"] != 0]).verdict == "not run"  # no SPT arm at all
    # fewer than 3 finished seeds on a side: a difference, but no interval and no verdict
    few = _arm_rows("transformer", "masked_spt", [0.50, 0.52], seeds=(0, 1))
    v = spt(scratch[1:3] + few)
    assert v.verdict == "no verdict" and "3 or more are needed" in v.evidence and not math.isnan(v.difference)


# ----------------------------------------------------------------------------------------------
# the whole protocol on real (tiny) training


def test_test_rows_never_reach_training_or_selection(workdir, raw_params, monkeypatch):
    from components.stages import materialize

    raw_params["grid"].update(archs=["s4d"], inits=["scratch", "masked_spt"], seeds=[0, 1])
    params = parse_params(tuned(raw_params, 2))
    materialize.run(params, "listops")
    test_file = paths.split_path("listops", "test")
    hidden = test_file.with_name("hidden")
    test_file.rename(hidden)  # no test rows exist while tuning: reading them would fail
    reads = []
    for module in (pretrain, finetune, evaluate):
        real = module.load_split
        monkeypatch.setattr(module, "load_split", lambda task, split, limit=None, real=real:
                            reads.append(split) or real(task, split, limit))
    for init in ("scratch", "masked_spt"):
        tune.run(params, "listops", "s4d", init)
    assert "test" not in reads and {"train", "val"} <= set(reads)
    sel = selection.selected(params, "listops", "s4d", "masked_spt")
    assert sel.status == "ok" and sel.selected in (0, 1) and sel.rule == tuning.RULE
    assert sel.values == tuning.candidates(params.tuning)[sel.selected]
    assert set(read_json(paths.selection_path("listops", "s4d", "masked_spt"))["scores"]) == {"0", "1"}
    trial_record = paths.metrics_path(Cell("listops", "s4d", "masked_spt", 1000, 1.0, sel.selected))
    assert trial_record.exists() and records.load(CellRecord, trial_record).test_accuracy is None

    hidden.rename(test_file)
    reads.clear()
    cell = Cell("listops", "s4d", "masked_spt", 0)
    spec = resolve(params, cell)  # the selected settings, on a grid seed
    assert spec.finetune.lr == sel.values["finetune.lr"] and spec.choice.trial == sel.selected
    pretrain.run(spec)
    finetune.run(spec)
    assert "test" not in reads
    record = evaluate.load_info(cell)
    defaults = resolve(params, cell, selection.defaults())
    assert record.config_hash == spec.config_hash != defaults.config_hash
    evaluate.run(spec)
    assert reads.count("test") == 1  # read once, by the evaluation of the selected configuration


def test_a_changed_setting_refuses_a_stale_selection(workdir, raw_params, monkeypatch):
    from components import versioning
    from components.atomic import write_json

    raw = tuned(raw_params, 2)
    params, cell = parse_params(raw), Cell("listops", "s4d", "scratch", 0)
    chosen = {"task": "listops", "arch": "s4d", "init": "scratch", "seed": 1000, "reason": "",
              "candidates": tuning.candidates(params.tuning), "trials": 2, "values": {}, "status": "ok",
              "selected": 0, "rule": tuning.RULE, "metric": "val_accuracy"}
    write_json(chosen, paths.selected_path("listops", "s4d", "scratch"))
    with pytest.raises(ConfigError, match="selected under other training settings"):  # no record of its settings
        resolve(params, cell)
    write_json({**chosen, "scores": {"0": 0.5, "1": 0.4}, "tune_run_id": None,
                "settings": selection.settings_hash(params, "listops", "s4d", "scratch")},
               paths.selection_path("listops", "s4d", "scratch"))
    assert resolve(params, cell).choice.trial == 0  # matches: fine
    changed = parse_params({**raw, "tuning": {**raw["tuning"], "seed": 5}})
    with pytest.raises(ConfigError, match="selected under other tuning settings"):
        resolve(changed, cell)
    for other in ({**raw, "finetune": {**raw["finetune"], "steps": 7}},  # the trials trained otherwise
                  {**raw, "grid": {**raw["grid"], "fractions": [0.5, 1.0]}}):  # were scored over other fractions
        with pytest.raises(ConfigError, match="selected under other training settings or code"):
            resolve(parse_params(other), cell)
    monkeypatch.setattr(versioning, "code_version", lambda: "000000000000")
    with pytest.raises(ConfigError, match="selected under other training settings or code"):
        resolve(params, cell)


def test_the_code_version_is_part_of_the_config_hash(tiny_params, monkeypatch):
    from components import versioning

    cell = Cell("listops", "s4d", "scratch", 0)
    before = config_hash(tiny_params, cell)
    assert len(versioning.code_version()) == 12
    monkeypatch.setattr(versioning, "code_version", lambda: "000000000000")
    assert config_hash(tiny_params, cell) != before


def test_budget_counts_pretraining_once_per_start_and_every_trial():
    def rec(init, seed, frac, trial=None, **kw):
        base = {"task": "t", "arch": "a", "init": init, "seed": seed, "fraction": frac, "status": "ok",
                "pretrain_steps": 10 if init == "spt" else 0, "pretrain_tokens": 100 if init == "spt" else 0,
                "pretrain_seconds": 1.0 if init == "spt" else 0.0, "finetune_steps": 5, "finetune_tokens": 50,
                "finetune_seconds": 0.5}
        return {**base, **({"trial": trial} if trial is not None else {}), **kw}

    results = pd.DataFrame([rec(i, s, f) for i in ("scratch", "spt") for s in (0, 1) for f in (0.5, 1.0)])
    trials = pd.DataFrame([rec(i, 9, f, t) for i in ("scratch", "spt") for t in (0, 1) for f in (0.5, 1.0)]
                          + [rec("spt", 9, 1.0, 2, status="diverged")])
    sel = {("t", "a", i): {"trials": 3, "selected": 0, "values": {"finetune.lr": 1e-3, "pretrain.lr": 2e-3},
                           "scores": {"0": 0.5, "1": 0.4, "2": None if i == "spt" else 0.3}} for i in ("scratch", "spt")}
    b = budget(results, trials, sel).set_index("init")
    assert b.loc["spt", "steps_per_seed"] == 10 + 2 * 5 and b.loc["scratch", "steps_per_seed"] == 2 * 5
    assert b.loc["spt", "tuning_steps"] == 2 * (10 + 2 * 5) and b.loc["spt", "trials_finished"] == 2
    assert b.loc["spt", "total_tokens"] == 2 * (100 + 100) + 2 * (100 + 100)
    assert b.loc["scratch", "trials_finished"] == 3  # what selection scored, not what the records hold
    assert "pretrain.lr" not in b.loc["scratch", "selected"] and "pretrain.lr 0.002" in b.loc["spt", "selected"]
    # self-pretraining on each fraction's own rows: one pretraining per (seed, fraction), each counted
    own = pd.DataFrame([rec("spt", s, f, pretrain_run_id=f"p{s}-{f}") for s in (0, 1) for f in (0.5, 1.0)])
    shared = pd.DataFrame([rec("spt", s, f, pretrain_run_id=f"p{s}") for s in (0, 1) for f in (0.5, 1.0)])
    assert budget(own, pd.DataFrame(), {}).loc[0, "steps_per_seed"] == 2 * 10 + 2 * 5
    assert budget(shared, pd.DataFrame(), {}).loc[0, "steps_per_seed"] == 10 + 2 * 5


@pytest.mark.slow
def test_tuned_grid_flow_end_to_end_then_rerun_trains_nothing(workdir, raw_params, prefect_harness, monkeypatch):
    import flows.cell
    from flows.grid import grid_flow

    raw_params["grid"].update(archs=["transformer", "s4d"], inits=["scratch"], seeds=[0, 1, 2])
    (workdir / "params.yaml").write_text(yaml.safe_dump(tuned(raw_params, 2)))
    summary = grid_flow("params.yaml", return_state=True).result()
    assert len(summary["ran"]) == 2 * 2 + 2 * 3 and not summary["failed"]  # 2 trials + 3 seeds per arm
    md = (paths.report_dir() / "grid.md").read_text()
    assert "## Tuning budget" in md and "| 2/2 |" in md and "trial " in md
    claims = pd.read_csv(paths.report_dir() / "claims.csv")
    assert set(claims["verdict"]) <= {"holds", "contradicted", "inconclusive", "not run", "no verdict", "premise not met",
                                      "not converged", "at chance"}
    grid = pd.read_csv(paths.report_dir() / "grid.csv")
    assert (grid["acc_low"].notna() | grid["acc_std"].eq(0)).all() and (grid["acc_low"].fillna(0) <= grid["acc_mean"]).all()
    assert grid["state_size"].notna().tolist() == [False, True]  # transformer: none; s4d: its modes
    assert (grid["flops_per_token"] > 0).all() and grid["derived_by"].str.len().eq(12).all()

    from mlflow.tracking import MlflowClient

    from components import tracking

    client = MlflowClient(tracking.tracking_uri())
    exp = client.get_experiment_by_name(raw_params["tracking"]["experiment"])
    tunes = client.search_runs([exp.experiment_id], "tags.stage = 'tune'")
    assert len(tunes) == 2 and all("selected_trial" in r.data.tags for r in tunes)
    trial_runs = client.search_runs([exp.experiment_id], "tags.stage = 'finetune' and tags.trial = '1'")
    assert {r.data.tags["mlflow.parentRunId"] for r in trial_runs} == {r.info.run_id for r in tunes}

    def refuse(*args, **kwargs):
        raise AssertionError("a re-run with nothing changed trained something")

    monkeypatch.setattr(flows.cell, "run_unit", refuse)
    import flows.grid

    monkeypatch.setattr(flows.grid, "run_unit", refuse)
    again = grid_flow("params.yaml", return_state=True).result()
    assert again["ran"] == [] and len(again["recorded_before"]) == 10


def test_values_that_came_through_json_give_the_same_config_hash(raw_params):
    params = parse_params(tuned(raw_params, 2))
    point = tuning.candidates(params.tuning)[1]
    through_json = {k: float(v) for k, v in point.items()}  # a Prefect parameter turns 24 into 24.0
    cell = Cell("listops", "s4d", "scratch", 0)
    here, there = tuning.apply(params, "s4d", point), tuning.apply(params, "s4d", through_json)
    assert isinstance(there.finetune.warmup_steps, int) and here == there
    from components.records import Choice

    assert resolve(params, cell, Choice(rule="x", values=through_json)).config_hash == \
        resolve(params, cell, Choice(rule="x", values=point)).config_hash


def test_search_space_bounds_are_checked(raw_params):
    for space, expected in (({"finetune.warmup_steps": {"low": 0, "high": 9}}, "need `integer: true`"),
                            ({"finetune.grad_clip": {"low": 0, "high": 1}}, "low must be > 0"),
                            ({"pretrain.weight_decay": {"low": -1, "high": 1}}, "low must be >= 0")):
        with pytest.raises(ConfigError, match=expected):
            parse_params({**raw_params, "tuning": {"trials": 2, "space": space}})


def test_an_arm_without_a_finished_trial_has_no_configuration_to_run(workdir, raw_params, monkeypatch):
    from components.stages import plan

    raw_params["grid"].update(archs=["s4d"], inits=["scratch"])
    params = parse_params(tuned(raw_params, 2))
    def diverged(t):
        return CellRecord(task="listops", arch="s4d", init="scratch", seed=1000, trial=t, status="diverged",
                          reason="loss is nan")

    sel = tune.write_selection(params, "listops", "s4d", "scratch",
                               {Cell("listops", "s4d", "scratch", 1000, 1.0, t): diverged(t) for t in (0, 1)})
    assert sel.status == "failed" and sel.selected is None and sel.scores == {"0": None, "1": None}
    monkeypatch.setattr(plan.tracking, "recorded", lambda experiment: {})
    todo = plan.make(params)
    assert todo.run == [] and "no tuning trial finished" in todo.blocked[Cell("listops", "s4d", "scratch", 0)]
    with pytest.raises(selection.ArmFailed):  # never the defaults in its place
        selection.choice(params, Cell("listops", "s4d", "scratch", 0))
    assert resolve(params, Cell("listops", "s4d", "scratch", 0)).blocked
