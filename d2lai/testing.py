"""Small generated stand-ins for the book's data sets, in their real file layouts: for tests,
benchmarks and quick runs on machines without the real files."""

from __future__ import annotations

import gzip
import os
import random
import re
import struct
import textwrap
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["write_idx", "write_fake_mnist", "write_fake_fashion_mnist", "write_fake_time_machine",
           "write_fake_fra_eng", "write_fake_airfoil", "write_fake_house_prices",
           "write_fake_pokemon"]


def write_idx(path: str | os.PathLike, array) -> None:
    """Write a uint8 array as an IDX file (the format of the MNIST files); gzipped if the name
    ends in .gz."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = 0x0800 + array.ndim
    f = gzip.open(path, "wb", compresslevel=6) if str(path).endswith(".gz") else open(path, "wb")
    with f:
        f.write(struct.pack(f">{1 + array.ndim}I", magic, *array.shape))
        f.write(array.tobytes())


def write_fake_mnist(root: str | os.PathLike, name: str = "FashionMNIST", num_train: int = 600,
                     num_val: int = 200, seed: int = 0, gz: bool = False) -> Path:
    """Write a small learnable stand-in for MNIST or Fashion-MNIST under root/NAME/raw/.

    Class c is a bright band at rows 2c+4..2c+6 over noise, so a LeNet learns it in an epoch or
    two. With `gz=True` only the .gz files are written (as downloaded, before unpacking).
    For tests and benchmarks on machines without the real files; returns the raw folder.
    """
    if name not in ("FashionMNIST", "MNIST"):
        raise ValueError(f"name must be 'FashionMNIST' or 'MNIST', got {name!r}")
    rng = np.random.default_rng(seed)
    raw = Path(root) / name / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    for split, n in (("train", num_train), ("t10k", num_val)):
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        images = rng.integers(0, 100, size=(n, 28, 28), dtype=np.uint8)
        for c in range(10):
            images[labels == c, 2 * c + 4:2 * c + 7, 4:24] = 255
        write_idx(raw / f"{split}-images-idx3-ubyte{ext}", images)
        write_idx(raw / f"{split}-labels-idx1-ubyte{ext}", labels)
    return raw


def write_fake_fashion_mnist(root: str | os.PathLike, num_train: int = 600, num_val: int = 200,
                             seed: int = 0, gz: bool = False) -> Path:
    """`write_fake_mnist` for Fashion-MNIST (root/FashionMNIST/raw/)."""
    return write_fake_mnist(root, "FashionMNIST", num_train, num_val, seed, gz)


_TM_SUBJECTS = ["the time traveller", "the psychologist", "the medical man", "filby", "weena",
                "the provincial mayor", "the very young man", "i"]
_TM_VERBS = ["saw", "found", "watched", "touched", "remembered", "followed"]
_TM_OBJECTS = ["the machine", "the lamp", "the white sphinx", "the little people", "the fire",
               "the green porcelain", "the morlocks", "the lever"]
_TM_ENDINGS = ["", " in the dark", " at the laboratory", " upon the lawn", " for a time",
               " with some surprise"]
_ROMAN = ["I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII"]


def write_fake_time_machine(root: str | os.PathLike, num_chars: int = 20000,
                            seed: int = 0) -> Path:
    """Write a stand-in for The Time Machine as root/timemachine.txt, in the book file's layout
    (a title line, Roman chapter numbers, paragraphs wrapped at 70 columns).

    Its sentences come from a small grammar ("The time traveller saw the lamp in the dark."),
    so a character model learns them fast; the text has at least `num_chars` characters once
    preprocessed (letters and single spaces), enough for TimeMachine's default 10000 + 5000
    windows. Returns the file's path.
    """
    rng = random.Random(seed)
    parts = ["The Time Machine, by H. G. Wells [1898]\n\n\n\n"]
    chapter, size = 0, 0
    while size < num_chars:
        if size >= chapter * 4000:
            parts.append(f"\n{_ROMAN[chapter % len(_ROMAN)]}\n\n")
            chapter += 1
        sentences = []
        for _ in range(rng.randint(3, 6)):
            words = (f"{rng.choice(_TM_SUBJECTS)} {rng.choice(_TM_VERBS)} "
                     f"{rng.choice(_TM_OBJECTS)}{rng.choice(_TM_ENDINGS)}")
            sentences.append(words[0].upper() + words[1:] + rng.choice([".", ".", ".", "!"]))
            size += len(words) + 1
        parts.append(textwrap.fill(" ".join(sentences), 70) + "\n\n")
    text = "\n".join(parts)
    assert len(re.sub("[^A-Za-z]+", " ", text)) >= num_chars
    path = Path(root) / "timemachine.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


_FR_SUBJECTS = [("i", "je", 0), ("you", "tu", 1), ("he", "il", 2), ("she", "elle", 2),
                ("we", "nous", 3), ("they", "ils", 4), ("the boy", "le garçon", 2),
                ("the girl", "la fille", 2)]
_FR_VERBS = [("see", "vois vois voit voyons voient"),
             ("eat", "mange manges mange mangeons mangent"),
             ("want", "veux veux veut voulons veulent"),
             ("take", "prends prends prend prenons prennent"),
             ("find", "trouve trouves trouve trouvons trouvent")]
_FR_OBJECTS = [("the cat", "le chat"), ("the dog", "le chien"), ("the apple", "la pomme"),
               ("the bread", "le pain"), ("the house", "la maison"), ("the car", "la voiture"),
               ("the book", "le livre"), ("the fish", "le poisson"), ("the cake", "le gâteau"),
               ("the tea", "le thé")]
_FR_SHORT = [("Go.", "Va !"), ("Hi.", "Salut !"), ("Run!", "Cours !"), ("Wow!", "Ça alors !"),
             ("Stop!", "Arrête !"), ("Wait!", "Attends !"), ("Help!", "À l'aide !"),
             ("Thanks.", "Merci."), ("Come in.", "Entre."), ("Be calm.", "Sois calme !")]


def write_fake_fra_eng(root: str | os.PathLike, num_pairs: int | None = None,
                       seed: int = 0) -> Path:
    """Write a stand-in for the book's English-French pairs as root/fra-eng.zip holding
    fra-eng/fra.txt: 'English<TAB>French' lines, short exclamations first as in the real file,
    a narrow no-break space before French '!' (as the real file has).

    The pairs follow a small word-for-word grammar ("I see the cat." / "Je vois le chat.", and
    "... do not ..." / "ne ... pas"), so a small encoder-decoder learns them; each word comes
    back many times (the vocabularies keep words seen twice). `num_pairs` (default all, 810)
    takes the first ones. Returns the zip's path.
    """
    rng = random.Random(seed)
    pairs = []
    for (en_s, fr_s, person) in _FR_SUBJECTS:
        for en_v, forms in _FR_VERBS:
            fr_v = forms.split()[person]
            third = person == 2
            for en_o, fr_o in _FR_OBJECTS:
                en_verb = en_v + ("s" if third else "")
                pairs.append((f"{en_s} {en_verb} {en_o}.", f"{fr_s} {fr_v} {fr_o}."))
                do = "does" if third else "do"
                pairs.append((f"{en_s} {do} not {en_v} {en_o}.", f"{fr_s} ne {fr_v} pas {fr_o}."))
    rng.shuffle(pairs)
    pairs = _FR_SHORT + [(en[0].upper() + en[1:], fr[0].upper() + fr[1:]) for en, fr in pairs]
    if num_pairs is not None:
        if not 0 < num_pairs <= len(pairs):
            raise ValueError(f"num_pairs must be from 1 to {len(pairs)}, got {num_pairs}")
        pairs = pairs[:num_pairs]
    text = "".join(f"{en}\t{fr.replace(' !', chr(0x202F) + '!')}\n" for en, fr in pairs)
    path = Path(root) / "fra-eng.zip"
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("fra-eng/fra.txt", text.encode("utf-8"))
    return path


def write_fake_airfoil(root: str | os.PathLike, num_rows: int = 1503, seed: int = 0) -> Path:
    """Write a stand-in for the optimisation chapter's airfoil self-noise data as
    root/airfoil_self_noise.dat: tab-separated rows of frequency, angle, chord length, velocity
    and thickness, then the sound pressure, which is linear in them plus noise. Returns the
    file's path."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.choice([200, 500, 1000, 2000, 4000, 8000], num_rows),
                         rng.uniform(0, 22, num_rows), rng.choice([0.0254, 0.1, 0.3], num_rows),
                         rng.choice([31.7, 39.6, 55.5, 71.3], num_rows),
                         rng.uniform(0.0004, 0.06, num_rows)])
    z = (X - X.mean(0)) / X.std(0)
    y = 125 + z @ np.array([-4.0, -1.5, -3.0, 1.8, -2.2]) + rng.normal(0, 2, num_rows)
    path = Path(root) / "airfoil_self_noise.dat"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, np.column_stack([X, y]), delimiter="\t", fmt="%.6g")
    return path


def write_fake_house_prices(root: str | os.PathLike, num_train: int = 1460, num_test: int = 1459,
                            seed: int = 0) -> tuple[Path, Path]:
    """Write stand-ins for the Kaggle house-price files as root/kaggle_house_pred_train.csv and
    root/kaggle_house_pred_test.csv, in their layout: `Id` first, numeric and text features
    (some missing, written `NA`), `SalePrice` last in the training file only. A dozen of the
    real 79 features; the price grows with the living area and the quality. Returns the paths."""
    rng = random.Random(seed)
    header = ["Id", "MSSubClass", "MSZoning", "LotFrontage", "LotArea", "Street",
              "OverallQual", "YearBuilt", "GrLivArea", "GarageType", "SaleCondition"]
    paths = []
    for name, start, n, priced in (("train", 1, num_train, True),
                                   ("test", num_train + 1, num_test, False)):
        lines = [",".join(header + ["SalePrice"] * priced)]
        for i in range(start, start + n):
            area, quality = rng.randint(500, 3500), rng.randint(1, 10)
            row = [i, rng.choice([20, 50, 60, 120]), rng.choice(["RL", "RM", "FV", "RH"]),
                   "NA" if rng.random() < 0.15 else rng.randint(30, 120),
                   rng.randint(2000, 20000), rng.choice(["Pave", "Pave", "Grvl"]), quality,
                   rng.randint(1880, 2010), area,
                   "NA" if rng.random() < 0.05 else rng.choice(["Attchd", "Detchd", "BuiltIn"]),
                   rng.choice(["Normal", "Normal", "Abnorml", "Partial"])]
            if priced:
                row.append(round((40 * area + 15000 * quality) * rng.uniform(0.85, 1.15)))
            lines.append(",".join(map(str, row)))
        path = Path(root) / f"kaggle_house_pred_{name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        paths.append(path)
    return paths[0], paths[1]


def write_fake_pokemon(root: str | os.PathLike, num_classes: int = 4, per_class: int = 8,
                       size: int = 96, seed: int = 0) -> Path:
    """Write a stand-in for the DCGAN section's Pokemon sprites as root/pokemon.zip holding
    pokemon/<number>/<number>-<k>.png, one folder per Pokemon as `ImageFolder` reads it: RGB
    sprites of `size` x `size`, a coloured ellipse on white, each Pokemon its own colour.
    Returns the zip's path."""
    import io

    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    path = Path(root) / "pokemon.zip"
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for c in range(num_classes):
            color = tuple(int(v) for v in rng.integers(0, 200, 3))
            for k in range(per_class):
                image = Image.new("RGB", (size, size), "white")
                x0, y0 = rng.integers(size // 8, size // 3, 2)
                x1, y1 = rng.integers(2 * size // 3, size - size // 8, 2)
                ImageDraw.Draw(image).ellipse((int(x0), int(y0), int(x1), int(y1)), fill=color)
                buffer = io.BytesIO()
                image.save(buffer, format="PNG")
                z.writestr(f"pokemon/{c}/{c}-{k}.png", buffer.getvalue())
    return path
