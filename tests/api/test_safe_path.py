"""safe_path(): the API serves a media file only from inside the library's roots (after `..`
and symlinks are resolved); anything else is refused (403) or gone (404)."""

from pathlib import Path

import pytest

from mmsearch.api.files import OutsideRootsError, safe_path


@pytest.fixture
def tree(tmp_path) -> Path:
    """data/lib (the root) with photos, data/lib2 (a sibling sharing its name as a prefix)
    and data/private (outside)."""
    data = tmp_path / "data"
    for folder in ("lib/trips", "lib2", "private"):
        (data / folder).mkdir(parents=True)
    (data / "lib" / "a.jpg").write_bytes(b"a")
    (data / "lib" / "trips" / "b.jpg").write_bytes(b"b")
    (data / "lib2" / "c.jpg").write_bytes(b"c")
    (data / "private" / "secret.txt").write_bytes(b"s")
    return data


def test_a_file_inside_the_root_is_served_by_its_real_path(tree):
    root = tree / "lib"
    assert safe_path(str(root / "a.jpg"), [root]) == (root / "a.jpg").resolve()
    assert safe_path(str(root / "trips" / "b.jpg"), [root]) == (root / "trips" / "b.jpg").resolve()


def test_dot_dot_that_stays_inside_the_root_is_allowed_and_resolved(tree):
    root = tree / "lib"
    assert safe_path(str(root / "trips" / ".." / "a.jpg"), [root]) == (root / "a.jpg").resolve()


@pytest.mark.parametrize("escape", ["../private/secret.txt", "trips/../../private/secret.txt", "../lib2/c.jpg"])
def test_dot_dot_escaping_the_root_is_refused(tree, escape):
    with pytest.raises(OutsideRootsError):
        safe_path(str(tree / "lib" / escape), [tree / "lib"])


def test_a_sibling_folder_sharing_the_roots_name_as_a_prefix_is_outside(tree):
    # /data/lib2/c.jpg starts with the string "/data/lib" but is not inside /data/lib.
    with pytest.raises(OutsideRootsError):
        safe_path(str(tree / "lib2" / "c.jpg"), [tree / "lib"])


def test_a_symlink_inside_the_root_pointing_outside_is_refused(tree):
    link = tree / "lib" / "innocent.jpg"
    link.symlink_to(tree / "private" / "secret.txt")
    with pytest.raises(OutsideRootsError):
        safe_path(str(link), [tree / "lib"])


def test_a_symlinked_folder_inside_the_root_pointing_outside_is_refused(tree):
    (tree / "lib" / "shared").symlink_to(tree / "private", target_is_directory=True)
    with pytest.raises(OutsideRootsError):
        safe_path(str(tree / "lib" / "shared" / "secret.txt"), [tree / "lib"])


def test_a_symlink_between_files_inside_the_root_is_served_as_its_target(tree):
    link = tree / "lib" / "alias.jpg"
    link.symlink_to(tree / "lib" / "trips" / "b.jpg")
    assert safe_path(str(link), [tree / "lib"]) == (tree / "lib" / "trips" / "b.jpg").resolve()


def test_a_root_given_through_a_symlink_or_unnormalised_still_contains_its_files(tree, tmp_path):
    alias = tmp_path / "library-alias"
    alias.symlink_to(tree / "lib", target_is_directory=True)
    real_file = (tree / "lib" / "a.jpg").resolve()
    assert safe_path(str(tree / "lib" / "a.jpg"), [alias]) == real_file
    assert safe_path(str(alias / "a.jpg"), [alias]) == real_file
    assert safe_path(str(alias / "a.jpg"), [tree / "lib"]) == real_file
    assert safe_path(str(real_file), [tree / "private" / ".." / "lib"]) == real_file


def test_any_of_several_roots_may_hold_the_file(tree):
    roots = [tree / "lib", tree / "lib2"]
    assert safe_path(str(tree / "lib2" / "c.jpg"), roots) == (tree / "lib2" / "c.jpg").resolve()
    with pytest.raises(OutsideRootsError):
        safe_path(str(tree / "private" / "secret.txt"), roots)


def test_no_roots_serves_nothing(tree):
    with pytest.raises(OutsideRootsError):
        safe_path(str(tree / "lib" / "a.jpg"), [])


def test_a_missing_file_is_not_found_not_forbidden(tree):
    with pytest.raises(FileNotFoundError):
        safe_path(str(tree / "lib" / "deleted.jpg"), [tree / "lib"])


def test_a_dangling_symlink_is_not_found(tree):
    link = tree / "lib" / "dangling.jpg"
    link.symlink_to(tree / "lib" / "was-here.jpg")
    with pytest.raises(FileNotFoundError):
        safe_path(str(link), [tree / "lib"])


def test_a_folder_is_not_a_file_to_serve(tree):
    with pytest.raises(FileNotFoundError):
        safe_path(str(tree / "lib" / "trips"), [tree / "lib"])
    with pytest.raises(FileNotFoundError):
        safe_path(str(tree / "lib"), [tree / "lib"])


def test_outside_roots_error_is_a_permission_error_distinct_from_not_found():
    # The API answers 403 for it and 404 for FileNotFoundError.
    assert issubclass(OutsideRootsError, PermissionError)
    assert not issubclass(OutsideRootsError, FileNotFoundError)
