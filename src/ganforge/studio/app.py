"""The studio's web server: a Starlette app over one runs folder, and ``serve`` to run it.

Security model (each point has a test in tests/test_studio.py):

- it listens on 127.0.0.1 by default, and then answers only requests whose Host header is a
  loopback name (a web page cannot reach it through DNS rebinding);
- only files inside the runs folder are served (no ``..``, no absolute paths, no symlinks that
  lead out; anything else is a 404), and only picture / text suffixes;
- uploads are size-limited and decoded by ganforge's safe image reader (decompression bombs are
  refused);
- nothing in a run folder is executed or unpickled (weights come from safetensors);
- starting and stopping training needs the token printed at start (``X-Studio-Token`` header);
- POSTs must say ``application/json`` or ``application/octet-stream``: types a web page on
  another site cannot send to it without a CORS preflight, which the studio never grants.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .launcher import Launcher
from .runs import SERVED_SUFFIXES, NotFound, RunStore, StudioError, safe_path

STATIC = Path(__file__).parent / "static"
MAX_UPLOAD_BYTES = 8 * 1024 * 1024  # uploads larger than this are refused (413) before decoding
LOOPBACK_NAMES = ["127.0.0.1", "localhost", "::1", "[::1]"]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _user_errors() -> tuple:
    """ganforge's user-error classes (imported when first needed: some modules load torch)."""
    from ..errors import UserError
    return (StudioError, UserError)


class _Models:
    """The playground's model cache, created (and torch imported) on first use."""

    def __init__(self):
        self.cache = None

    def get(self):
        if self.cache is None:
            from .playground import ModelCache
            self.cache = ModelCache()
        return self.cache


class PayloadTooLarge(Exception):
    pass


def _content_type_is(request: Request, kind: str) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == kind


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) more than ``limit`` bytes without reading them all."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge()
    return bytes(body)


def create_app(runs_dir: str | Path, *, token: str | None = None, host: str = "127.0.0.1",
               stale_after: float = 180.0, launcher: Launcher | None = None) -> Starlette:
    """The studio for ``runs_dir``. ``token`` guards start/stop (a random one by default:
    read it back as ``app.state.token``)."""
    store = RunStore(runs_dir, stale_after=stale_after)
    models = _Models()
    launcher = launcher or Launcher(store.root)
    token = token or secrets.token_urlsafe(18)

    def err(msg: str, status: int = 400) -> JSONResponse:
        return JSONResponse({"error": msg}, status_code=status)

    def need_token(request: Request) -> bool:
        given = request.headers.get("x-studio-token", "")
        return hmac.compare_digest(given.encode(), token.encode())

    def run_of(request: Request) -> Path:
        return store.path(request.query_params.get("id", ""))

    async def guarded(fn, *args):
        """Call ``fn`` in a worker thread; user errors become 400 with their one-line message."""
        try:
            return await run_in_threadpool(fn, *args)
        except NotFound:
            return err("not found", 404)
        except StudioError as e:
            return err(str(e))
        except Exception as e:
            if not isinstance(e, _user_errors()):
                raise
            return err(str(e).splitlines()[0] if str(e) else type(e).__name__)

    async def index(request: Request):
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def api_runs(request: Request):
        alive = launcher.alive_ids()
        runs = await run_in_threadpool(store.list, alive)
        from ..config import PRESETS
        return JSONResponse({"root": str(store.root), "runs": runs, "presets": list(PRESETS),
                             "launches": launcher.describe()})

    async def api_run(request: Request):
        def work():
            run = run_of(request)
            return JSONResponse(store.detail(run, alive=store.run_id(run) in launcher.alive_ids()))
        return await guarded(work)

    async def api_metrics(request: Request):
        def work():
            run = run_of(request)
            try:
                since = int(request.query_params.get("since", "0"))
            except ValueError:
                since = 0
            return JSONResponse(store.tail(run).since(since))
        return await guarded(work)

    async def files(request: Request):
        rel = request.path_params["path"]
        try:
            p = safe_path(store.root, rel)
        except NotFound:
            return err("not found", 404)
        if not p.is_file() or p.suffix.lower() not in SERVED_SUFFIXES:
            return err("not found", 404)
        return FileResponse(p, headers={"Cache-Control": "no-cache"})

    def _panel(run: Path):
        cache = models.get()
        with cache.lock:
            return cache.get(run)

    async def api_playground(request: Request):
        def work():
            gen, panel = _panel(run_of(request))
            return JSONResponse({"kind": panel.kind, "controls": panel.controls, "step": gen.step, "ema": gen.ema})
        return await guarded(work)

    async def _json(request: Request) -> dict | None:
        """The JSON object posted; None (-> 415) unless it was sent as application/json."""
        if not _content_type_is(request, "application/json"):
            return None
        try:
            body = await _read_body(request, 64 * 1024)
            import json
            data = json.loads(body or b"{}")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def _picture(png: bytes, gen) -> JSONResponse:
        import base64
        return JSONResponse({"image": "data:image/png;base64," + base64.b64encode(png).decode(),
                             "step": gen.step, "ema": gen.ema})

    async def api_sample(request: Request):
        params = await _json(request)
        if params is None:
            return err("send the parameters as application/json", 415)

        def work():
            from .playground import run_interpolate, run_sample
            run = store.path(str(params.get("id", "")))
            cache = models.get()
            with cache.lock:
                gen, panel = cache.get(run)
                fn = run_interpolate if request.url.path.endswith("interpolate") else run_sample
                return _picture(fn(panel, params), gen)
        return await guarded(work)

    async def api_translate(request: Request):
        if not _content_type_is(request, "application/octet-stream"):
            return err("send the image as application/octet-stream", 415)
        try:
            data = await _read_body(request, MAX_UPLOAD_BYTES)
        except PayloadTooLarge:
            return err(f"upload too large (limit {MAX_UPLOAD_BYTES // (1024 * 1024)} MB)", 413)

        def work():
            from .playground import run_translate
            run = run_of(request)
            cache = models.get()
            with cache.lock:
                gen, panel = cache.get(run)
                return _picture(run_translate(panel, data, request.query_params.get("direction", "ab"),
                                              MAX_UPLOAD_BYTES), gen)
        return await guarded(work)

    async def api_train(request: Request):
        if not need_token(request):
            return err("a valid studio token is needed to start or stop training", 403)
        params = await _json(request)
        if params is None:
            return err("send the parameters as application/json", 415)
        action = request.path_params["action"]

        def work():
            if action not in ("start", "stop", "resume"):
                raise NotFound(action)
            if action == "start":
                la = launcher.start(str(params.get("preset", "")), params.get("overrides", []))
            elif action == "resume":
                la = launcher.resume(store.path(str(params.get("id", ""))), params.get("overrides", []))
            else:
                la = launcher.stop(store.path(str(params.get("id", ""))))
            return JSONResponse({"pid": la.proc.pid, "what": la.what})
        return await guarded(work)

    routes = [
        Route("/", index),
        Route("/api/runs", api_runs),
        Route("/api/run", api_run),
        Route("/api/metrics", api_metrics),
        Route("/api/playground", api_playground),
        Route("/api/playground/sample", api_sample, methods=["POST"]),
        Route("/api/playground/interpolate", api_sample, methods=["POST"]),
        Route("/api/playground/translate", api_translate, methods=["POST"]),
        Route("/api/train/{action:str}", api_train, methods=["POST"]),
        Route("/files/{path:path}", files),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    hosts = ["*"] if not is_loopback(host) else sorted(set(LOOPBACK_NAMES + [host]))

    async def not_found(request, exc):
        return err("not found", 404)

    app = Starlette(routes=routes, middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=hosts)],
                    exception_handlers={404: not_found})
    app.state.token = token
    app.state.store = store
    app.state.models = models
    app.state.launcher = launcher
    return app


__all__ = ["create_app", "is_loopback"]
