"""The HTTP side of numcnn explore: a Starlette app over an :class:`~numcnn.explore.explorer.Explorer`, served by
uvicorn. The endpoints are those of docs/explore-api.md.

Safety: the app serves only the regular files inside the package's ``static/`` folder (a path that leaves it --
``..``, an absolute path, a symlink pointing out -- is a 404); request bodies are bounded (MAX_JSON_BYTES, and
upload.MAX_UPLOAD_BYTES for images) before they are read whole; only the Host names in ``allowed_hosts`` are
answered (by default the loopback names, which keeps web pages from reaching the app through DNS rebinding). Every
refusal is a 4xx answer ``{"error": "one line"}``. The model's work runs in Starlette's thread pool, one request
per thread; the explorer keeps no per-request state, so browser tabs can ask at once.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from .._schema import clean_json
from ..kernels.runtime import runtime
from .errors import ExploreError
from .explorer import Explorer
from .upload import MAX_UPLOAD_BYTES, prepare_upload

STATIC = Path(__file__).resolve().parent / "static"
MAX_JSON_BYTES = 4 * 2**20
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def _answer(obj, status: int = 200) -> JSONResponse:
    return JSONResponse(clean_json(obj), status_code=status, headers=HEADERS)


def _error(message: str, status: int) -> JSONResponse:
    return _answer({"error": " ".join(str(message).split())}, status)


def static_file(relative: str, root: Path = STATIC) -> Path | None:
    """The file ``root/relative`` when it is a regular file inside ``root`` (symlinks resolved), else None."""
    if not relative or "\\" in relative or "\x00" in relative or relative.startswith("/"):
        return None
    parts = relative.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return None
    try:
        base = root.resolve(strict=True)
        path = (base / relative).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    return path if path.is_relative_to(base) and path.is_file() else None


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) beyond ``limit`` bytes without reading the rest."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ExploreError(f"the request body is {int(declared):,} bytes; at most {limit:,} are read", 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ExploreError(f"the request body is larger than {limit:,} bytes", 413)
        chunks.append(chunk)
    return b"".join(chunks)


async def _json(request: Request) -> dict:
    raw = await _body(request, MAX_JSON_BYTES)
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise ExploreError(f"the request body is not valid JSON ({type(e).__name__})") from None
    if not isinstance(body, dict):
        raise ExploreError(f"the request body must be a JSON object, got {type(body).__name__}")
    return body


async def _upload_file(request: Request) -> tuple[bytes, dict]:
    """The bytes of the multipart field ``file`` and the other (text) fields, the body bounded first."""
    raw = await _body(request, MAX_UPLOAD_BYTES + 64 * 1024)
    sent = False

    async def replay():
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ExploreError("upload the image as multipart/form-data with a field named 'file'", 415)
    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=8, max_part_size=1024)
    except (HTTPException, ValueError, KeyError) as e:
        raise ExploreError(f"the upload is not valid multipart/form-data ({getattr(e, 'detail', e)})") from None
    try:
        file = form.get("file")
        if file is None or isinstance(file, str):
            raise ExploreError("the upload has no file field named 'file'")
        data = await file.read()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
    finally:
        await form.close()
    return data, fields


def create_app(source, data_dir=None, *, allowed_hosts=LOOPBACK_HOSTS, static_dir: Path | None = None) -> Starlette:
    """The Starlette app serving ``source``: a run folder, a checkpoint folder, a run's ``.safetensors`` file, or
    an :class:`Explorer`. ``allowed_hosts``: the Host names answered (``("*",)``: any, for --host 0.0.0.0)."""
    explorer = source if isinstance(source, Explorer) else Explorer.open(source, data_dir)
    static = static_dir or STATIC

    async def index(request: Request) -> Response:
        path = static_file("index.html", static)
        if path is None:
            return _error("the page's files are missing from this numcnn installation (explore/static/index.html)",
                          404)
        return FileResponse(path, headers=HEADERS)

    async def asset(request: Request) -> Response:
        path = static_file(request.path_params["path"], static)
        return _error("no such file", 404) if path is None else FileResponse(path, headers=HEADERS)

    async def run_info(request: Request) -> Response:
        return _answer(explorer.info())

    async def metrics(request: Request) -> Response:
        return _answer(await run_in_threadpool(explorer.metrics))

    async def examples(request: Request) -> Response:
        return _answer(await run_in_threadpool(explorer.examples, dict(request.query_params)))

    async def upload(request: Request) -> Response:
        data, fields = await _upload_file(request)
        answer = await run_in_threadpool(prepare_upload, data, explorer.config, fields.get("invert", "auto"),
                                         fields.get("fit", "dataset"))
        return _answer(answer)

    def posting(method):
        async def endpoint(request: Request) -> Response:
            return _answer(await run_in_threadpool(method, await _json(request)))
        return endpoint

    routes = [Route("/", index), Route("/static/{path:path}", asset), Route("/api/run", run_info),
              Route("/api/metrics", metrics), Route("/api/examples", examples),
              Route("/api/upload", upload, methods=["POST"]),
              Route("/api/forward", posting(explorer.forward), methods=["POST"]),
              Route("/api/explain", posting(explorer.explain), methods=["POST"]),
              Route("/api/saliency", posting(explorer.saliency), methods=["POST"])]
    handlers = {ExploreError: lambda request, e: _error(str(e), e.status),
                HTTPException: lambda request, e: _error(_http_message(e), e.status_code),
                Exception: _internal_error}
    middleware = [] if "*" in allowed_hosts else [Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))]
    app = Starlette(routes=routes, exception_handlers=handlers, middleware=middleware)
    app.state.explorer = explorer
    return app


def _http_message(e: HTTPException) -> str:
    return {404: "no such page or endpoint", 405: "method not allowed here"}.get(e.status_code, str(e.detail))


def _internal_error(request: Request, e: Exception) -> JSONResponse:
    """A bug: one line to the page (Starlette raises the exception again after this answer, and uvicorn logs its
    traceback on the server's stderr)."""
    return _error(f"internal error: {type(e).__name__}: {e}", 500)


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (0: a free port the system picks)."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def single_threaded_kernels() -> None:
    """One kernel thread (and one BLAS thread) per request: requests run side by side in Starlette's thread pool,
    and OpenBLAS called from a thread other than the main one with a pool of several threads is slow (measured:
    a convnet forward pass of one image took 30 ms in a worker thread, 1.5 ms with one BLAS thread). The BLAS
    pool's size can only be changed from the main thread (numcnn/kernels/parallel.py), so call this from it."""
    runtime.threads = 1


def serve(app, sock: socket.socket, log_level: str = "warning") -> None:
    """Serve ``app`` on the bound socket ``sock`` (:func:`bind`) until Ctrl-C or SIGTERM (uvicorn stops cleanly:
    open requests finish, then this returns). Call it from the main thread: it sets the kernels to one thread
    per request (:func:`single_threaded_kernels`)."""
    import uvicorn

    single_threaded_kernels()
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, lifespan="off", access_log=False))
    server.run(sockets=[sock])
