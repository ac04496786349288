"""The papers' published numbers (components/references): the shipped file loads and validates,
anchor facts the notes state with high confidence are there, names are ours or documented, and a
malformed file fails with one line naming the row."""
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from components import references
from components.references import COLUMNS, load, lookup

ROOT = Path(__file__).resolve().parents[1]
LRA6 = ["listops", "text", "retrieval", "image", "pathfinder32", "pathx"]


@pytest.fixture(scope="module")
def papers() -> pd.DataFrame:
    return load()


def _one(frame: pd.DataFrame, **where) -> pd.Series:
    hit = frame
    for col, want in where.items():
        hit = hit[hit[col] == want]
    assert len(hit) == 1, f"{where}: {len(hit)} rows"
    return hit.iloc[0]


def test_shipped_file_loads(papers):
    assert list(papers.columns) == COLUMNS
    assert papers["value"].dtype == "float64"
    assert set(papers["paper"]) == {"spt", "las", "fpt"}
    assert set(papers["confidence"]) <= {"verified", "likely", "unverified"}
    acc = papers[papers["metric"].str.endswith("_pct")]["value"]
    assert acc.between(0, 100).all()
    assert references.PATH == Path(references.__file__).with_name("papers.csv")


@pytest.mark.parametrize("where, value", [
    # SPT Table 1, Transformers + Causal SPT (verified via the RTF citation)
    (dict(paper="spt", table="Table 1", task="lra_avg", arch="transformer_causal", init="causal_spt"), 81.81),
    (dict(paper="spt", table="Table 1", task="pathx", arch="transformer_causal", init="causal_spt"), 88.05),
    # SPT Table 1, Tay et al.'s Transformer from scratch
    (dict(paper="spt", table="Table 1", task="listops", arch="transformer", init="scratch"), 36.37),
    # SPT headline: SPT rotary Transformer 86.21 beats from-scratch S4 86.09 (prose "86.2 vs 86.1")
    (dict(paper="spt", table="Table 2", task="lra_avg", arch="transformer_rotary", init="masked_spt"), 86.21),
    (dict(paper="spt", table="Table 2", task="lra_avg", arch="s4", init="scratch"), 86.09),
    # SPT §3.3 prose: "DLR outperforms a trained from scratch S4 (83.4 vs 82.8) ... SPT S4 (83.4 vs 84.5)"
    (dict(paper="spt", task="lra4_avg", arch="dlr", init="masked_spt"), 83.4),
    (dict(paper="spt", task="lra4_avg", arch="s4", init="masked_spt"), 84.5),
    # SPT §3.7 prose: sCIFAR "(90.3 vs 91.7)"
    (dict(paper="spt", task="cifar10_color", arch="transformer_rotary", init="masked_spt", metric="accuracy_pct"), 90.3),
])
def test_verified_anchors(papers, where, value):
    row = _one(papers, **where)
    assert row["value"] == pytest.approx(value)
    assert row["confidence"] == "verified"


def test_anchors_with_their_stated_confidence(papers):
    # FPT Table 1 is [secondary] in the notes; LaS's LRA table is the notes' recollection
    assert _one(papers, paper="fpt", table="Table 1", task="listops", arch="fpt", init="fpt_frozen")["value"] == 38.4
    assert _one(papers, paper="fpt", table="Table 1", task="listops", arch="fpt")["confidence"] == "likely"
    las = _one(papers, paper="las", table="Table 1", task="lra_avg", arch="las")
    assert (las["value"], las["confidence"]) == (73.99, "unverified")
    masked = papers[(papers["table"] == "Table 1") & (papers["paper"] == "spt") & (papers["init"] == "masked_spt")]
    assert len(masked) == 7 and set(masked["confidence"]) == {"unverified"}
    # the recalled S4 + Masked SPT per-task cells are rejected by the notes: only PathX-256 and the average
    s4_spt = papers[(papers["paper"] == "spt") & (papers["table"] == "Table 2") & (papers["arch"] == "s4")
                    & (papers["init"] == "masked_spt")]
    assert sorted(s4_spt["task"]) == ["lra_avg", "path256"]


def test_lookup(papers):
    rows = lookup("pathx", "transformer_causal", "causal_spt")
    assert list(rows.columns) == COLUMNS and rows["value"].tolist() == [88.05]
    assert len(lookup("listops", "fpt", "fpt_frozen", metric="accuracy_pct")) >= 3  # FPT Tables 1, 2, Rothermel
    assert lookup("listops", "fpt", "fpt_frozen", metric="steps_to_converge")["value"].tolist() == [2e3]
    assert lookup("nope", None, None).empty
    assert len(lookup(None, None, None)) == len(papers)


def test_averages_match_their_cells(papers):
    """Every LRA row whose cells are all given averages to its printed Avg (how the notes vetted the
    recalled rows); LaS averages over the tasks that have a number, SPT Table 1 counts chance as 50."""
    lra = papers[papers["task"].isin(LRA6 + ["lra_avg"]) & (papers["metric"] == "accuracy_pct")
                 & papers["table"].str.startswith("Table")]
    checked = 0
    for (paper, table, model), g in lra.groupby(["paper", "table", "model"]):
        cells = g.set_index("task")["value"]
        if "lra_avg" not in cells or not set(LRA6) - {"pathx"} <= set(cells.index):
            continue
        vals = [cells[t] for t in LRA6 if t in cells]
        if paper == "spt" and table == "Table 1" and "pathx" not in cells:
            vals.append(50.0)  # "✗ denotes chance accuracy", counted in the 6-task mean
        assert sum(vals) / len(vals) == pytest.approx(cells["lra_avg"], abs=0.006), (paper, table, model)
        checked += 1
    assert checked >= 12


def test_fpt_table15_last_column_is_table2_rounded(papers):
    full = papers[(papers["table"] == "Table 15/19") & papers["model"].str.contains(r"\+positions")]
    t2 = papers[(papers["table"] == "Table 2") & (papers["paper"] == "fpt") & (papers["init"] == "fpt_frozen")]
    assert dict(zip(full["task"], full["value"])) == {t: float(round(v)) for t, v in zip(t2["task"], t2["value"])}


def _documented_names() -> set[str]:
    """The names listed under "Names that are not ours" in components/references/README.md."""
    text = (ROOT / "components/references/README.md").read_text(encoding="utf-8")
    section = text.split("## Names that are not ours", 1)[1].split("\n## ", 1)[0]
    heads = [line.split(":", 1)[0] for line in section.splitlines() if line.startswith("- `")]
    return {name for head in heads for name in re.findall(r"`([a-z0-9_]+)`", head)}


def _our_names() -> dict[str, set[str]]:
    text = (ROOT / "params.yaml").read_text()
    raw = yaml.safe_load(text)
    # file-based tasks are commented out in params.yaml (README "Datasets"): "  # text: {kind: imdb, ...}"
    commented = set(re.findall(r"^  # ([a-z0-9_]+):\s*\{kind:", text, flags=re.M))
    return {"task": set(raw["tasks"]) | commented, "arch": set(raw["archs"]), "init": set(raw["inits"])}


def test_names_are_ours_or_documented(papers):
    ours, documented = _our_names(), _documented_names()
    assert {"text", "retrieval", "image", "cifar10_color", "mnist", "homology"} <= ours["task"]
    for col in ("task", "arch", "init"):
        unknown = set(papers[col]) - ours[col] - documented
        assert not unknown, f"{col}: {sorted(unknown)} are neither in params.yaml nor in references/README.md"
    # and the documentation lists no name that is unused
    used = set(papers["task"]) | set(papers["arch"]) | set(papers["init"])
    assert documented <= used, sorted(documented - used)


GOOD = ("spt,Table 1,listops,transformer,Transformer,scratch,accuracy_pct,36.37,LRA sizes,verified,"
        "spt.md §1.1")


@pytest.mark.parametrize("bad, expected", [
    ("fpr,Table 1,listops,transformer,T,scratch,accuracy_pct,36.37,s,verified,n", "row 2 (line 3), column 'paper'"),
    ("spt,Table 1,listops,transformer,T,scratch,accuracy_pct,abc,s,verified,n", "row 2 (line 3), column 'value'"),
    ("spt,Table 1,listops,transformer,T,scratch,accuracy_pct,136.37,s,verified,n", "column 'value': 136.37 is outside"),
    ("spt,Table 1,listops,transformer,T,scratch,accuracy_pct,36.37,s,sure,n", "row 2 (line 3), column 'confidence'"),
    ("spt,Table 1,listops,transformer,T,scratch,accuracy,36.37,s,verified,n", "row 2 (line 3), column 'metric'"),
    ("spt,Table 1,ListOps,transformer,T,scratch,accuracy_pct,36.37,s,verified,n", "row 2 (line 3), column 'task'"),
    ("spt,Table 1,listops,transformer,T,,accuracy_pct,36.37,s,verified,n", "row 2 (line 3), column 'init': is empty"),
    ("spt,Table 1,listops,transformer,T,scratch,accuracy_pct,36.37,s,verified", "row 2 (line 3): 10 fields"),
    (GOOD, "row 2 (line 3), column 'setting': duplicates row 1"),
])
def test_bad_rows_fail_naming_the_row(tmp_path, bad, expected):
    path = tmp_path / "papers.csv"
    path.write_text(",".join(COLUMNS) + "\n" + GOOD + "\n" + bad + "\n", encoding="utf-8")
    with pytest.raises(ValueError) as err:
        load(path)
    message = str(err.value)
    assert expected in message and "\n" not in message and message.startswith("papers.csv ")


def test_bad_header_fails(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text(",".join(COLUMNS[:-1] + ["notes"]) + "\n" + GOOD + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"^other.csv header: missing \['source_note'\]; unknown \['notes'\]$"):
        load(path)
    assert len(load(_write(tmp_path, GOOD))) == 1


def _write(tmp_path, *lines) -> Path:
    path = tmp_path / "ok.csv"
    path.write_text("\n".join([",".join(COLUMNS), *lines]) + "\n", encoding="utf-8")
    return path
