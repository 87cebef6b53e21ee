"""d2lai.data.download: files in place are used, served files are checked and renamed into place,
archives unpack safely; never the network (urlopen is replaced in every test)."""

import hashlib
import io
import logging
import tarfile
import urllib.error
import zipfile

import pytest

from d2lai.data import DATA_HUB, download, download_extract, extract
from d2lai.testing import write_fake_fra_eng

URL = "http://data.example/files/notes.txt"


class Served:
    """What urlopen returns: a readable body with headers, usable in a with block."""

    def __init__(self, body: bytes, before_read=None):
        self.body, self.before_read = io.BytesIO(body), before_read
        self.headers = {"Content-Length": str(len(body))}

    def read(self, n=-1):
        if self.before_read is not None:
            self.before_read()
        return self.body.read(n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.fixture
def served(monkeypatch):
    """serve(body) makes urlopen return `body`; the URLs asked for are listed in `asked`."""
    asked = []

    def serve(body, before_read=None):
        def urlopen(url, *args, **kwargs):
            asked.append(url)
            return Served(body, before_read)

        monkeypatch.setattr("urllib.request.urlopen", urlopen)
        return asked

    def never(url, *args, **kwargs):
        raise AssertionError(f"no download expected, got {url}")

    monkeypatch.setattr("urllib.request.urlopen", never)
    return serve


def offline(monkeypatch):
    def urlopen(url, *args, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr("urllib.request.urlopen", urlopen)


def test_a_file_already_there_is_used_as_it_is(tmp_path, served, caplog):
    (tmp_path / "timemachine.txt").write_text("my own copy")
    with caplog.at_level(logging.WARNING, logger="d2lai"):
        path = download("time_machine", root=tmp_path)
        assert download("time_machine", root=tmp_path) == path
    assert path == tmp_path / "timemachine.txt" and path.read_text() == "my own copy"
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and DATA_HUB["time_machine"][1] in warnings[0]  # said once


def test_a_served_file_is_checked_and_renamed_into_place(tmp_path, served):
    body = b"the book's data\n" * 1000
    target = tmp_path / "data" / "notes.txt"

    def not_there_yet():
        assert not target.exists()  # written elsewhere while it arrives

    asked = served(body, before_read=not_there_yet)
    path = download(URL, sha1=hashlib.sha1(body).hexdigest(), root=tmp_path / "data")
    assert asked == [URL]
    assert path == target and path.read_bytes() == body
    assert sorted(p.name for p in path.parent.iterdir()) == ["notes.txt"]  # no .part left
    served(b"other")  # a second call finds the file and does not download
    assert download(URL, root=tmp_path / "data").read_bytes() == body


def test_a_book_name_downloads_its_url(tmp_path, served, monkeypatch):
    body = b"Ab ba"
    monkeypatch.setitem(DATA_HUB, "time_machine", (URL, hashlib.sha1(body).hexdigest()))
    asked = served(body)
    assert download("time_machine", root=tmp_path).read_bytes() == body and asked == [URL]


def test_a_wrong_checksum_leaves_nothing_and_names_url_and_hashes(tmp_path, served):
    served(b"not the file")
    expected = hashlib.sha1(b"the file").hexdigest()
    with pytest.raises(ValueError) as err:
        download(URL, sha1=expected, root=tmp_path)
    msg = str(err.value)
    assert URL in msg and expected in msg and hashlib.sha1(b"not the file").hexdigest() in msg
    assert list(tmp_path.iterdir()) == []


def test_offline_error_names_url_file_and_folder(tmp_path, monkeypatch):
    offline(monkeypatch)
    with pytest.raises(FileNotFoundError) as err:
        download("fra-eng", root=tmp_path / "data")
    msg = str(err.value)
    assert DATA_HUB["fra-eng"][0] in msg and "fra-eng.zip" in msg
    assert str(tmp_path / "data") in msg and "no route to host" in msg
    assert list((tmp_path / "data").iterdir()) == []


def test_bad_names_and_roots(tmp_path, served):
    with pytest.raises(ValueError, match="unknown data set 'timemachine'.*time_machine"):
        download("timemachine", root=tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        download("time_machine", root=tmp_path / "file")
    (tmp_path / "timemachine.txt").mkdir()
    with pytest.raises(IsADirectoryError, match="timemachine.txt is a folder"):
        download("time_machine", root=tmp_path)


def test_zip_with_a_member_outside_the_folder_is_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("fine/a.txt", "a")
        z.writestr("../escaped.txt", "b")
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="'../escaped.txt'.*outside"):
        extract(archive, out)
    assert not (tmp_path / "escaped.txt").exists() and list(out.iterdir()) == []


def test_a_corrupt_zip_is_refused_naming_the_file(tmp_path):
    archive = tmp_path / "broken.zip"
    archive.write_bytes(b"PK\x03\x04 and then nothing useful")
    with pytest.raises(ValueError, match="not a whole zip file") as err:
        extract(archive)
    assert str(archive) in str(err.value)
    # a whole zip with a damaged member (its CRC no longer matches) is refused too
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as z:
        z.writestr("data/a.txt", "hello world, hello world")
    raw = archive.read_bytes()
    archive.write_bytes(raw.replace(b"hello world, hello", b"HELLO world, hello", 1))
    with pytest.raises(ValueError, match="a.txt is damaged") as err:
        extract(archive)
    assert str(archive) in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.zip"]


def test_tar_extraction(tmp_path):
    src = tmp_path / "src"
    (src / "set").mkdir(parents=True)
    (src / "set" / "a.txt").write_text("alpha")
    archive = tmp_path / "set.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        t.add(src / "set", arcname="set")
    out = extract(archive, tmp_path / "out")
    assert out == tmp_path / "out" and (out / "set" / "a.txt").read_text() == "alpha"
    assert sorted(p.name for p in out.iterdir()) == ["set"]  # no temporary folder left


@pytest.mark.parametrize("kind", ["dotdot", "symlink"])
def test_tar_members_that_could_escape_are_refused(tmp_path, kind):
    archive = tmp_path / "bad.tar"
    with tarfile.open(archive, "w") as t:
        member = tarfile.TarInfo("../up.txt" if kind == "dotdot" else "link")
        if kind == "symlink":
            member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
            t.addfile(member)
        else:
            member.size = 2
            t.addfile(member, io.BytesIO(b"hi"))
    with pytest.raises(ValueError, match="outside|not a plain file"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "up.txt").exists() and list((tmp_path / "out").iterdir()) == []


def test_a_truncated_tar_and_an_unknown_kind_are_refused(tmp_path):
    archive = tmp_path / "cut.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        data = b"x" * 5000
        info = tarfile.TarInfo("x.bin")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    archive.write_bytes(archive.read_bytes()[:40])
    with pytest.raises(ValueError, match="not a whole tar file") as err:
        extract(archive, tmp_path / "out")
    assert str(archive) in str(err.value)
    (tmp_path / "x.rar").write_bytes(b"")
    with pytest.raises(ValueError, match=r"\.zip, \.tar"):
        extract(tmp_path / "x.rar")


def test_download_extract_unpacks_once(tmp_path, served):
    write_fake_fra_eng(tmp_path, num_pairs=20)
    folder = download_extract("fra-eng", root=tmp_path)
    assert folder == tmp_path / "fra-eng"
    text = (folder / "fra.txt").read_text(encoding="utf-8")
    assert len(text.splitlines()) == 20 and text.startswith("Go.\tVa\u202f!\n")
    (folder / "fra.txt").write_text("edited")
    assert (download_extract("fra-eng", root=tmp_path) / "fra.txt").read_text() == "edited"
