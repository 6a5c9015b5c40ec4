"""``numcnn explore``: the web app that shows a trained run from the inside (numcnn.explore), or its static site."""

from __future__ import annotations

import argparse
import sys

from .argtypes import positive_int
from .errors import CLIError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def port_number(text: str) -> int:
    """argparse type: a TCP port, 0 to 65535 (0: a free one)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number (0 to 65535), got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number (0 to 65535), got {value}")
    return value


def add_parser(sub) -> None:
    p = sub.add_parser(
        "explore", help="see inside a trained run in the browser (or write it as a static site)",
        description="Serve a local web app that shows a trained run from the inside: draw, upload or pick a test "
                    "image; see every layer's feature maps; click a pixel of a convolution, pooling or batch-norm "
                    "layer to see it recomputed in float64 next to the value of the real forward pass; saliency and "
                    "Grad-CAM for any class; the training curves and the confusion matrix, whose cells open their "
                    "test images. It listens on 127.0.0.1 (this machine only) and prints its URL; Ctrl-C stops it. "
                    "With --export DIR it writes a static site instead (no server; precomputed for --images test "
                    "images; drawing and uploads need the live app).")
    p.add_argument("run_path", metavar="RUN",
                   help="a run folder (its model.safetensors, else its checkpoint/), a checkpoint folder or a run's "
                        ".safetensors file")
    p.add_argument("--port", type=port_number, default=0, metavar="N",
                   help="the port to listen on (default: a free one)")
    p.add_argument("--host", default="127.0.0.1", metavar="H",
                   help="the address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0 serves every "
                        "machine that can reach this one, without any authentication)")
    p.add_argument("--open", action="store_true", help="open the page in the default web browser")
    p.add_argument("--export", default=None, metavar="DIR",
                   help="write the static site into DIR (new, empty, or an earlier export) instead of serving")
    p.add_argument("--images", type=positive_int, default=None, metavar="N",
                   help="with --export: how many test images the site shows (default: 20)")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="folder holding the dataset's files (default: the one the run was trained with, else the "
                        "usual places)")
    p.set_defaults(run=run)


def _explore_package():
    """numcnn.explore, or a CLIError saying how to install what it needs."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401

        from .. import explore
        from ..explore import server  # noqa: F401  (explore.server: the app's defaults)
    except ImportError as e:
        raise CLIError(f"numcnn explore needs the web server packages: pip install 'numcnn[explore]' ({e})") from None
    return explore


def _open(explore, args):
    try:
        return explore.Explorer.open(args.run_path, args.data_dir)
    except explore.ExploreError as e:
        raise CLIError(str(e)) from None


def _export(explore, explorer, args) -> int:
    try:
        written = explore.export_site(explorer, args.export, images=args.images or 20)
    except explore.ExploreError as e:
        raise CLIError(str(e)) from None
    pages = sum(f.startswith("data/forward-") for f in written)
    print(f"wrote {args.export}: index.html, static/ and data/ ({len(written)} files, {pages} test images); open "
          f"{args.export}/index.html in a browser (drawing and uploads need the live app: numcnn explore RUN)")
    return 0


def _bind(explore, host: str, port: int):
    try:
        return explore.bind(host, port)
    except OSError as e:
        if port and e.errno in (98, 48):  # EADDRINUSE (Linux, macOS)
            raise CLIError(f"port {port} is in use: choose another with --port, or leave --port out for a free "
                           "one") from None
        raise CLIError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None


def run(args) -> int:
    if args.images is not None and args.export is None:
        raise CLIError("--images goes with --export (the live app shows every test image)")
    explore = _explore_package()
    explorer = _open(explore, args)
    if args.export is not None:
        return _export(explore, explorer, args)
    if explorer.test is None:
        print(f"numcnn explore: no test images ({explorer.test_error}); drawing and uploads still work",
              file=sys.stderr)
    if args.host not in LOOPBACK:
        print(f"numcnn explore: warning: --host {args.host} serves this model to every machine that can reach this "
              "one, without any authentication", file=sys.stderr)
    sock = _bind(explore, args.host, args.port)
    named = args.host in explore.server.LOOPBACK_HOSTS  # answer only these Host names (no DNS rebinding)
    app = explore.create_app(explorer, allowed_hosts=explore.server.LOOPBACK_HOSTS if named else ("*",))
    url = explore.server.url_of(sock)
    if args.host in ("0.0.0.0", "::"):
        url = url.replace("0.0.0.0", "127.0.0.1").replace("[::]", "[::1]")
    print(f"numcnn explore: {explorer.name} ({explorer.config['model']['name']}) at {url}", flush=True)
    print("press Ctrl-C to stop", flush=True)
    if args.open:
        import webbrowser

        webbrowser.open(url)
    try:
        explore.serve(app, sock)
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    print("numcnn explore: stopped", flush=True)
    return 0
