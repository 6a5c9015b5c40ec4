"""numcnn summary's bounds on the input it builds (issue 15, item 9) and the one output-folder rule of every
``numcnn plot`` kind (item 16)."""

import shutil
import time

import pytest

from numcnn.cli import summary as summary_cli

pytest.importorskip("matplotlib")


def one_line(r) -> str:
    assert r.rc == 2, (r.out, r.err)
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err, r.err
    return r.err


# -- summary -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv, fragments", [
    (["--size", 100000], ["--size 100000", "allowed 1..1024"]),
    (["--in-channels", 1000000000], ["--in-channels 1000000000", "allowed 1..4096"]),
    (["--num-classes", 10**12], [f"--num-classes {10**12}", "allowed 1..10000"]),
    (["--in-channels", 4096, "--size", 1024], ["--in-channels 4096", "--size 1024", "4,294,967,296",
                                                "4,194,304 allowed"]),
])
def test_summary_refuses_huge_inputs_before_allocating(cli, monkeypatch, argv, fragments):
    def no_model(*a, **k):
        raise AssertionError("the model was built before the bounds were checked")

    monkeypatch.setattr(summary_cli.models, "get", no_model)
    start = time.perf_counter()
    err = one_line(cli("summary", "--model", "resnet", *argv))
    assert time.perf_counter() - start < 2.0
    for f in fragments:
        assert f in err, (f, err)


def test_summary_help_names_the_bounds(cli):
    r = cli("summary", "--help")
    assert r.rc == 0
    assert "1..1024" in r.out and "1..4096" in r.out and "1..10000" in r.out


@pytest.mark.parametrize("argv, shape", [
    (["--size", 256], "[1, 1, 256, 256]"),
    (["--in-channels", 4096, "--size", 32], "[1, 4096, 32, 32]"),  # at the product bound
])
def test_summary_takes_large_valid_inputs(cli, argv, shape):
    r = cli("summary", "--model", "resnet", *argv)
    assert r.rc == 0, r.err
    assert f"Input shape: {shape}" in r.lines


# -- plot: one output folder rule ---------------------------------------------------------------------------------

FEATURE_MAPS = ["feature-maps-00-input.png", "feature-maps-01-layer1.0.png", "feature-maps-02-layer2.0.png"]
FILES = {"activations": ["activations.png"], "filters": ["filters.png"], "feature-maps": FEATURE_MAPS}


@pytest.fixture
def run_copy(trained_run, tmp_path, monkeypatch):
    """A private copy of the shared run (the plots go into it) and an empty working folder."""
    run = tmp_path / "run"
    shutil.copytree(trained_run[0], run)
    shutil.rmtree(run / "plots", ignore_errors=True)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return run, cwd


def pngs(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


@pytest.mark.parametrize("kind", list(FILES))
def test_plot_with_a_run_writes_into_its_plots_folder(cli, run_copy, kind):
    run, cwd = run_copy
    r = cli("plot", kind, run)
    assert r.rc == 0, r.err
    assert pngs(run / "plots") == FILES[kind]
    assert not (cwd / "plots").exists() and list(cwd.iterdir()) == []
    for name in FILES[kind]:  # each file written is printed
        assert f"wrote {run / 'plots' / name}" in r.lines


@pytest.mark.parametrize("target", ["checkpoint", "model.safetensors"])
def test_plot_of_a_checkpoint_or_weights_file_writes_into_the_run_folder(cli, run_copy, target):
    run, cwd = run_copy
    for kind in FILES:
        assert cli("plot", kind, run / target).rc == 0
    assert pngs(run / "plots") == sorted(n for names in FILES.values() for n in names)
    assert not (run / target / "plots").exists() and list(cwd.iterdir()) == []


def test_plot_without_a_run_writes_into_dot_plots(cli, run_copy):
    run, cwd = run_copy
    r = cli("plot", "activations")
    assert r.rc == 0, r.err
    assert pngs(cwd / "plots") == ["activations.png"] and r.lines == ["wrote plots/activations.png"]
    assert not (run / "plots").exists()
    one_line(cli("plot", "filters"))  # the kinds that draw a run need one


@pytest.mark.parametrize("kind", list(FILES))
def test_plot_out_overrides_for_every_kind(cli, run_copy, tmp_path, kind):
    run, cwd = run_copy
    out = tmp_path / "elsewhere"
    r = cli("plot", kind, run, "--out", out)
    assert r.rc == 0, r.err
    assert pngs(out) == FILES[kind]
    assert not (run / "plots").exists() and list(cwd.iterdir()) == []
    assert all(f"wrote {out / name}" in r.lines for name in FILES[kind])


def test_plot_help_states_the_rule(cli):
    r = cli("plot", "--help")
    assert r.rc == 0
    text = " ".join(r.out.split())
    assert "RUN's run folder/plots" in text and "./plots" in text and "--out DIR" in text
