"""POST /jobs against hostile input: roots no folder can have, roots outside the folders the
server allows (MMSEARCH_INDEX_ROOTS), a library another process is writing, and a folder
holding a name that is not UTF-8, a FIFO and a symlink out of the root; and the state of
jobs a killed server left behind."""

import os
import subprocess
import sys
import textwrap

import httpx
import pytest
from PIL import Image

from mmsearch.api.app import create_app
from mmsearch.api.background import BackgroundServer
from mmsearch.storage.store import Job

from ..helpers import open_library, wait_for_job

pytestmark = pytest.mark.slow  # builds and serves libraries

HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from mmsearch.indexer.lock import writer_lock
    with writer_lock(Path(sys.argv[1])):
        print("locked", flush=True)
        sys.stdin.read()
    """
)


@pytest.fixture(scope="module")
def served(tmp_path_factory, mini_encoder):
    base = tmp_path_factory.mktemp("hostile")
    lib = open_library(base / "lib", encoder=mini_encoder, index_roots=[base])
    with BackgroundServer(create_app(lib)) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        yield client, lib, base
    lib.close()


def _png(path, colour=(200, 30, 40)) -> None:
    with open(path, "wb") as f:
        Image.new("RGB", (16, 12), colour).save(f, format="PNG")


def _post_raw(client, body: bytes) -> httpx.Response:
    """The body as written: JSON may hold escapes (a lone surrogate) a client library refuses to encode."""
    return client.post("/jobs", content=body, headers={"content-type": "application/json"})


@pytest.mark.parametrize(
    "body",
    [
        b'{"roots": ["/tmp/a\\u0000b"]}',
        b'{"roots": ["/tmp/' + b"x" * 5000 + b'"]}',
        b'{"roots": ["/' + b"x/" * 3000 + b'"]}',
        b'{"roots": ["~nosuchuser/x"]}',
        b'{"roots": ["/tmp/\\udcff"]}',
        b'{"roots": [""]}',
        b'{"roots": ["relative/photos"]}',
        b'{"roots": ["."]}',
        b'{"roots": ["~"]}',
    ],
)
def test_roots_no_folder_can_have_answer_400_with_a_json_reason(served, body):
    client, *_ = served
    before = len(client.get("/jobs", params={"limit": 1000}).json())
    r = _post_raw(client, body)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/json"
    assert "cannot be indexed" in r.json()["detail"] or "is not an absolute path" in r.json()["detail"]
    assert len(client.get("/jobs", params={"limit": 1000}).json()) == before  # no job row


def test_roots_outside_the_allowed_folders_answer_403_naming_the_setting(served, tmp_path_factory):
    client, _, base = served
    outside = tmp_path_factory.mktemp("elsewhere")
    (base / "escape").symlink_to(outside, target_is_directory=True)
    for root in ("/", str(outside), str(base / "escape"), str(base / ".." / outside.name), str(base.parent)):
        r = client.post("/jobs", json={"roots": [root]})
        assert r.status_code == 403, root
        assert "MMSEARCH_INDEX_ROOTS" in r.json()["detail"]
    r = client.post("/jobs", json={"roots": [str(base / "lib"), "/"]})  # one root outside refuses the job
    assert r.status_code == 403
    # A missing folder outside answers as an existing one does; inside, the client is told it is missing.
    assert client.post("/jobs", json={"roots": ["/no/such/folder"]}).status_code == 403
    r = client.post("/jobs", json={"roots": [str(base / "missing")]})
    assert (r.status_code, r.json()["detail"]) == (400, f"{base / 'missing'} is not a folder")


def test_a_server_without_index_roots_refuses_every_job_with_403(tmp_path, mini_encoder):
    (tmp_path / "photos").mkdir()
    lib = open_library(tmp_path / "lib", encoder=mini_encoder)
    with BackgroundServer(create_app(lib)) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        for root in (str(tmp_path / "photos"), "/", "/no/such/folder"):  # whether it exists is not told
            r = client.post("/jobs", json={"roots": [root]})
            assert r.status_code == 403, root
            assert r.json()["detail"] == (
                "indexing over HTTP is turned off: MMSEARCH_INDEX_ROOTS is empty "
                "(set it to the folders clients may index)"
            )
        # What no folder can be named is refused first, whatever the setting: 400 as before.
        assert client.post("/jobs", json={"roots": [""]}).status_code == 400
        assert client.post("/jobs", json={"roots": ["/tmp/a\x00b"]}).status_code == 400
        assert client.get("/jobs").json() == []
    lib.close()


def test_a_folder_of_hostile_files_is_indexed_and_its_job_reads_back_as_json(served, tmp_path_factory):
    client, _, base = served
    root = base / "incoming"
    root.mkdir()
    _png(root / "ok.png")
    _png(os.path.join(os.fsencode(root), b"bad\xff\xfe.png"), (0, 200, 0))
    os.mkfifo(root / "p.png")
    secret = tmp_path_factory.mktemp("secret") / "secret.png"
    _png(secret, (0, 0, 200))
    (root / "link.png").symlink_to(secret)
    r = client.post("/jobs", json={"roots": [str(root)]})
    assert r.status_code == 202
    job = wait_for_job(client, r.json()["id"])
    shown = str(root / "bad\\xff\\xfe.png")
    assert (job["state"], job["total"], job["done"], job["new"], job["errors"]) == ("done", 2, 2, 2, 1)
    assert job["recent_errors"] == [
        {"path": shown, "error": "the file name is not valid UTF-8; rename the file to index it"}
    ]
    assert "skipped special files (FIFOs, sockets, devices): 1" in job["message"]
    assert "skipped symlinks that lead out of the indexed folders: 1" in job["message"]
    assert client.get("/jobs").status_code == 200
    hits = client.post("/search", json={"text": "a shape", "k": 100, "generate": "never"}).json()["results"]
    assert sorted(h["path"] for h in hits if h["path"].startswith(str(root))) == [str(root / "ok.png")]
    again = wait_for_job(client, client.post("/jobs", json={"roots": [str(root)]}).json()["id"])
    assert (again["state"], again["unchanged"], again["errors"], again["deleted"]) == ("done", 2, 0, 0)


def test_a_library_another_process_writes_answers_409_and_creates_no_job(served):
    client, lib, base = served
    (base / "more").mkdir(exist_ok=True)
    _png(base / "more" / "a.png")
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lib.dir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "locked"
        before = client.get("/jobs", params={"limit": 1000}).json()
        r = client.post("/jobs", json={"roots": [str(base / "more")]})
        assert r.status_code == 409
        assert r.json()["detail"] == (
            f"an index job is already running on {lib.dir} (pid {child.pid}); wait for it to finish"
        )
        assert client.get("/jobs", params={"limit": 1000}).json() == before
    finally:
        child.stdin.close()
        child.wait(30)
    r = client.post("/jobs", json={"roots": [str(base / "more")]})
    assert r.status_code == 202
    assert wait_for_job(client, r.json()["id"])["state"] == "done"


def test_a_server_started_after_kill_9_shows_the_dead_jobs_as_interrupted(tmp_path, mini_encoder):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with open_library(tmp_path / "lib") as lib:
        with lib.store.session() as s:
            s.add_all(
                [
                    Job(roots=["/m"], space="s", state="running", pid=dead.pid, done=4, total=8),
                    Job(roots=["/m"], space="s", state="pending", pid=dead.pid),
                ]
            )
    lib = open_library(tmp_path / "lib", encoder=mini_encoder)
    with BackgroundServer(create_app(lib)) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        assert [j["state"] for j in client.get("/jobs").json()] == ["interrupted", "interrupted"]
        metrics = client.get("/metrics").text
        assert 'mmsearch_jobs{state="interrupted"} 2.0' in metrics
        assert "mmsearch_job_progress{" not in metrics
    lib.close()
