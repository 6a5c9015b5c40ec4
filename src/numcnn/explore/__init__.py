"""``numcnn explore``: see inside a trained CNN in the browser, down to one multiply-add.

The server side of the web app (the page is in ``static/``; the API between them is docs/explore-api.md):

- :class:`Explorer` (explorer.py): a trained model and its test images, answering the page's questions (layers,
  forward pass recorded by forward hooks, one pixel explained in float64, saliency and Grad-CAM, metrics and
  confusion matrix, uploads prepared as ``numcnn predict`` prepares photos);
- :func:`create_app` and :func:`serve` (server.py): the Starlette app over it, served by uvicorn on 127.0.0.1;
- :func:`export_site` (export.py): the static, self-contained site.

Starlette and uvicorn (``pip install 'numcnn[explore]'``) are imported only by the server functions.
"""

from __future__ import annotations

from .errors import ExploreError
from .explorer import Explorer
from .export import export_site

__all__ = ["Explorer", "ExploreError", "bind", "create_app", "export_site", "serve"]


def create_app(path, data_dir=None, **kwargs):
    """The Starlette app serving a run folder, checkpoint folder, run's .safetensors or an :class:`Explorer`
    (see :func:`numcnn.explore.server.create_app` for the keyword arguments)."""
    from .server import create_app as make

    return make(path, data_dir, **kwargs)


def bind(host: str = "127.0.0.1", port: int = 0):
    """A listening socket on ``host``:``port`` (0: a free port); see :func:`numcnn.explore.server.bind`."""
    from .server import bind as make

    return make(host, port)


def serve(app, sock, log_level: str = "warning") -> None:
    """Serve ``app`` on ``sock`` (from :func:`bind`) with uvicorn until Ctrl-C."""
    from .server import serve as run

    run(app, sock, log_level)
