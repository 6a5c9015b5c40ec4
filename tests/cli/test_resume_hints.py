"""numcnn train --resume: what a refusal says about extending a run (issue 15, item 12), and that what it suggests
works: a fixed-length schedule (onecycle, cosine) finishes its planned epochs, a step or constant one extends."""

import json

from numcnn.cli import recipe


def tiny(cli, data_dir, out, *extra):
    r = cli("train", "--model", "shallow", "--data-dir", data_dir, "--limit", 40, "--quiet", "--out", out, *extra)
    assert r.rc == 0, r.err
    return r


def one_line(r) -> str:
    assert r.rc == 2, (r.out, r.err)
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err, r.err
    return r.err


def test_extending_a_onecycle_run_explains_what_can_be_extended(cli, data_dir, tmp_path):
    out = tmp_path / "run"
    tiny(cli, data_dir, out, "--scheduler", "onecycle", "--epochs", 1)
    before = (out / "model.safetensors").read_bytes()
    err = one_line(cli("train", "--out", out, "--resume", "--epochs", 3))
    for fragment in ("onecycle schedule was planned for 1 epochs",
                     "runs with the onecycle schedule cannot be extended past their planned epochs",
                     "resume without --epochs to finish", "start a new run with --epochs 3",
                     "--scheduler step or --scheduler none", "--resume --epochs N can extend"):
        assert fragment in err, (fragment, err)
    assert (out / "model.safetensors").read_bytes() == before
    assert json.loads((out / "config.json").read_text())["recipe"]["epochs"] == 1
    # what the message suggests: resuming without --epochs is accepted (the run is finished: nothing to train)
    r = cli("train", "--out", out, "--resume", "--quiet")
    assert r.rc == 0, r.err


def test_a_step_run_extends_and_too_few_epochs_says_epochs_is_the_total(cli, data_dir, tmp_path):
    out = tmp_path / "run"
    tiny(cli, data_dir, out, "--scheduler", "step", "--epochs", 1)
    r = cli("train", "--out", out, "--resume", "--epochs", 2, "--quiet")
    assert r.rc == 0, r.err
    assert json.loads((out / "config.json").read_text())["recipe"]["epochs"] == 2
    assert [e["epoch"] for e in json.loads((out / "metrics.json").read_text())["epochs"]] == [1, 2]
    err = one_line(cli("train", "--out", out, "--resume", "--epochs", 1))
    assert "already trained 2 epochs, more than --epochs 1" in err and "the run's total" in err, err
    assert "--epochs 3 trains 1 more" in err, err


def test_too_few_epochs_on_fixed_length_schedules():
    unfinished = recipe.too_few_epochs(3, 2, "onecycle", 5)
    assert "already trained 3 epochs" in unfinished and "resume without --epochs to finish its planned 5" in unfinished
    finished = recipe.too_few_epochs(5, 2, "cosine", 5)
    assert "cosine schedule has finished its planned 5 epochs and cannot be extended" in finished
    assert "trains" not in finished
    assert "--epochs 5 trains 2 more" in recipe.too_few_epochs(3, 2, None, 3)


def test_constant_images_are_refused_in_one_line_before_training(cli, tmp_path):
    import numpy as np

    from numcnn.data.idx import write_idx

    for prefix, n in (("train", 60), ("t10k", 20)):
        write_idx(tmp_path / "data" / f"{prefix}-images-idx3-ubyte.gz", np.full((n, 28, 28), 7, np.uint8))
        write_idx(tmp_path / "data" / f"{prefix}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))
    r = cli("train", "--data-dir", tmp_path / "data", "--limit", 40, "--epochs", 1, "--out", tmp_path / "run")
    assert r.rc == 2 and "Traceback" not in r.err and len(r.err.strip().splitlines()) == 1
    assert "std 0" in r.err and "constant" in r.err
    assert not (tmp_path / "run" / "config.json").exists()
