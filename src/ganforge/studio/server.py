"""Running the studio: ``serve`` (the ``ganforge studio`` command) and ``serve_in_thread``
(tests and load measurements)."""

from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path

from .app import create_app, is_loopback


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: a free port picked by the OS)."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as e:
        sock.close()
        from .runs import StudioError
        raise StudioError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _url(host: str, port: int) -> str:
    h = f"[{host.strip('[]')}]" if ":" in host.strip("[]") else host
    return f"http://{h}:{port}"


def startup_message(root, host: str, port: int, token: str) -> tuple[str, str | None]:
    """(what ``ganforge studio`` prints, a warning for a non-loopback address or None)."""
    url = _url(host, port)
    msg = (f"ganforge studio for {root}\n  open {url}/#token={token}\n"
           f"  token (to start/stop training): {token}\n  Ctrl-C to quit")
    warn = None if is_loopback(host) else (
        f"warning: listening on {host}, not a loopback address: anyone who can reach this machine can see "
        f"your runs and use the playground (starting and stopping training still needs the token)")
    return msg, warn


def _server(app):
    import uvicorn
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=2)
    return uvicorn.Server(config)


def serve(runs_dir: str | Path, *, host: str = "127.0.0.1", port: int = 0, stale_after: float = 180.0) -> None:
    """Serve the studio until Ctrl-C; runs started from the page are interrupted cleanly at exit."""
    runs_dir = Path(runs_dir).expanduser()
    if not runs_dir.is_dir():
        from ..rundir import RunDirError
        raise RunDirError(f"runs folder not found: {runs_dir}")
    app = create_app(runs_dir, host=host, stale_after=stale_after)
    sock = _bind(host, port)
    msg, warn = startup_message(app.state.store.root, host, sock.getsockname()[1], app.state.token)
    if warn:
        print(warn, file=sys.stderr)
    print(msg, flush=True)
    server = _server(app)
    try:
        server.run(sockets=[sock])
    finally:
        alive = app.state.launcher.alive()
        if alive:
            print(f"interrupting the {len(alive)} run(s) started here (each writes a checkpoint; resume later)",
                  flush=True)
        app.state.launcher.stop_all()
        sock.close()


class ThreadedStudio:
    """A studio served from a background thread: ``.url``, ``.app``, ``.stop()``."""

    def __init__(self, runs_dir: str | Path, *, host: str = "127.0.0.1", **kwargs):
        self.app = create_app(runs_dir, host=host, **kwargs)
        self.sock = _bind(host, 0)
        self.url = _url(host, self.sock.getsockname()[1])
        self.server = _server(self.app)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started and time.time() < deadline:
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.app.state.launcher.stop_all()
        self.sock.close()


def serve_in_thread(runs_dir: str | Path, **kwargs) -> ThreadedStudio:
    return ThreadedStudio(runs_dir, **kwargs)
