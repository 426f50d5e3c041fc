"""``ganforge studio``: a local web page to watch runs, compare them and try trained generators.

Needs the ``studio`` extra (``pip install ganforge[studio]``: Starlette and uvicorn). The page
is plain HTML/JS with uPlot, shipped inside the package (works offline).
"""

from .app import create_app
from .server import serve, serve_in_thread

__all__ = ["create_app", "serve", "serve_in_thread"]
