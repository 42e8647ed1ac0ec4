"""One command grammar (issue 23): ``galaxies VERB INPUTS... OUTPUT`` in the same order everywhere,
options that mean one thing, the one-line error handler on every command, and a renamed option
answered in one line naming its new spelling."""
import click
import numpy as np
import pytest
from click.testing import CliRunner

from galaxies.interfaces.cli import main
from galaxies.interfaces.cli.options import FLOAT_OR_RANDOM, PROFILE_OPTION, Command

from cutout_files import one_line_error

#: every command's positional arguments, as its usage line names them: the inputs, then the
#: output (none for the commands that only print or build a profile's sets)
POSITIONALS = {
    "generate": ["FILE"],
    "generate-test": ["FILE"],
    "datasets": [],
    "run": [],
    "train": ["DATA", "MODEL_DIR"],
    "predict": ["[MODEL_DIR] DATA PRED"],
    "crb": ["[DATA]"],
    "fit": ["DATA", "PRED"],
    "refine": ["[MODEL_DIR] DATA OUT"],
    "evaluate": ["DATA", "PRED"],
    "measure": ["FILES...", "OUTPUT"],
}

#: the options renamed by issue 23, and (a part of) the words that name the new spelling
RENAMED = {
    ("generate", "--size"): "--rows", ("generate", "--psf"): "--psf-fwhm",
    ("generate-test", "--size"): "--rows", ("generate-test", "--psf"): "--psf-fwhm",
    ("crb", "--psf"): "--psf-fwhm", ("crb", "--dataset"): "DATA",
    ("train", "--data"): "DATA", ("train", "--out"): "MODEL_DIR", ("train", "--size"): "--arch",
    ("measure", "--out"): "OUTPUT",
}

#: options spelled alike in two commands that mean different things, and why that is kept
DIFFERENT_MEANINGS = {
    # train's --model chooses a builder (the brief of issue 23); measure's names a trained
    # network's directory, as it did before
    "--model",
    # the recipes of `datasets`, the steps of `run`
    "--only",
}


def runner() -> CliRunner:
    """A runner that keeps stderr apart from stdout (the default from click 8.2 on)."""
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:
        return CliRunner()


def invoke(*args):
    return runner().invoke(main, [str(a) for a in args])


def positionals(command) -> list[str]:
    ctx = click.Context(command)
    return [p.make_metavar(ctx) for p in command.params if isinstance(p, click.Argument)]


def options(name: str):
    """``(command, option)`` for every command that has the option ``name``."""
    return [(command, p) for command in main.commands.values() for p in command.params
            if isinstance(p, click.Option) and name in p.opts]


# ---------------------------------------------------------------- (a) INPUTS... OUTPUT

def test_every_command_is_in_the_table():
    assert sorted(main.commands) == sorted(POSITIONALS)


@pytest.mark.parametrize("name", sorted(POSITIONALS))
def test_positional_arguments_are_inputs_then_the_output(name):
    assert positionals(main.commands[name]) == POSITIONALS[name]
    usage = main.commands[name].get_usage(click.Context(main.commands[name], info_name=name))
    assert usage.endswith(" ".join(["[OPTIONS]", *POSITIONALS[name]]).strip()), usage


def test_no_command_takes_its_inputs_or_output_as_an_option():
    for command in main.commands.values():
        for param in command.params:
            if isinstance(param, click.Option):
                assert not {"--data", "--dataset", "--out", "--output"} & set(param.opts), (
                    command.name, param.opts)


# ----------------------------------------------------------------- (b) one meaning each

def test_profile_is_the_shared_option_everywhere():
    reference = next(p for p in PROFILE_OPTION(lambda profile: None).__click_params__)
    found = options("--profile")
    assert {c.name for c, _ in found} >= {"datasets", "run", "train", "predict", "measure"}
    for command, option in found:
        assert option.type.choices == reference.type.choices, command.name
        assert option.envvar == reference.envvar == "GALAXIES_PROFILE", command.name
        assert (option.default, option.help) == (reference.default, reference.help), command.name


def test_psf_is_a_file_and_psf_fwhm_a_number_wherever_they_appear():
    assert options("--psf") and options("--psf-fwhm")
    for command, option in options("--psf"):
        assert isinstance(option.type, click.Path), command.name
    for command, option in options("--psf-fwhm"):
        assert option.type in (click.FLOAT, FLOAT_OR_RANDOM), command.name
    for command, option in options("--force"):
        assert option.is_flag, command.name
    assert FLOAT_OR_RANDOM.convert("random", None, None) is None
    assert FLOAT_OR_RANDOM.convert("0.5", None, None) == 0.5


def test_an_option_spelled_alike_has_one_type():
    types = {}
    for command in main.commands.values():
        for option in command.params:
            if isinstance(option, click.Option):
                # a number, or (generate's) a number or 'random': a number either way
                number = option.type in (click.FLOAT, FLOAT_OR_RANDOM)
                kind = ("float" if number else type(option.type).__name__, option.is_flag,
                        option.multiple)
                for name in option.opts:
                    types.setdefault(name, {}).setdefault(kind, []).append(command.name)
    mixed = {name: kinds for name, kinds in types.items()
             if len(kinds) > 1 and name not in DIFFERENT_MEANINGS}
    assert not mixed


# --------------------------------------------------- (c) one line for a user error, status 2

def test_every_command_is_made_by_the_command_class():
    for name, command in main.commands.items():
        assert isinstance(command, Command), name


@pytest.fixture
def predictions(tmp_path):
    from galaxies.storage import files
    return files.write_predictions(tmp_path / "pred.h5", np.zeros((2, 5)), np.arange(2),
                                   estimator="x", dataset="snr60", seconds_per_image=1e-3)


def test_every_command_answers_a_user_error_in_one_line(tmp_path, predictions):
    missing = tmp_path / "missing.h5"
    out = tmp_path / "out.h5"
    cases = {
        "generate": (["generate", out, "--rows", "5", "--psf-fwhm", "2.0"], ["psf_fwhm = 2"]),
        "generate-test": (["generate-test", out, "--rows", "5", "--sersic-n", "9"],
                          ["sersic_n = 9"]),
        "datasets": (["datasets", "--only", "nonexistent"], ["nonexistent"]),
        "run": (["run", "--only", "nonexistent-step"], ["nonexistent-step"]),
        "train": (["train", missing, tmp_path / "m", "--arch", "blocks"], ["--arch", "KEY=VALUE"]),
        "predict": (["predict", "lbfgsb", missing, out], ["missing.h5"]),
        "crb": (["crb", "--sersic-r", "2"], ["sersic_r = 2"]),
        "fit": (["fit", missing, out], ["missing.h5"]),
        "refine": (["refine", missing, out, "--start", predictions], ["missing.h5"]),
        "evaluate": (["evaluate", missing, predictions, "--no-crb"], ["missing.h5"]),
        "measure": (["measure", tmp_path / "missing.fits", tmp_path / "o.csv", "--psf-fwhm",
                     "0.7"], ["missing.fits"]),
    }
    assert sorted(cases) == sorted(main.commands)
    for name, (args, words) in cases.items():
        one_line_error(invoke(*args), *words)
    assert not out.exists() and not (tmp_path / "o.csv").exists()


def test_a_usage_error_is_one_line_too(tmp_path):
    one_line_error(invoke("measure", tmp_path / "a.fits"), "FILES...", "OUTPUT")
    one_line_error(invoke("train", tmp_path / "a.h5"), "MODEL_DIR")
    one_line_error(invoke("generate", tmp_path / "a.h5", "--rows", "0"), "'--rows'")
    one_line_error(invoke("generate", tmp_path / "a.h5", "--rows", "2", "--psf-fwhm", "wide"),
                   "'--psf-fwhm'", "random")
    one_line_error(invoke("predict", "--profile", "huge"), "'--profile'")


def test_evaluate_says_the_order_when_the_predictions_come_first(tmp_path, predictions):
    import h5py
    data = tmp_path / "set.h5"
    h5py.File(data, "w").close()
    one_line_error(invoke("evaluate", predictions, data), "the order is DATA PRED",
                   f"galaxies evaluate {data} {predictions}")


def test_measure_without_a_model_uses_the_recommended_network(tmp_path, monkeypatch):
    from galaxies.runtime import profiles
    monkeypatch.setattr(profiles, "ROOT", tmp_path)  # no network trained here
    monkeypatch.delenv("GALAXIES_PROFILE", raising=False)
    cutout = tmp_path / "c.fits"
    cutout.write_bytes(b"")
    line = one_line_error(invoke("measure", cutout, tmp_path / "o.csv", "--method", "nn",
                                 "--psf-fwhm", "0.7", "--profile", "smoke"),
                          "recommended network of profile smoke", "--model DIR")
    assert str(profiles.get("smoke").recommended_dir) in line
    line = one_line_error(invoke("predict", cutout, tmp_path / "p.h5", "--profile", "smoke"),
                          "recommended network of profile smoke", "MODEL_DIR")


# ------------------------------------------------------- (d) renamed options, one line

def test_the_renamed_options_are_declared():
    declared = {(c.name, old) for c in main.commands.values() for old in c.renamed}
    assert declared == set(RENAMED)


@pytest.mark.parametrize("name, old", sorted(RENAMED))
def test_a_renamed_option_names_its_new_spelling(tmp_path, name, old):
    needed = {"train": ["a.h5", "m"], "measure": ["a.fits", "o.csv"]}.get(name, [])
    if name.startswith("generate"):
        needed = [tmp_path / "x.h5"]
    for spelling in ([old, "5"], [f"{old}=5"]):
        line = one_line_error(invoke(name, *needed, *spelling), f"{old} is now",
                              RENAMED[name, old], f"galaxies {name}")
        assert line.startswith(f"galaxies: error: {old} is now"), line
    assert list(tmp_path.iterdir()) == []


def test_the_seed_scripts_keep_their_spellings():
    from galaxies.interfaces.cli.data import study_arguments
    assert study_arguments(["f.h5", "--size", "3", "--psf=0.6", "--noise", "200", "--jobs", "2"]) \
        == ["f.h5", "--rows", "3", "--psf-fwhm=0.6", "--sigma", "200"]
