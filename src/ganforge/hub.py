"""Model folders on the Hugging Face Hub (optional extra ``hub`` = huggingface_hub).

- ``ganforge push DIR REPO_ID`` uploads a model folder (``HfApi.upload_folder``);
- ``ganforge.load("hf://REPO_ID[@revision]")`` fetches one with ``snapshot_download`` (into the
  Hub cache, ``HF_HUB_CACHE``) and loads it like a local model folder. With ``HF_HUB_OFFLINE=1``
  only the local cache is read.

Both read ``HF_HUB_CACHE`` / ``HF_HUB_OFFLINE`` / ``HF_ENDPOINT`` when called, not only when
huggingface_hub was imported.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import UserError

INSTALL_HINT = "pip install ganforge[hub]"
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


class HubError(UserError, RuntimeError):
    """A Hub request that cannot be served (offline, not found, refused): a one-line message."""


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:200]


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _hub():
    try:
        import huggingface_hub
    except ImportError:
        raise HubError(f"the Hugging Face Hub needs huggingface_hub: {INSTALL_HINT}") from None
    return huggingface_hub


def parse_ref(ref: str) -> tuple[str, str | None]:
    """``hf://user/name[@revision]`` -> (repo_id, revision or None)."""
    body = ref[len("hf://"):] if ref.startswith("hf://") else ref
    repo_id, _, revision = body.partition("@")
    repo_id = repo_id.strip("/")
    if not _REPO_ID.match(repo_id):
        raise HubError(f"{ref!r} does not name a Hub model: use hf://user/name or hf://user/name@revision")
    if "@" in body and not revision:
        raise HubError(f"{ref!r} has an empty revision after '@'")
    return repo_id, revision or None


def download(ref: str) -> Path:
    """The local folder of ``hf://user/name[@revision]`` (downloaded, or from the cache offline)."""
    repo_id, revision = parse_ref(ref)
    hub = _hub()
    from huggingface_hub import errors
    offline = _offline()
    try:
        path = hub.snapshot_download(repo_id, revision=revision, cache_dir=os.environ.get("HF_HUB_CACHE") or None,
                                     local_files_only=offline, library_name="ganforge")
    except errors.RevisionNotFoundError:
        raise HubError(f"{ref}: revision {revision!r} not found on the Hub") from None
    except errors.RepositoryNotFoundError:
        raise HubError(f"{ref}: no such model repository on the Hub (or it is private: log in with `hf auth login`)") \
            from None
    except (errors.LocalEntryNotFoundError, errors.OfflineModeIsEnabled) as e:
        where = os.environ.get("HF_HUB_CACHE") or hub.constants.HF_HUB_CACHE
        why = "HF_HUB_OFFLINE is set" if offline else "the Hub cannot be reached"
        raise HubError(f"{ref} is not in the local Hugging Face cache ({where}) and {why}"
                       f"{'' if offline else ' (' + _first_line(e) + ')'}") from None
    except Exception as e:  # network and HTTP errors of the client library
        raise HubError(f"could not fetch {ref} from the Hub: {_first_line(e)}") from None
    return Path(path)


__all__ = ["HubError", "download", "parse_ref"]
