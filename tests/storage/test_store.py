"""Opening a new library from several places at once (an index job and the server)."""

import threading

from mmsearch.storage.store import SCHEMA_VERSION, SchemaInfo, Store


def test_stores_opened_at_once_on_a_new_database_all_open_with_one_schema(tmp_path):
    for round_ in range(5):  # without the retry every round failed: "table ... already exists"
        url = f"sqlite:///{tmp_path}/library-{round_}.db"
        errors: list[Exception] = []

        def open_store() -> None:
            try:
                Store(url)
            except Exception as e:  # noqa: BLE001 - collected for the assertion below
                errors.append(e)

        threads = [threading.Thread(target=open_store) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        with Store(url).session() as s:
            assert [(r.key, r.value) for r in s.query(SchemaInfo)] == [("schema_version", str(SCHEMA_VERSION))]
