"""The report's headline paragraph says which claims hold, which do not, at what scale, and the
chance baseline per task."""
import pandas as pd

from components.report.claims import NOT_RUN, Verdict
from components.report.tables import headline


def test_headline_names_holding_contradicted_and_open_claims_with_chance_per_task():
    verdicts = [Verdict("SPT beats scratch for Transformers", "digits (10% labels)", "holds", "", 12.3),
                Verdict("LaS beats the vanilla Transformer from scratch", "listops", "contradicted", "", -2.0),
                Verdict("SPT beats scratch for SSMs", "listops", "inconclusive", "", 0.4),
                Verdict("SPT narrows the Transformer–SSM gap", "listops", "premise not met", ""),
                Verdict("Frozen-pretrained beats frozen-random", "bit_memory", NOT_RUN, "")]
    table = pd.DataFrame({"task": ["listops", "listops", "digits"], "majority_pct": [16.35, 16.35, 10.0]})
    text = headline(verdicts, table, "Profile `cpu`: small.")
    assert text.startswith("Profile `cpu`: small. Of 4 claim comparisons, 1 hold")
    assert "SPT beats scratch for Transformers (digits (10% labels): +12.3)" in text
    assert "Contradicted: LaS beats the vanilla Transformer from scratch (listops: -2.0)" in text
    assert "Inconclusive: SPT beats scratch for SSMs (listops: +0.4)" in text
    assert "premise not met 1" in text and "Frozen" not in text  # not run is not a comparison
    assert "Chance-level test accuracy" in text and "listops 16.4%, digits 10.0%" in text


def test_headline_of_a_grid_without_testable_claims_says_so():
    text = headline([Verdict("SPT beats scratch for SSMs", "listops", NOT_RUN, "")], pd.DataFrame({"task": []}))
    assert text == "No claim of the three papers could be tested on this grid's arms."


def test_bit_memory_chance_is_copying_the_visible_bits(raw_params):
    from components.config import parse_params
    from components.stages.report import copy_baseline, setting_note

    raw_params["tasks"]["bit_memory"].update(mask_prob=0.5)
    params = parse_params(raw_params)
    assert copy_baseline(params.tasks["bit_memory"]) == 0.75
    assert "copying the query's visible bits" in setting_note(params, "bit_memory") and "(75% per bit)" in setting_note(params, "bit_memory")


def test_scale_note_counts_the_seeds_each_cell_finished(raw_params):
    from components.config import parse_params
    from components.stages.report import scale_note

    params = parse_params(raw_params)
    rows = [("transformer", s, "ok") for s in (0, 1, 2)] + [("s4d", s, "ok") for s in (0, 1, 2, 3, 4)]
    results = pd.DataFrame([{"task": "listops", "arch": a, "init": "scratch", "fraction": 1.0, "seed": s,
                             "status": st, "finetune_steps": 500} for a, s, st in rows])
    assert "3–5 seeds per cell" in scale_note(params, results)
    assert "3 seeds per cell" in scale_note(params, results[results.arch == "transformer"])
    one = results[(results.arch == "s4d") & (results.seed == 0)]
    assert "1 seed per cell" in scale_note(params, one)
