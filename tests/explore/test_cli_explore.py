"""``numcnn explore``: the command line around numcnn.explore (a real server in a subprocess, stopped by Ctrl-C;
errors as one line with exit status 2; --export; --open; --host)."""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from numcnn.cli.main import main


def run_cli(capsys, *argv):
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def start_server(*argv) -> tuple[subprocess.Popen, str]:
    """``python -m numcnn explore ARGV`` in a subprocess, and the URL it prints (within 60 s)."""
    proc = subprocess.Popen([sys.executable, "-m", "numcnn", "explore", *map(str, argv)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if sel.select(timeout=1):
            line = proc.stdout.readline()
            m = re.search(r"(http://\S+/)", line)
            if m:
                return proc, m.group(1)
            if not line:
                break
    proc.kill()
    raise AssertionError(f"no URL printed; stderr: {proc.stderr.read()}")


def raw_request(url: str, path: str) -> tuple[int, bytes]:
    """A GET sent byte for byte (no client-side normalisation of '..'): (status, body)."""
    host, port = re.match(r"http://([\d.]+):(\d+)/", url).groups()
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def stop(proc: subprocess.Popen) -> tuple[int, str, str]:
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    out, err = proc.communicate(timeout=30)
    return proc.returncode, out, err


def test_serve_answers_refuses_traversal_and_stops_on_ctrl_c(trained_run):
    proc, url = start_server(trained_run, "--port", "0")
    try:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "api/run", timeout=30) as r:
            run = json.loads(r.read())
        assert run["model"] == "convnet" and run["test_images"] == 60
        with urllib.request.urlopen(url, timeout=30) as r:
            assert b"numcnn explore" in r.read()
        for path in ("/static/../../../../etc/passwd", "/static/%2e%2e/%2e%2e/cli/main.py", "/../../etc/passwd",
                     "/static/..%2f..%2fexplorer.py"):
            status, body = raw_request(url, path)
            assert status in (400, 404) and b"root:" not in body and b"import" not in body, path
        started = time.perf_counter()  # a forward pass answer for the convnet, end to end over HTTP
        for _ in range(5):
            req = urllib.request.Request(url + "api/forward", data=b'{"input": {"test": 3}}', method="POST",
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as r:
                assert len(json.loads(r.read())["probabilities"]) == 10
        assert (time.perf_counter() - started) / 5 < 1.0  # generous for CI; measured ~10 ms here
    finally:
        rc, out, err = stop(proc)
    assert rc == 0, err
    assert out.rstrip().endswith("numcnn explore: stopped") and "Traceback" not in err


def test_host_0000_warns_and_answers_any_host(trained_run):
    proc, url = start_server(trained_run, "--host", "0.0.0.0")
    try:
        req = urllib.request.Request(url + "api/run", headers={"Host": "my-machine.local"})
        with urllib.request.urlopen(req, timeout=30) as r:
            assert json.loads(r.read())["run"] == trained_run.name
    finally:
        rc, _, err = stop(proc)
    assert rc == 0 and url.startswith("http://127.0.0.1:")
    assert "warning: --host 0.0.0.0 serves this model to every machine" in err


def test_wrong_run_folders_are_one_line_errors(capsys, tmp_path, trained_run):
    (tmp_path / "empty").mkdir()
    (tmp_path / "weights.bin").write_bytes(b"x")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text('{"format": "something-else/2"}')
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    cases = [(tmp_path / "missing", "no such file or folder"), (tmp_path / "empty", "not a numcnn run folder"),
             (tmp_path / "weights.bin", "expected a run folder"), (tmp_path / "other", "not a numcnn run config"),
             (tmp_path / "broken", "not valid JSON")]
    for path, words in cases:
        rc, out, err = run_cli(capsys, "explore", path)
        assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1
        assert err.startswith("numcnn explore: error: ") and words in err
    rc, _, err = run_cli(capsys, "explore", trained_run, "--images", "3")
    assert rc == 2 and "--images goes with --export" in err
    rc, _, err = run_cli(capsys, "explore", trained_run, "--port", "70000")
    assert rc == 2 and "port number" in err


def test_a_busy_port_is_a_one_line_error(capsys, trained_run):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        rc, _, err = run_cli(capsys, "explore", trained_run, "--port", s.getsockname()[1])
    assert rc == 2 and "is in use" in err and len(err.strip().splitlines()) == 1


def test_open_starts_a_browser_on_the_printed_url(capsys, monkeypatch, trained_run):
    import webbrowser

    import numcnn.explore

    opened, served = [], []
    monkeypatch.setattr(webbrowser, "open", lambda url: opened.append(url))
    monkeypatch.setattr(numcnn.explore, "serve", lambda app, sock: served.append(sock.getsockname()))
    rc, out, _ = run_cli(capsys, "explore", trained_run, "--open")
    assert rc == 0 and len(opened) == 1 and opened[0] in out
    assert opened[0] == f"http://127.0.0.1:{served[0][1]}/"


def test_export_from_the_command_line(capsys, tmp_path, trained_run):
    out_dir = tmp_path / "site"
    rc, out, err = run_cli(capsys, "explore", trained_run, "--export", out_dir, "--images", "2")
    assert rc == 0, err
    assert out.startswith(f"wrote {out_dir}: ") and "2 test images" in out
    assert len(list((out_dir / "data").glob("forward-*.js"))) == 2 and (out_dir / "index.html").is_file()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "a.txt").write_text("mine")
    rc, _, err = run_cli(capsys, "explore", trained_run, "--export", tmp_path / "mine")
    assert rc == 2 and "not written by" in err and (tmp_path / "mine" / "a.txt").read_text() == "mine"
    rc, _, err = run_cli(capsys, "explore", trained_run, "--export", tmp_path / "x", "--data-dir", tmp_path / "none")
    assert rc == 2 and "there are none" in err and not (tmp_path / "x").exists()


@pytest.mark.parametrize("argv", [["--help"]])
def test_help_lists_the_options(capsys, argv):
    rc, out, _ = run_cli(capsys, "explore", *argv)
    assert rc == 0
    for option in ("--port", "--host", "--open", "--export", "--images", "--data-dir"):
        assert option in out
