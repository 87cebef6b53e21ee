"""Small generated stand-ins for the book's data sets, in their real file layouts: for tests,
benchmarks and quick runs on machines without the real files."""

from __future__ import annotations

import gzip
import itertools
import math
import os
import random
import re
import struct
import tarfile
import textwrap
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["write_idx", "write_fake_mnist", "write_fake_fashion_mnist", "write_fake_time_machine",
           "write_fake_fra_eng", "write_fake_airfoil", "write_fake_house_prices",
           "write_fake_pokemon", "write_fake_hotdog", "write_fake_bananas", "write_fake_voc2012",
           "write_fake_cifar10_tiny", "write_fake_dog_tiny", "write_fake_pretrained",
           "write_fake_ptb", "write_fake_wikitext2", "write_fake_embedding", "write_fake_imdb",
           "write_fake_snli", "write_fake_bert", "write_fake_nlp_data"]


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
# --- the computer-vision chapter's data sets ------------------------------------------------------

def _shape_image(rng: np.random.Generator, height: int, width: int, background, color,
                 box=None) -> tuple[np.ndarray, np.ndarray]:
    """An RGB uint8 image: a smooth background of colour `background` with noise, and an
    ellipse of colour `color` filling `box` (x1, y1, x2, y2; default: a random box). Also
    the ellipse's mask (H, W) of bools."""
    yy, xx = np.mgrid[0:height, 0:width]
    shade = (0.8 + 0.4 * xx / max(width - 1, 1))[..., None]
    noise = rng.normal(0, 12, (height // 4 + 1, width // 4 + 1, 3)).repeat(4, 0).repeat(4, 1)
    img = np.asarray(background, np.float32) * shade + noise[:height, :width]  # 4x4 speckles
    if box is None:
        w, h = rng.integers(width // 4, width // 2 + 1), rng.integers(height // 4, height // 2 + 1)
        x1, y1 = rng.integers(0, width - w + 1), rng.integers(0, height - h + 1)
        box = (x1, y1, x1 + w, y1 + h)
    x1, y1, x2, y2 = box
    cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, max((x2 - x1) / 2, 1), max((y2 - y1) / 2, 1)
    mask = ((xx + 0.5 - cx) / rx) ** 2 + ((yy + 0.5 - cy) / ry) ** 2 <= 1
    img[mask] = np.asarray(color, np.float32) + noise[:height, :width][::-1, ::-1][mask]
    return np.clip(img, 0, 255).astype(np.uint8), mask


def _png_bytes(array: np.ndarray, palette=None, fmt: str = "PNG") -> bytes:
    import io

    from PIL import Image

    img = Image.fromarray(array, mode="P" if palette is not None else None)
    if palette is not None:
        img.putpalette(palette)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def _zip(path: Path, files: dict[str, bytes]) -> Path:
    """Write `files` (name in the archive: contents) as the zip `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return path


def write_fake_hotdog(root: str | os.PathLike, num_train: int = 20, num_test: int = 10,
                      seed: int = 0) -> Path:
    """Write a stand-in for the fine-tuning section's hot-dog data as root/hotdog.zip, in its
    layout: hotdog/{train,test}/{hotdog,not-hotdog}/K.png, `num_train` and `num_test` images of
    each class, of varied sizes. A hot dog is a long red-brown ellipse on a pale background; the
    other class, a round green or blue blob. Returns the zip's path."""
    rng = np.random.default_rng(seed)
    files, k = {}, 0
    for split, n in (("train", num_train), ("test", num_test)):
        for cls in ("hotdog", "not-hotdog"):
            for _ in range(n):
                h, w = int(rng.integers(96, 161)), int(rng.integers(96, 161))
                if cls == "hotdog":
                    box = (w // 8, h // 3, w - w // 8, h - h // 3)
                    color = (170 + rng.integers(-20, 20), 70, 40)
                else:
                    s = min(h, w) // 3
                    box = (w // 2 - s, h // 2 - s, w // 2 + s, h // 2 + s)
                    color = (int(rng.integers(0, 120)), int(rng.integers(100, 256)),
                             int(rng.integers(100, 256)))
                img, _ = _shape_image(rng, h, w, (230, 225, 210), color, box)
                files[f"hotdog/{split}/{cls}/{k}.png"] = _png_bytes(img)
                k += 1
    return _zip(Path(root) / "hotdog.zip", files)


def write_fake_bananas(root: str | os.PathLike, num_train: int = 100, num_val: int = 10,
                       seed: int = 0) -> Path:
    """Write a stand-in for the banana-detection data as root/banana-detection.zip, in its
    layout: banana-detection/bananas_{train,val}/images/K.png (256 x 256 RGB) and label.csv
    (img_name,label,xmin,ymin,xmax,ymax, pixels; label 0). Each image holds one yellow banana
    (an ellipse) in its box on a random background. Returns the zip's path."""
    rng = np.random.default_rng(seed)
    files = {}
    for split, n in (("bananas_train", num_train), ("bananas_val", num_val)):
        rows = ["img_name,label,xmin,ymin,xmax,ymax"]
        for k in range(n):
            w, h = int(rng.integers(30, 90)), int(rng.integers(30, 90))
            x1, y1 = int(rng.integers(0, 256 - w)), int(rng.integers(0, 256 - h))
            background = tuple(int(c) for c in rng.integers(30, 160, 3))
            img, _ = _shape_image(rng, 256, 256, background, (235, 210, 50),
                                  (x1, y1, x1 + w, y1 + h))
            files[f"banana-detection/{split}/images/{k}.png"] = _png_bytes(img)
            rows.append(f"{k}.png,0,{x1},{y1},{x1 + w},{y1 + h}")
        files[f"banana-detection/{split}/label.csv"] = ("\n".join(rows) + "\n").encode()
    return _zip(Path(root) / "banana-detection.zip", files)


_VOC_PALETTE = [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128], [128, 0, 128],
                [0, 128, 128], [128, 128, 128], [64, 0, 0], [192, 0, 0], [64, 128, 0],
                [192, 128, 0], [64, 0, 128], [192, 0, 128], [64, 128, 128], [192, 128, 128],
                [0, 64, 0], [128, 64, 0], [0, 192, 0], [128, 192, 0], [0, 64, 128]]


def write_fake_voc2012(root: str | os.PathLike, num_train: int = 88, num_val: int = 44,
                       seed: int = 0) -> Path:
    """Write a stand-in for Pascal VOC2012's segmentation data as
    root/VOCtrainval_11-May-2012.tar, in its layout: VOCdevkit/VOC2012/ImageSets/Segmentation/
    {train,val}.txt naming the images, JPEGImages/NAME.jpg and SegmentationClass/NAME.png (a
    palette PNG: index 0 background, 1-20 the classes, 255 the outline, VOC's colours).

    Most images are landscape, 320-375 x 480-500 as most of VOC's; every fourth is portrait
    (500 x 333), too narrow for the book's 320 x 480 crops (as about a quarter of VOC's are).
    Each holds one to three objects painted near their class's colour, so a segmentation net
    can learn them. Returns the tar's path."""
    rng = np.random.default_rng(seed)
    palette = [c for rgb in _VOC_PALETTE for c in rgb] + [0, 0, 0] * (255 - 21) + [224, 224, 192]
    base = "VOCdevkit/VOC2012"
    files: dict[str, bytes] = {}
    for split, n, year in (("train", num_train, 2007), ("val", num_val, 2008)):
        names = []
        for k in range(n):
            name = f"{year}_{k:06d}"
            h, w = (500, 333) if k % 4 == 3 else (int(rng.integers(320, 376)),
                                                    int(rng.integers(480, 501)))
            img, _ = _shape_image(rng, h, w, (110, 120, 110), (110, 120, 110), (0, 0, 1, 1))
            label = np.zeros((h, w), np.uint8)
            for _ in range(int(rng.integers(1, 4))):
                cls = int(rng.integers(1, 21))
                color = [int(0.7 * c + 40) for c in _VOC_PALETTE[cls]]
                obj, mask = _shape_image(rng, h, w, (0, 0, 0), color)
                edge = mask & ~(np.roll(mask, 2, 0) & np.roll(mask, -2, 0) & np.roll(mask, 2, 1)
                                & np.roll(mask, -2, 1))
                img[mask], label[mask], label[edge] = obj[mask], cls, 255
            files[f"{base}/JPEGImages/{name}.jpg"] = _png_bytes(img, fmt="JPEG")
            files[f"{base}/SegmentationClass/{name}.png"] = _png_bytes(label, palette)
            names.append(name)
        files[f"{base}/ImageSets/Segmentation/{split}.txt"] = ("\n".join(names) + "\n").encode()
    path = Path(root) / "VOCtrainval_11-May-2012.tar"
    path.parent.mkdir(parents=True, exist_ok=True)
    import io

    with tarfile.open(path, "w") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return path


_CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
            "truck"]


def write_fake_cifar10_tiny(root: str | os.PathLike, num_train: int = 400, num_test: int = 5,
                            seed: int = 0) -> Path:
    """Write a stand-in for the Kaggle CIFAR-10 sample as root/kaggle_cifar10_tiny.zip, in its
    layout: kaggle_cifar10_tiny/trainLabels.csv (id,label), train/ID.png and test/ID.png,
    32 x 32 RGB, ids from 1. The ten classes come equally often, each a blob of its own colour
    and place. Returns the zip's path."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(num_train) % 10)
    files, rows = {}, ["id,label"]
    colors = rng.integers(0, 256, (10, 3))
    for split, n in (("train", num_train), ("test", num_test)):
        for i in range(1, n + 1):
            c = int(labels[i - 1]) if split == "train" else int(rng.integers(0, 10))
            x, y = 4 + 6 * (c % 4), 4 + 8 * (c // 4)
            img, _ = _shape_image(rng, 32, 32, (128, 128, 128), colors[c], (x, y, x + 12, y + 12))
            files[f"kaggle_cifar10_tiny/{split}/{i}.png"] = _png_bytes(img)
            if split == "train":
                rows.append(f"{i},{_CIFAR10[c]}")
    files["kaggle_cifar10_tiny/trainLabels.csv"] = ("\n".join(rows) + "\n").encode()
    return _zip(Path(root) / "kaggle_cifar10_tiny.zip", files)


_DOG_BREEDS = ["affenpinscher", "afghan_hound", "african_hunting_dog", "airedale",
               "american_staffordshire_terrier", "appenzeller", "australian_terrier",
               "basenji", "basset", "beagle", "bedlington_terrier", "bernese_mountain_dog",
               "black-and-tan_coonhound", "blenheim_spaniel", "bloodhound", "bluetick",
               "border_collie", "border_terrier", "borzoi", "boston_bull",
               "bouvier_des_flandres", "boxer", "brabancon_griffon", "briard",
               "brittany_spaniel", "bull_mastiff", "cairn", "cardigan",
               "chesapeake_bay_retriever", "chihuahua", "chow", "clumber", "cocker_spaniel",
               "collie", "curly-coated_retriever", "dandie_dinmont", "dhole", "dingo",
               "doberman", "english_foxhound"]


def write_fake_dog_tiny(root: str | os.PathLike, num_breeds: int = 34, per_breed: int = 6,
                        num_test: int = 10, seed: int = 0) -> Path:
    """Write a stand-in for the Kaggle dog-breed sample as root/kaggle_dog_tiny.zip, in its
    layout: kaggle_dog_tiny/labels.csv (id,breed), train/ID.jpg and test/ID.jpg with 32-digit
    hexadecimal ids; `per_breed` images of each of the first `num_breeds` (at most 40) of the
    real breed names, of varied sizes. Returns the zip's path."""
    if not 1 <= num_breeds <= len(_DOG_BREEDS):
        raise ValueError(f"num_breeds must be from 1 to {len(_DOG_BREEDS)}, got {num_breeds}")
    rng = np.random.default_rng(seed)
    files, rows = {}, ["id,breed"]
    colors = rng.integers(0, 256, (num_breeds, 3))
    for split, n in (("train", num_breeds * per_breed), ("test", num_test)):
        for k in range(n):
            ident = "".join(rng.choice(list("0123456789abcdef"), 32))
            b = k % num_breeds if split == "train" else int(rng.integers(0, num_breeds))
            h, w = int(rng.integers(200, 321)), int(rng.integers(200, 321))
            img, _ = _shape_image(rng, h, w, (90, 140, 90), colors[b])
            files[f"kaggle_dog_tiny/{split}/{ident}.jpg"] = _png_bytes(img, fmt="JPEG")
            if split == "train":
                rows.append(f"{ident},{_DOG_BREEDS[b]}")
    files["kaggle_dog_tiny/labels.csv"] = ("\n".join(rows) + "\n").encode()
    return _zip(Path(root) / "kaggle_dog_tiny.zip", files)


def _pooled(t, pool_size: int = 1 << 16):
    """`t`'s values drawn from a pool of at most `pool_size` of them: a strided view of the
    pool (the outer rows shifted copies), so that torch.save writes only the pool."""
    import torch

    if t.numel() <= pool_size or t.ndim < 2:
        return t.clone()
    block = math.prod(t.shape[1:])
    step = max(1, (pool_size - block) // (t.shape[0] - 1))
    pool = t.flatten()[:(t.shape[0] - 1) * step + block].clone()
    inner = torch.empty(t.shape[1:]).stride()
    return pool.as_strided(t.shape, (step, *inner))


def write_fake_pretrained(torch_home: str | os.PathLike,
                          archs=("resnet18", "resnet34", "vgg19"), seed: int = 0) -> list[Path]:
    """Write stand-ins for torchvision's ImageNet weights of `archs` where torch.hub looks for
    them, TORCH_HOME/hub/checkpoints/NAME-HASH.pth, so that `torchvision.models.resnet18(
    pretrained=True)` (or `weights=...`) loads them offline. The weights are freshly
    initialised, not trained; each large tensor is a strided view of 65536 values, so the files
    stay small. Returns the paths written."""
    import torch
    import torchvision

    paths = []
    for arch in archs:
        builder = getattr(torchvision.models, arch)
        weights = torchvision.models.get_model_weights(builder).IMAGENET1K_V1
        torch.manual_seed(seed)
        state = {k: _pooled(v) for k, v in builder().state_dict().items()}
        path = Path(torch_home) / "hub" / "checkpoints" / weights.url.rsplit("/", 1)[-1]
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, path)
        paths.append(path)
    return paths


# --- the natural language processing chapters ---------------------------------------------------

_NOUNS = ["man", "woman", "boy", "girl", "dog", "cat", "child", "baby", "people", "player",
          "guitar", "ball", "car", "street", "beach", "park", "house", "water", "food", "book",
          "company", "market", "chip", "computer", "stock", "price", "film", "movie", "story",
          "actor", "city", "year", "son", "daughter"]
_VERBS = ["play", "walk", "run", "eat", "read", "watch", "hold", "ride", "sell", "buy", "make"]
_GOOD = ["great", "wonderful", "excellent", "beautiful", "moving", "brilliant", "fun", "best",
         "good", "lovely"]
_BAD = ["terrible", "boring", "awful", "bad", "worst", "dull", "poor", "stupid", "waste",
        "weak"]
_FILLER = ["the", "a", "and", "of", "to", "is", "was", "it", "this", "that", "in", "with", "but",
           "for", "as", "on", "very", "really", "i", "we", "they", "its", "all", "some"]
# groups (a, b, c, d) with d - c = b - a in the stand-in embeddings, and near neighbours
_ANALOGIES = [("man", "woman", "son", "daughter"), ("beijing", "china", "tokyo", "japan"),
              ("bad", "worst", "big", "biggest"), ("do", "did", "go", "went")]
_NEIGHBOURS = {"chip": ["chips", "intel", "microprocessor"], "baby": ["babies", "infant", "boy"],
               "beautiful": ["lovely", "gorgeous", "wonderful"]}


def _nlp_words() -> list[str]:
    """Every word the NLP stand-ins write, each once, in a fixed order."""
    words = _FILLER + _NOUNS + _VERBS + [v + "ing" for v in _VERBS] + _GOOD + _BAD + ["."]
    for group in _ANALOGIES:
        words += group
    for w, near in _NEIGHBOURS.items():
        words += [w, *near]
    return list(dict.fromkeys(words))


def _made_up_words(n: int) -> list[str]:
    """`n` distinct made-up words of two to four syllables ('kalo', 'renvosha', ...)."""
    syl = ["ka", "lo", "mi", "ren", "tas", "vo", "pel", "dun", "sha", "gri", "bo", "zet"]
    words = ("".join(p) for k in (2, 3, 4) for p in itertools.product(syl, repeat=k))
    return list(itertools.islice(words, n))


def _hub_file(name: str) -> str:
    from .data.download import DATA_HUB

    return DATA_HUB[name][0].rsplit("/", 1)[-1]


def write_fake_ptb(root: str | os.PathLike, num_lines: int = 5000, seed: int = 0) -> Path:
    """Write a stand-in for the Penn Tree Bank as root/ptb.zip holding ptb/ptb.train.txt (and
    ptb.valid.txt, ptb.test.txt): lower-case sentences, one a line, as ' w1 w2 ... ' with
    numbers as 'N' and rare words as '<unk>', as the real files have them. Words follow Zipf's
    law over about 700 words (the NLP stand-ins' words, then made-up ones), so subsampling
    drops most of the frequent ones and `load_data_ptb`'s vocabulary (10 times or more) keeps
    a few hundred. Returns the zip's path."""
    rng = random.Random(seed)
    words = _FILLER + ["N", "<unk>"] + _nlp_words() + _made_up_words(720)
    words = list(dict.fromkeys(words))
    weights = [1 / (k + 1) for k in range(len(words))]

    def sentence():
        return " " + " ".join(rng.choices(words, weights, k=rng.randint(4, 25))) + " "

    path = Path(root) / "ptb.zip"
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for split, n in (("train", num_lines), ("valid", num_lines // 10),
                         ("test", num_lines // 10)):
            z.writestr(f"ptb/ptb.{split}.txt", "\n".join(sentence() for _ in range(n)) + "\n")
    return path


def write_fake_wikitext2(root: str | os.PathLike, num_paragraphs: int = 400,
                         seed: int = 0) -> Path:
    """Write a stand-in for WikiText-2 as root/wikitext-2-v1.zip holding
    wikitext-2/wiki.{train,valid,test}.tokens in the real layout: ' = Title = ' heading lines,
    blank lines, and paragraphs of tokenised sentences joined by ' . '. Returns the zip's
    path."""
    rng = random.Random(seed)

    def sentence():
        return " ".join([rng.choice(_FILLER[:6]), rng.choice(_NOUNS), rng.choice(_VERBS) + "s",
                         rng.choice(_FILLER[:3]), rng.choice(_GOOD + _BAD), rng.choice(_NOUNS)]
                        + [rng.choice(_FILLER) for _ in range(rng.randint(0, 6))])

    def split(n):
        lines = []
        for i in range(n):
            if i % 5 == 0:
                lines += [" \n", f" = {rng.choice(_NOUNS).title()} {i // 5} = \n", " \n"]
            lines.append(" " + " . ".join(sentence() for _ in range(rng.randint(2, 6))) + " . \n")
        return "".join(lines)

    path = Path(root) / _hub_file("wikitext-2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, n in (("train", num_paragraphs), ("valid", num_paragraphs // 10),
                        ("test", num_paragraphs // 10)):
            z.writestr(f"wikitext-2/wiki.{name}.tokens", split(n))
    return path


def write_fake_embedding(root: str | os.PathLike, name: str = "glove.6b.50d",
                         num_words: int = 3400, seed: int = 0) -> Path:
    """Write a stand-in for pretrained word vectors as the `DATA_HUB` archive `name`
    ('glove.6b.50d', 'glove.6b.100d', 'glove.42b.300d', 'wiki.en') holding FOLDER/vec.txt,
    'word x1 ... xd' a line (fastText's 'wiki.en' with its 'count size' first line). The
    vectors cover the words of the other NLP stand-ins; man : woman = son : daughter and
    three more analogies hold, and 'chip', 'baby', 'beautiful' have near neighbours. Made-up
    words fill it up to `num_words`, 'beautiful' at index 3367 as in GloVe (the book looks it
    up there) when there are that many. Returns the zip's path."""
    dims = {"glove.6b.50d": 50, "glove.6b.100d": 100, "glove.42b.300d": 300, "wiki.en": 300}
    if name not in dims:
        raise ValueError(f"name must be one of {', '.join(dims)}, got {name!r}")
    rng = np.random.default_rng(seed)
    words, dim = _nlp_words(), dims[name]
    words += _made_up_words(max(0, num_words - len(words)))
    if len(words) >= 3367:  # index 3367 after '<unk>', as in GloVe 6B
        words.remove("beautiful")
        words.insert(3366, "beautiful")
    vecs = {w: rng.normal(0, 1, dim) for w in words}
    for a, b, c, d in _ANALOGIES:
        vecs[d] = vecs[c] + vecs[b] - vecs[a] + rng.normal(0, 0.05, dim)
    for w, near in _NEIGHBOURS.items():
        for v in near:
            vecs[v] = vecs[w] + rng.normal(0, 0.3, dim)
    lines = [f"{w} " + " ".join(f"{x:.5f}" for x in vecs[w]) for w in words]
    if name == "wiki.en":
        lines.insert(0, f"{len(words)} {dim}")
    file = _hub_file(name)
    path = Path(root) / file
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"{file[:-len('.zip')]}/vec.txt", "\n".join(lines) + "\n")
    return path


def write_fake_imdb(root: str | os.PathLike, num_train: int = 250, num_test: int = 250,
                    seed: int = 0) -> Path:
    """Write a stand-in for the IMDb reviews as root/aclImdb_v1.tar.gz holding
    aclImdb/{train,test}/{pos,neg}/ID_RATING.txt, half of each split positive. A positive
    review mixes filler words with praise, a negative one with blame, so a small model learns
    them; lengths vary from 20 to 300 words. Returns the archive's path."""
    import io

    rng = random.Random(seed)

    def review(positive):
        n = rng.randint(20, 300)
        mood = _GOOD if positive else _BAD
        words = [rng.choice(mood) if rng.random() < 0.15 else
                 rng.choice(_FILLER + _NOUNS) for _ in range(n)]
        return "This movie " + " ".join(words) + ".<br /><br />" + rng.choice(_FILLER) + "."

    path = Path(root) / "aclImdb_v1.tar.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as t:
        for split, n in (("train", num_train), ("test", num_test)):
            for i in range(n):
                positive = i % 2 == 0
                rating = rng.randint(7, 10) if positive else rng.randint(1, 4)
                data = review(positive).encode("utf-8")
                info = tarfile.TarInfo(f"aclImdb/{split}/{'pos' if positive else 'neg'}/"
                                       f"{i // 2}_{rating}.txt")
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    return path


_SNLI_HEADER = ("gold_label\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
                "sentence2_parse\tsentence1\tsentence2\tcaptionID\tpairID\tlabel1\tlabel2\t"
                "label3\tlabel4\tlabel5")


def write_fake_snli(root: str | os.PathLike, num_train: int = 2000, num_test: int = 500,
                    seed: int = 0) -> Path:
    """Write a stand-in for SNLI as root/snli_1.0.zip holding snli_1.0/snli_1.0_{train,dev,
    test}.txt: a header line, then tab-separated rows of gold label, the two sentences' binary
    parses ('( ( A man ) ( ( is ( playing ( a guitar ) ) ) . ) )'), other columns as the real
    file has them; a few rows have no gold label ('-'). The hypothesis repeats the premise's
    action (entailment), changes it (contradiction) or adds a purpose (neutral). Returns the
    zip's path."""
    rng = random.Random(seed)

    def parse(subject, verb, obj, tail=()):
        inner = f"( {verb} ( a {obj} ) )"
        for word in reversed(tail):
            inner = f"( {inner} {word} )"
        return f"( ( A {subject} ) ( ( is {inner} ) . ) )"

    def row(pair_id):
        s, v, o = rng.choice(_NOUNS[:9]), rng.choice(_VERBS) + "ing", rng.choice(_NOUNS[9:])
        label = rng.choice(["entailment", "contradiction", "neutral", "entailment",
                            "contradiction", "neutral", "-"])
        if label == "contradiction":
            h = parse(s, rng.choice([x + "ing" for x in _VERBS if x + "ing" != v]), o)
        elif label == "neutral":
            h = parse(s, v, o, ("for", "a", rng.choice(_NOUNS[:9])))
        else:
            h = parse(s, v, o)
        p = parse(s, v, o, ("in", "the", rng.choice(["street", "park", "beach"])))

        def plain(t):
            return re.sub(r"\s{2,}", " ", t.replace("(", "").replace(")", "")).strip()

        gold = [label if label != "-" else "neutral"] * 3 + ["entailment", "neutral"]
        return "\t".join([label, p, h, p.replace("( (", "(ROOT (S (NP"), h, plain(p), plain(h),
                          f"{pair_id}.jpg#0", f"{pair_id}.jpg#0r1{label[0]}", *gold])

    path = Path(root) / "snli_1.0.zip"
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for split, n in (("train", num_train), ("dev", num_test), ("test", num_test)):
            rows = [_SNLI_HEADER] + [row(f"{split}{i}") for i in range(n)]
            z.writestr(f"snli_1.0/snli_1.0_{split}.txt", "\n".join(rows) + "\n")
    return path


def write_fake_bert(root: str | os.PathLike, name: str = "bert.small", num_hiddens: int = 256,
                    ffn_num_hiddens: int = 512, num_heads: int = 4, num_blks: int = 2,
                    max_len: int = 512, seed: int = 0) -> Path:
    """Write a stand-in for the book's pretrained BERT as the `DATA_HUB` archive `name`
    ('bert.small' or 'bert.base') holding FOLDER/vocab.json (the tokens, '<unk>', '<pad>',
    '<mask>', '<cls>', '<sep>' and the NLP stand-ins' words) and FOLDER/pretrained.params (the
    state dict of an untrained `d2lai.torch.BERTModel` of these sizes, its lazy layers
    materialised: the sizes the book's section builds, 256 hiddens and 2 blocks for
    'bert.small'). Returns the zip's path."""
    import io
    import json

    import torch

    from .torch.nlp import BERTModel

    if name not in ("bert.small", "bert.base"):
        raise ValueError(f"name must be 'bert.small' or 'bert.base', got {name!r}")
    vocab = ["<unk>", "<pad>", "<mask>", "<cls>", "<sep>"] + _nlp_words()
    torch.manual_seed(seed)
    net = BERTModel(len(vocab), num_hiddens, ffn_num_hiddens, num_heads, num_blks, 0.0,
                    max_len=max_len)
    tokens = torch.zeros(1, 4, dtype=torch.long)
    net(tokens, tokens, torch.tensor([4]), torch.zeros(1, 1, dtype=torch.long))
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    file = _hub_file(name)
    path = Path(root) / file
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"{file[:-len('.zip')]}/vocab.json", json.dumps(vocab))
        z.writestr(f"{file[:-len('.zip')]}/pretrained.params", buffer.getvalue())
    return path


def write_fake_nlp_data(root: str | os.PathLike, seed: int = 0) -> Path:
    """Write every stand-in the NLP chapters load (PTB, WikiText-2, the four embeddings, IMDb,
    SNLI, bert.small) under root; returns root."""
    write_fake_ptb(root, seed=seed)
    write_fake_wikitext2(root, seed=seed)
    for name in ("glove.6b.50d", "glove.6b.100d", "glove.42b.300d", "wiki.en"):
        write_fake_embedding(root, name, seed=seed)
    write_fake_imdb(root, seed=seed)
    write_fake_snli(root, seed=seed)
    write_fake_bert(root, seed=seed)
    return Path(root)
