"""Shared helpers for tests that build and query real libraries."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import uuid
import warnings
from pathlib import Path

import httpx
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import DBAPIError

from mmsearch.config import Settings
from mmsearch.datasets import synth
from mmsearch.library import Library


class CountingEncoder:
    """The real encoder, counting how many images it is asked to embed."""

    def __init__(self, encoder):
        self._encoder = encoder
        self.images_embedded = 0

    def embed_images(self, images):
        self.images_embedded += len(images)
        return self._encoder.embed_images(images)

    def __getattr__(self, name):
        return getattr(self._encoder, name)


# A role that may create databases on a real PostgreSQL server (.ci/run sets it).
POSTGRES_URL = os.environ.get("MMSEARCH_TEST_POSTGRES_URL")
# "postgresql": the libraries tests open (open_library, store_url) live on that server, each
# in a database of its own; .ci/run runs the store, indexer, search, job and API tests so.
ON_POSTGRES = os.environ.get("MMSEARCH_TEST_DATABASE") == "postgresql"
TEST_DATABASE_PREFIX = f"mmsearch_test_{os.getpid()}_"
# "milvus": the libraries open_library opens serve their vectors from Milvus Lite (milvus.db in
# the library folder) instead of FAISS files; `make test-milvus` runs the search tests so.
TEST_VECTOR_BACKEND = os.environ.get("MMSEARCH_TEST_VECTOR_BACKEND")
_databases: dict[Path, str] = {}  # a library folder's database: reopening the folder finds its rows


def new_postgres_database() -> str:
    """The URL of a new, empty database on POSTGRES_URL's server (drop_postgres_databases
    drops it when the test session ends)."""
    admin_url = make_url(POSTGRES_URL)
    name = f"{TEST_DATABASE_PREFIX}{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return admin_url.set(database=name).render_as_string(hide_password=False)


def drop_postgres_databases() -> None:
    """Drop every database new_postgres_database made in this process. A drop may be refused
    for a moment (a backend this role may not end, such as an autovacuum worker, is still
    in it), so each is tried again for up to 10 s, then left with a warning."""
    admin = create_engine(make_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        ours = text("SELECT datname FROM pg_database WHERE starts_with(datname, :prefix)")
        for name in list(c.execute(ours, {"prefix": TEST_DATABASE_PREFIX}).scalars()):
            for attempt in range(40):
                try:
                    c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                    break
                except DBAPIError as e:
                    if attempt == 39:
                        warnings.warn(f"test database {name} left on the server: {e.orig}", stacklevel=1)
                    time.sleep(0.25)
    admin.dispose()


def library_database(folder: Path) -> str | None:
    """The database of a test library in `folder` when the suite runs on PostgreSQL: a new one
    the first time, the same one when the folder is opened again (by a test or a child
    process given it as MMSEARCH_DATABASE_URL); None otherwise (SQLite in the folder)."""
    if not ON_POSTGRES:
        return None
    folder = Path(folder).resolve()
    if folder not in _databases:
        _databases[folder] = new_postgres_database()
    return _databases[folder]


def child_env(folder: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of an `mmsearch` child process opening the test library in `folder`:
    `env` (default: this process's), with the library's database when the suite runs on
    PostgreSQL."""
    env = dict(os.environ if env is None else env)
    if ON_POSTGRES:
        env["MMSEARCH_DATABASE_URL"] = library_database(folder)
    return env


def library_exists(folder: Path) -> bool:
    """Whether a child process has created the test library in `folder` (on PostgreSQL its
    database exists from the start: opening it creates its schema, as the child would)."""
    return ON_POSTGRES or (Path(folder) / "mmsearch.db").exists()


def store_url(folder: Path, name: str = "library.db") -> str:
    """A store's URL for a test: library_database(folder), else SQLite file `name` in `folder`."""
    if ON_POSTGRES:
        return library_database(folder)
    Path(folder).mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{Path(folder) / name}"


def make_corpus(folder: Path, n: int = 90, seed: int = 11) -> dict:
    return synth.generate(folder, n, 0, seed=seed, split="train")


def open_library(path: Path, encoder=None, **overrides) -> Library:
    """A library in `path` (on PostgreSQL when the suite runs on it: the same database each time
    the folder is opened; its vectors in Milvus Lite when MMSEARCH_TEST_VECTOR_BACKEND=milvus)."""
    if ON_POSTGRES and "database_url" not in overrides:
        overrides["database_url"] = library_database(path)
    if TEST_VECTOR_BACKEND:
        overrides.setdefault("vector_backend", TEST_VECTOR_BACKEND)
    settings = Settings(library_dir=path, batch_size=16, decode_workers=0, **overrides)
    return Library.open(settings=settings, encoder=encoder)


def paths_with(corpus: Path, **attrs: str) -> set[str]:
    """Images of a synthetic corpus holding an object with all the given attributes."""
    manifest = json.loads((corpus / "manifest.json").read_text())
    return {
        str((corpus / i["file"]).resolve())
        for i in manifest["items"]
        if any(all(o[k] == v for k, v in attrs.items()) for o in i["objects"])
    }


def perturbed_mini(folder: Path, seed: int = 1, scale: float = 0.05) -> Path:
    """A second model for switching tests: mini's CLIP with every weight nudged by noise,
    saved as a local open_clip checkpoint folder (its own space, close enough to still work)."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    from mmsearch.config import builtin_weights

    mini = builtin_weights("mini")
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("open_clip_config.json", "synonyms.json"):
        shutil.copy(mini / name, folder / name)
    weights = load_file(mini / "open_clip_model.safetensors")
    noise = torch.Generator().manual_seed(seed)
    for key, tensor in weights.items():
        if tensor.is_floating_point() and tensor.numel() > 1:
            # multiplicative: a variance or a scale stays positive
            weights[key] = tensor * (1 + scale * torch.randn(tensor.shape, generator=noise))
    save_file(weights, folder / "open_clip_model.safetensors")
    return folder


def write_folder_library(store, vectors, space: str, seed: int = 0) -> None:
    """One media row per vector (ids 1..n, each with its image vector) written straight into
    SQL, in folders drawn at random: /lib/p10/ (10%), /lib/p1/ (1%), /lib/p001/ (0.01%) and
    /lib/rest/: a library to filter, far larger than embedding images would allow."""
    import numpy as np
    from sqlalchemy import insert

    from mmsearch.storage.store import Media, Vector, encode_embedding

    n, dim = vectors.shape
    folder = np.full(n, "rest", dtype=object)
    order = np.random.default_rng(seed).permutation(n)
    sizes = np.cumsum([0, n // 10, n // 100, max(1, n // 10_000)])
    for name, start, stop in zip(("p10", "p1", "p001"), sizes[:-1], sizes[1:]):
        folder[order[start:stop]] = name
    with store.engine.begin() as c:
        for start in range(0, n, 50_000):
            rows = range(start, min(n, start + 50_000))
            c.execute(insert(Media), [dict(id=i + 1, path=f"/lib/{folder[i]}/{i:08d}.jpg", kind="image") for i in rows])
            vector_rows = [
                dict(
                    id=i + 1, media_id=i + 1, kind="image", space=space, dim=dim, embedding=encode_embedding(vectors[i])
                )
                for i in rows
            ]
            c.execute(insert(Vector), vector_rows)


def wait_for_job(client, job_id: int, timeout_s: float = 120) -> dict:
    """GET /jobs/{id} until the job leaves pending and running; its summary."""
    import time

    deadline = time.time() + timeout_s
    while (job := client.get(f"/jobs/{job_id}").json())["state"] in ("pending", "running"):
        assert time.time() < deadline, f"job {job_id} still {job['state']} after {timeout_s} s"
        time.sleep(0.1)
    return job


def free_port() -> int:
    """A local TCP port nothing listens on now (for a server a test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, server: subprocess.Popen, within_s: float = 300.0) -> None:
    """Until the server at `url` answers /health (torch and the model load slowly on 2 busy
    cores); fails when it exits first or takes longer than `within_s`."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        assert server.poll() is None, "the server exited"
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} did not start within {within_s:.0f} s")
