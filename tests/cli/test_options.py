"""Model options typed by the builder's signature (-o KEY=VALUE), and the command line's parsing: no abbreviated
options, "did you mean" hints, and a quiet exit when the reader of stdout goes away (issue 15, items 10 and 14)."""

import io
import json
import shlex
import subprocess
import sys

import pytest

from numcnn.cli.main import main


def one_line_error(r, expected: str) -> None:
    assert r.rc == 2, (r.out, r.err)
    assert r.err == expected + "\n", r.err


def batchnorm_layers(r) -> int:
    assert r.rc == 0, r.err
    return sum("(BatchNorm2d)" in line for line in r.lines)


# -- item 10: typed model options ----------------------------------------------------------------------------------


@pytest.mark.parametrize("word", ["False", "false", "FALSE", "no", "No", "off", "OFF", "0"])
def test_a_false_boolean_builds_the_model_without_batchnorm(cli, word):
    r = cli("summary", "--model", "lenet5", "-o", f"batchnorm={word}")
    assert batchnorm_layers(r) == 0
    assert "options: batchnorm=False, dropout=0.0, init='default'" in r.lines


@pytest.mark.parametrize("word", ["True", "true", "TRUE", "yes", "Yes", "on", "ON", "1"])
def test_a_true_boolean_builds_the_model_with_batchnorm(cli, word):
    r = cli("summary", "--model", "lenet5", "-o", f"batchnorm={word}")
    assert batchnorm_layers(r) == 3  # after c1, c3 and c5
    assert "options: batchnorm=True, dropout=0.0, init='default'" in r.lines


def test_numbers_lists_and_strings_are_read_with_the_options_types(cli):
    r = cli("summary", "--model", "lenet5", "-o", "dropout=0.25", "-o", "init=xavier")
    assert r.rc == 0, r.err
    assert "options: batchnorm=False, dropout=0.25, init='xavier'" in r.lines
    assert any(line.startswith("dropout (Dropout)") for line in r.lines)
    r = cli("summary", "--model", "lenet5", "-o", "dropout=0")  # an int for a float option: 0.0, no Dropout
    assert "options: batchnorm=False, dropout=0.0, init='default'" in r.lines
    assert not any("(Dropout)" in line for line in r.lines)
    r = cli("summary", "--model", "simplecnn", "-o", "channels=4", "-o", "hidden=32")
    assert "options: channels=4, hidden=32, dropout=0.5" in r.lines, r.out
    for blocks in ("1,2,1", "[1,2,1]", "(1, 2, 1)"):
        r = cli("summary", "--model", "resnet", "-o", f"blocks_per_stage={blocks}", "-o", "bottleneck=yes")
        assert "options: blocks_per_stage=[1, 2, 1], bottleneck=True, zero_init_residual=False" in r.lines, r.out
        assert any(line.startswith("layer2.1.conv3 (Conv2d)") for line in r.lines)
    r = cli("summary", "--model", "resnet", "-o", "blocks_per_stage=1")
    assert "options: blocks_per_stage=1, bottleneck=False, zero_init_residual=False" in r.lines


def test_bad_values_are_one_line_errors_naming_option_value_and_type(cli):
    lenet = ("summary", "--model", "lenet5")
    one_line_error(cli(*lenet, "-o", "dropout=abc"),
                   "numcnn summary: error: -o dropout=abc: lenet5's option dropout takes a number, got 'abc'")
    one_line_error(cli(*lenet, "-o", "dropout=nan"),
                   "numcnn summary: error: -o dropout=nan: lenet5's option dropout takes a number, got 'nan'")
    one_line_error(cli(*lenet, "-o", "dropout=1.5"),
                   "numcnn summary: error: -o dropout=1.5: lenet5's option dropout takes a probability in [0, 1], "
                   "got '1.5'")
    one_line_error(cli(*lenet, "-o", "batchnorm=maybe"),
                   "numcnn summary: error: -o batchnorm=maybe: lenet5's option batchnorm takes a boolean "
                   "(true/false, yes/no, on/off, 1/0), got 'maybe'")
    one_line_error(cli(*lenet, "-o", "batchnorm=2"),
                   "numcnn summary: error: -o batchnorm=2: lenet5's option batchnorm takes a boolean "
                   "(true/false, yes/no, on/off, 1/0), got '2'")
    one_line_error(cli("summary", "--model", "simplecnn", "-o", "hidden=1.5"),
                   "numcnn summary: error: -o hidden=1.5: simplecnn's option hidden takes an integer, got '1.5'")
    one_line_error(cli("summary", "--model", "simplecnn", "-o", "channels=0"),
                   "numcnn summary: error: -o channels=0: simplecnn's option channels takes a positive integer, "
                   "got '0'")
    one_line_error(cli("summary", "--model", "resnet", "-o", "blocks_per_stage=1,x,1"),
                   "numcnn summary: error: -o blocks_per_stage=1,x,1: resnet's option blocks_per_stage takes an "
                   "integer or a list of integers (e.g. 1,2,2 or [1,2,2]), got '1,x,1'")
    one_line_error(cli("summary", "--model", "resnet", "-o", "blocks_per_stage=[1,0,1]"),
                   "numcnn summary: error: -o blocks_per_stage=[1,0,1]: resnet's option blocks_per_stage takes "
                   "positive integers, got '[1,0,1]'")
    # what the option's type allows and the builder refuses: the builder's own message, still one line
    one_line_error(cli(*lenet, "-o", "init=he"),
                   "numcnn summary: error: LeNet5: init must be 'default' or 'xavier', got 'he'")


def test_unknown_options_are_refused_listing_the_known_ones(cli):
    one_line_error(cli("summary", "--model", "lenet5", "-o", "wings=2"),
                   "numcnn summary: error: -o wings=2: lenet5 has no option 'wings'; its options are: "
                   "batchnorm (bool, default False), dropout (float, default 0.0), init (str, default 'default')")
    one_line_error(cli("summary", "-o", "batchnorm=true"),
                   "numcnn summary: error: -o batchnorm=true: convnet has no option 'batchnorm'; it takes no options")
    one_line_error(cli("summary", "--model", "resnet", "-o", "bottleneck=1", "-o", "depth=50"),
                   "numcnn summary: error: -o depth=50: resnet has no option 'depth'; its options are: "
                   "blocks_per_stage (int/list, default 2), bottleneck (bool, default False), "
                   "zero_init_residual (bool, default False)")


def test_train_builds_and_records_the_typed_options(cli, data_dir, tmp_path):
    out = tmp_path / "run"
    common = ["--data-dir", data_dir, "--limit", "120", "--epochs", "1", "--scheduler", "none", "--quiet"]
    r = cli("train", "--model", "lenet5", "-o", "batchnorm=False", "-o", "dropout=0.1", *common, "--out", out)
    assert r.rc == 0, r.err
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["options"] == {"batchnorm": False, "dropout": 0.1}
    r = cli("train", "--model", "lenet5", "-o", "dropout=abc", *common, "--out", tmp_path / "bad")
    one_line_error(r, "numcnn train: error: -o dropout=abc: lenet5's option dropout takes a number, got 'abc'")
    assert not (tmp_path / "bad").exists()
    # a resumed run is given the same options, spelt another way: they read the same, so it goes on
    r = cli("train", "--model", "lenet5", "-o", "batchnorm=no", "-o", "dropout=.1", *common, "--out", out,
            "--resume", "--epochs", "2")
    assert r.rc == 0, r.err
    # without --model the model is the run's, known only later: the values are read as JSON, as the run's were
    r = cli("train", "-o", "batchnorm=false", "-o", "dropout=0.1", *common, "--out", out, "--resume", "--epochs", "3")
    assert r.rc == 0, r.err
    r = cli("train", "--model", "lenet5", "-o", "batchnorm=on", *common, "--out", out, "--resume")
    one_line_error(r, "numcnn train: error: --model-option differs from the run's model options: a resumed run "
                      "keeps its model")


# -- item 14: parsing and the closed pipe --------------------------------------------------------------------------


def numcnn(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "numcnn", *argv], capture_output=True, text=True, timeout=120)


def test_a_reader_closing_stdout_early_ends_the_command_quietly():
    # the read end closed before numcnn writes anything: every write fails with EPIPE
    p = subprocess.Popen([sys.executable, "-m", "numcnn", "summary", "--model", "resnet"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()
    err = p.stderr.read().decode()
    p.stderr.close()
    assert p.wait(timeout=120) == 0, err
    assert "Traceback" not in err and "BrokenPipeError" not in err and err == "", err
    # the shell's way: `numcnn summary --model resnet | head -3`, the exit status of numcnn kept by pipefail
    command = f"{shlex.quote(sys.executable)} -m numcnn summary --model resnet | head -3"
    r = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "Traceback" not in r.stderr and r.stderr == "", r.stderr
    assert len(r.stdout.splitlines()) == 3 and r.stdout.startswith("resnet: ")


class ClosedPipe(io.StringIO):
    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")


@pytest.mark.parametrize("argv", [["summary", "--model", "resnet"], ["--help"], ["train", "--help"]])
def test_a_broken_pipe_in_process_returns_0(monkeypatch, argv):
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(argv) == 0


def test_abbreviated_options_are_refused_with_a_suggestion():
    r = numcnn("train", "--epoch", "1")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == ("numcnn train: error: unrecognized arguments: --epoch 1; did you mean --epochs? "
                        "(see 'numcnn train --help')\n")
    r = numcnn("summary", "--mod", "lenet5")
    assert r.returncode == 2
    assert r.stderr == ("numcnn summary: error: unrecognized arguments: --mod lenet5; did you mean --model? "
                        "(see 'numcnn summary --help')\n")
    r = numcnn("summary", "--model", "lenet5", "--in-chanels=3")
    assert r.returncode == 2
    assert "did you mean --in-channels?" in r.stderr and "'numcnn summary --help'" in r.stderr
    r = numcnn("summary", "--wholly-unlike-anything")  # no close option: no suggestion
    assert r.returncode == 2 and "did you mean" not in r.stderr
    assert r.stderr.startswith("numcnn summary: error: unrecognized arguments: --wholly-unlike-anything (see ")


def test_a_mistyped_command_or_choice_suggests_the_closest():
    r = numcnn("trian")
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1
    assert r.stderr.startswith("numcnn: error: argument COMMAND: invalid choice: 'trian'")
    assert r.stderr.endswith("; did you mean 'train'? (see 'numcnn --help')\n")
    r = numcnn("summry")
    assert "did you mean 'summary'?" in r.stderr
    r = numcnn("train", "--optimizer", "adm")
    assert r.returncode == 2 and r.stderr.endswith("; did you mean 'adam'? (see 'numcnn train --help')\n")
