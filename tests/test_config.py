import pytest
import yaml

from flows.cli import main
from components.config import ConfigError, load_params, parse_params
from tests.conftest import ROOT


def test_shipped_params_validate():
    params = load_params(ROOT / "params.yaml")
    assert set(params.grid.archs) <= set(params.archs)
    assert params.archs["s4d"].kind == "s4d"


@pytest.mark.parametrize("edit, expected", [
    (lambda r: r["archs"]["transformer"].update(d_modle=64), "archs.transformer.d_modle: unknown key"),
    (lambda r: r["finetune"].update(steps="many"), "finetune.steps:"),
    (lambda r: r["tasks"]["listops"].update(mask_ratio=1.5), "tasks.listops.mask_ratio:"),
    (lambda r: r["inits"].update(spt_bad={"kind": "scratch", "mask_ratio": 0.2}),
     "inits.spt_bad: mask_ratio applies to masked_spt only"),
    (lambda r: r["inits"].update(x={"kind": "fpt_frozen", "pretrain_share": 0.5, "total_steps": 9}),
     "inits.x: pretrain_share applies"),
    (lambda r: r["inits"].update(x={"kind": "masked_spt", "pretrain_share": 0.5}), "inits.x: pretrain_share and total_steps go"),
    (lambda r: r["grid"].update(seeds=[0, 1, 0]), "grid: seeds lists an entry twice"),
    (lambda r: r["inits"].update(x={"kind": "masked_sp"}), "inits.x.kind:"),
    (lambda r: r["grid"].update(inits=["scratch", "masked_sptt"]), "grid.inits: 'masked_sptt' is not defined"),
    (lambda r: r["grid"].update(fractions=[0.1, 1]), "grid.fractions: 1 must be a decimal"),
    (lambda r: r["grid"].update(exclude=[{"arch": "fptt"}]), "grid.exclude.0.arch: 'fptt' is not defined"),
    (lambda r: r["finetune"].update(epochs=2), "finetune: set exactly one of steps and epochs"),
    (lambda r: r["finetune"].update(steps_by_arch={"gru": 5}), "finetune.steps_by_arch: 'gru' is not defined"),
    (lambda r: r["finetune"].update(steps=0), "finetune.steps: Input should be greater than or equal to 1"),
    (lambda r: r["archs"]["s4d"].update(kind="mamba"), "archs.s4d:"),
    (lambda r: r["archs"]["lstm"].update(bidirectional=True, d_model=15), "archs.lstm: a bidirectional LSTM needs an even"),
    (lambda r: r["archs"]["las"].update(pool=4), "archs.las: pool=4 must be odd"),
    (lambda r: r["archs"]["fpt"].update(backbone="gpt2"), "archs.fpt: backbone gpt2 needs `path`"),
    (lambda r: r["grid"].update(archs=["transformer", "mamba"]), "grid.archs: 'mamba' is not defined"),
    (lambda r: r["finetune"]["lr"].pop("s4d"), "finetune.lr: no learning rate for arch 's4d'"),
    (lambda r: r.update(extra_section={}), "extra_section: unknown key"),
    (lambda r: r["tasks"]["digits"].update(n_val=1000, n_test=900), "the digits have 1797 images; n_val + n_test = 1900"),
    (lambda r: r["tasks"]["digits"].update(n_train=1795), "n_train = 1795 but only 1789 images are left"),
])
def test_bad_params_fail_with_one_line_naming_the_key(raw_params, edit, expected):
    edit(raw_params)
    with pytest.raises(ConfigError) as err:
        parse_params(raw_params, "params.yaml")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("params.yaml: ")
    assert expected in message


def test_cli_reports_config_error_in_one_line(tmp_path, raw_params, capsys):
    raw_params["archs"]["transformer"]["n_heads"] = "four"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw_params))
    assert main(["--params", str(path), "report"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "archs.transformer.n_heads" in err


def test_cli_rejects_unknown_cell_keys(tmp_path, raw_params, capsys):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw_params))
    assert main(["--params", str(path), "pretrain", "--task", "listops", "--arch", "gpt", "--init", "scratch",
                 "--seed", "0"]) == 2
    assert "--arch gpt" in capsys.readouterr().err


def test_missing_params_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_params(tmp_path / "nope.yaml")
