"""The book's data files: fetched once into the data folder, checked by SHA-1, unpacked safely.

`download("time_machine")` gives the path of the book's file in the data folder (`root=`, else
`D2LAI_DATA`, else `~/.cache/d2lai`), downloading it first if it is not there: to a temporary
name, its SHA-1 checked, then renamed into place, so a killed download leaves nothing
half-written. Offline, the error names the URL, the file and the folder to put it in.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from .base import default_root

logger = logging.getLogger("d2lai")

__all__ = ["DATA_URL", "DATA_HUB", "download", "extract", "download_extract", "sha1_of"]

DATA_URL = "http://d2l-data.s3-accelerate.amazonaws.com/"

# The book's data sets by name: (URL, SHA-1 of the file), as the book's own library lists them.
DATA_HUB: dict[str, tuple[str, str]] = {
    "time_machine": (DATA_URL + "timemachine.txt", "090b5e7e70c295757f55df93cb0a180b9691891a"),
    "fra-eng": (DATA_URL + "fra-eng.zip", "94646ad1522d915e7b0f9296181140edcf86a4f5"),
    "airfoil": (DATA_URL + "airfoil_self_noise.dat", "76e5be1548fd8222e5074cf0faae75edff8cf93f"),
    "kaggle_house_train": (DATA_URL + "kaggle_house_pred_train.csv",
                           "585e9cc93e70b39160e7921475f9bcd7d31219ce"),
    "kaggle_house_test": (DATA_URL + "kaggle_house_pred_test.csv",
                          "fa19780a7b011d9b009e8bff8e99922a8ee2eb90"),
    # computer vision
    "hotdog": (DATA_URL + "hotdog.zip", "fba480ffa8aa7e0febbb511d181409f899b9baa5"),
    "banana-detection": (DATA_URL + "banana-detection.zip",
                         "5de26c8fce5ccdea9f91267273464dc968d20d72"),
    "voc2012": (DATA_URL + "VOCtrainval_11-May-2012.tar",
                "4e443f8a2eca6b1dac8a6c57641b67dd40621a49"),
    "cifar10_tiny": (DATA_URL + "kaggle_cifar10_tiny.zip",
                     "2068874e4b9a9f0fb07ebe0ad2b29754449ccacd"),
    "dog_tiny": (DATA_URL + "kaggle_dog_tiny.zip", "0cb91d09b814ecdc07b50f31f8dcad3e81d6a86d"),
}

_warned: set[tuple[Path, str]] = set()  # (file, SHA-1 of a content said not the book's)


def sha1_of(path: str | os.PathLike) -> str:
    """The SHA-1 of a file, read a megabyte at a time."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _resolve(name_or_url: str, sha1: str | None) -> tuple[str, str | None]:
    """(URL, SHA-1) of a DATA_HUB name or a URL."""
    if not isinstance(name_or_url, str) or not name_or_url:
        raise TypeError(f"download takes a data set name ({', '.join(DATA_HUB)}) or a URL, "
                        f"got {name_or_url!r}")
    if "://" in name_or_url:
        return name_or_url, sha1
    if name_or_url not in DATA_HUB:
        raise ValueError(f"unknown data set {name_or_url!r}: the names are "
                         f"{', '.join(DATA_HUB)} (or pass a URL)")
    url, hub_sha1 = DATA_HUB[name_or_url]
    return url, sha1 if sha1 is not None else hub_sha1


def download(name_or_url: str, sha1: str | None = None,
             root: str | os.PathLike | None = None) -> Path:
    """The local path of a book's data file (a DATA_HUB name, or a URL with its SHA-1).

    A file already in the data folder is used as it is (a warning says so once for each
    content whose SHA-1 is not the book's); a missing one is downloaded and checked before it
    is put in place.
    """
    url, sha1 = _resolve(name_or_url, sha1)
    folder = Path(root).expanduser() if root is not None else default_root()
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"data root {folder} is a file; it must be a folder")
    path = folder / url.rstrip("/").split("/")[-1]
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; remove it so that the file "
                                f"{path.name} can be put there")
    if path.is_file():
        found = sha1_of(path) if sha1 else None
        if found != sha1 and (path, found) not in _warned:  # once for each content of the file
            _warned.add((path, found))
            logger.warning("%s is not the book's file (its SHA-1 differs from %s): using it as "
                           "it is", path, sha1)
        return path
    _fetch(url, path, sha1)
    return path


def _fetch(url: str, path: Path, sha1: str | None) -> None:
    """Download `url` to a temporary file beside `path`, check it, rename it into place."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise PermissionError(f"cannot create the data folder {path.parent} ({err}): pass a "
                              f"writable root= or set D2LAI_DATA to one") from None
    part = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.part")
    h = hashlib.sha1()
    try:
        logger.info("downloading %s to %s", url, path)
        with urllib.request.urlopen(url, timeout=60) as response, open(part, "xb") as out:
            size = int(response.headers.get("Content-Length") or 0) or None
            with _bar(size, path.name) as bar:
                for block in iter(lambda: response.read(1 << 20), b""):
                    out.write(block)
                    h.update(block)
                    bar.update(len(block))
        if sha1 and h.hexdigest() != sha1:
            raise ValueError(f"the download of {url} is damaged or not the book's file: its "
                             f"SHA-1 is {h.hexdigest()}, expected {sha1}. Try again later, or "
                             f"put the right file at {path}")
        os.replace(part, path)
    except (urllib.error.URLError, OSError) as err:
        if isinstance(err, PermissionError):
            raise PermissionError(f"cannot write {path} ({err}): pass a writable root= or set "
                                  f"D2LAI_DATA to one") from None
        reason = getattr(err, "reason", None) or err
        raise FileNotFoundError(
            f"{path.name} is not in {path.parent} and could not be downloaded from {url} "
            f"({reason}).\nDownload it elsewhere and put it at {path}, or pass root= (or set "
            f"D2LAI_DATA) to the folder that holds {path.name}.") from None
    finally:
        part.unlink(missing_ok=True)


def _bar(total: int | None, name: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=name, unit="B", unit_scale=True, leave=False,
                disable=not sys.stderr.isatty())


def extract(path: str | os.PathLike, folder: str | os.PathLike | None = None) -> Path:
    """Unpack a zip or tar file into `folder` (default: beside it); returns that folder.

    No member may land outside `folder` (absolute names, `..`, links are refused), and the
    members are unpacked into a temporary folder first, then moved into place: a corrupt
    archive leaves nothing behind.
    """
    path = Path(path)
    target = Path(folder) if folder is not None else path.parent
    target.mkdir(parents=True, exist_ok=True)
    tmp = target / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.extract"
    try:
        if path.suffix == ".zip":
            _unzip(path, tmp)
        elif path.name.endswith((".tar", ".tar.gz", ".tgz")):
            _untar(path, tmp)
        else:
            raise ValueError(f"extract takes .zip, .tar, .tar.gz or .tgz files, got {path.name}")
        for entry in tmp.iterdir():
            dest = target / entry.name
            if not dest.exists():
                os.replace(entry, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _inside(root: Path, name: str, archive: Path) -> Path:
    dest = (root / name).resolve()
    if not dest.is_relative_to(root.resolve()):
        raise ValueError(f"{archive} holds a member {name!r} that would be written outside the "
                         f"folder it is unpacked into: refusing to unpack it")
    return dest


def _unzip(path: Path, tmp: Path) -> None:
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
            if bad is not None:
                raise zipfile.BadZipFile(f"member {bad} is damaged")
            for member in z.infolist():
                _inside(tmp, member.filename, path)
            z.extractall(tmp)
    except (zipfile.BadZipFile, EOFError, OSError) as err:
        if isinstance(err, PermissionError):
            raise
        raise ValueError(f"{path} is not a whole zip file ({err}). Delete it and download it "
                         f"again.") from None


def _untar(path: Path, tmp: Path) -> None:
    try:
        with tarfile.open(path) as t:
            for member in t.getmembers():
                _inside(tmp, member.name, path)
                if not (member.isfile() or member.isdir()):
                    raise ValueError(f"{path} holds {member.name!r}, which is not a plain file "
                                     f"or folder: refusing to unpack it")
            t.extractall(tmp)
    except (tarfile.TarError, EOFError) as err:
        raise ValueError(f"{path} is not a whole tar file ({err}). Delete it and download it "
                         f"again.") from None


def download_extract(name: str, folder: str | None = None,
                     root: str | os.PathLike | None = None) -> Path:
    """Download a zip or tar data set and unpack it beside itself; the folder it unpacks to
    (`folder`, else the archive's name without extension)."""
    path = download(name, root=root)
    base = path.name.split(".")[0]
    data_dir = path.parent / (folder or base)
    if not data_dir.exists():
        extract(path)
    if not data_dir.exists():
        raise FileNotFoundError(f"{path} unpacked, but holds no {data_dir.name}/ folder: is it "
                                f"the book's file?")
    return data_dir
