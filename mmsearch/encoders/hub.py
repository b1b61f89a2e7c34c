"""Fast, honest access to model hubs: use the local cache when it has the files, and when
it does not and the hub is unreachable, fail within seconds instead of retrying for minutes."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

from .base import CheckpointNotFoundError, HubUnreachableError

HF_ENDPOINT_DEFAULT = "https://huggingface.co"


def hf_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", HF_ENDPOINT_DEFAULT)


def reachable(url: str, timeout_s: float) -> bool:
    """True when a TCP connection to the URL's host opens within timeout_s. DNS lookups
    ignore socket timeouts, so the attempt runs in a thread we stop waiting for."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    parsed = urlparse(url)
    host, port = parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80)
    result = {"ok": False}

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                result["ok"] = True
        except OSError:
            pass

    t = threading.Thread(target=attempt, daemon=True)
    t.start()
    t.join(timeout_s)
    return result["ok"]


def require_hub(what: str, url: str, timeout_s: float, instead: str) -> None:
    """Raise HubUnreachableError (naming what to pass instead) when `url` cannot be reached."""
    if not reachable(url, timeout_s):
        raise HubUnreachableError(
            f"{what} is not in the local cache and {urlparse(url).hostname} cannot be reached "
            f"(offline?). Pass {instead} instead."
        )


def cached_hf_file(repo_id: str, filenames: list[str], cache_dir: str | None = None) -> str | None:
    """Path of the first of `filenames` already in the Hugging Face cache, else None."""
    from huggingface_hub import try_to_load_from_cache

    for name in filenames:
        path = try_to_load_from_cache(repo_id, name, cache_dir=cache_dir)
        if isinstance(path, str) and os.path.isfile(path):
            return path
    return None


def cached_hf_snapshot(repo_id: str, cache_dir: str | None = None) -> str | None:
    """Local folder of a fully cached hub repo, else None (never touches the network)."""
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(repo_id, cache_dir=cache_dir, local_files_only=True)
    except Exception:  # not cached (the exception type varies across huggingface_hub versions)
        return None


def folder_or_hub_id(source: str, spec: str, timeout_s: float, instead: str, missing: str) -> tuple[str, bool]:
    """(folder or hub id, is_local) of a transformers model named by a folder or an ORG/NAME hub
    id: a folder as it is; a hub repo from the cache when it is there, without network; else
    the hub id once the hub answers (HubUnreachableError naming `spec` and `instead` when it
    does not). A name that is neither raises CheckpointNotFoundError(`missing`)."""
    path = Path(source).expanduser()
    if path.is_dir():
        return str(path), True
    if not source or source.startswith(("/", ".", "~")) or "\\" in source or source.count("/") != 1:
        raise CheckpointNotFoundError(missing)
    snapshot = cached_hf_snapshot(source)
    if snapshot:
        return snapshot, True
    require_hub(spec, hf_endpoint(), timeout_s, instead)
    return source, False
