"""The computer-vision chapter: bounding boxes and their pictures, anchor boxes (generated,
labelled against the ground truth, turned back into predictions and thinned by non-maximum
suppression), the banana-detection and Pascal VOC segmentation data, the Kaggle folders'
reorganisation, and `train_ch13` (the function-style loop of `train_ch6`, on a given loss and
optimiser, over the devices of `try_all_gpus`).

Boxes are rows (x1, y1, x2, y2), upper-left then lower-right corner, or (cx, cy, w, h); IoU
and non-maximum suppression are torchvision's (`torchvision.ops`), which compute the book's.
The data sets come through d2lai's `download` (SHA-1 checked, in the data folder).
"""

from __future__ import annotations

import collections
import csv
import math
import os
import shutil
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from torch import nn
from torchvision import transforms

from ..checks import positive_int
from ..data import download_extract as _download_extract
from .performance import _check_devices
from .tensors import try_all_gpus
from .utils import _train_epochs, accuracy

__all__ = ["Image", "torchvision", "transforms", "box_corner_to_center", "box_center_to_corner",
           "bbox_to_rect", "show_bboxes", "box_iou", "multibox_prior", "assign_anchor_to_bbox",
           "offset_boxes", "offset_inverse", "multibox_target", "nms", "multibox_detection",
           "read_data_bananas", "BananasDataset", "load_data_bananas", "VOC_COLORMAP",
           "VOC_CLASSES", "read_voc_images", "voc_colormap2label", "voc_label_indices",
           "voc_rand_crop", "VOCSegDataset", "load_data_voc", "read_csv_labels", "copyfile",
           "reorg_train_valid", "reorg_test", "get_dataloader_workers", "train_batch_ch13",
           "train_ch13"]


def _boxes(name: str, boxes) -> torch.Tensor:
    """`boxes` as a tensor of rows of four numbers, else a ValueError naming it."""
    boxes = torch.as_tensor(boxes)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name} must be boxes, one row of four numbers each (shape (n, 4)), "
                         f"got shape {tuple(boxes.shape)}")
    return boxes


# --- bounding boxes ------------------------------------------------------------------------------

def box_corner_to_center(boxes: torch.Tensor) -> torch.Tensor:
    """Boxes (x1, y1, x2, y2) as (center x, center y, width, height)."""
    x1, y1, x2, y2 = _boxes("boxes", boxes).unbind(-1)
    return torch.stack(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), dim=-1)


def box_center_to_corner(boxes: torch.Tensor) -> torch.Tensor:
    """Boxes (center x, center y, width, height) as (x1, y1, x2, y2)."""
    cx, cy, w, h = _boxes("boxes", boxes).unbind(-1)
    return torch.stack((cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h), dim=-1)


def bbox_to_rect(bbox, color):
    """A box (x1, y1, x2, y2) as an unfilled matplotlib rectangle of edge colour `color`."""
    from matplotlib.patches import Rectangle

    x1, y1, x2, y2 = (float(v) for v in bbox)
    return Rectangle(xy=(x1, y1), width=x2 - x1, height=y2 - y1, fill=False, edgecolor=color,
                     linewidth=2)


def show_bboxes(axes, bboxes, labels=None, colors=None) -> None:
    """Draw boxes on matplotlib `axes`, the colours cycling through `colors` (default blue,
    green, red, magenta, cyan), each labelled at its upper-left corner by `labels[i]`. A single
    label or colour may be given alone (not in a list)."""
    def as_list(obj):
        return obj if isinstance(obj, (list, tuple)) or obj is None else [obj]

    labels, colors = as_list(labels), as_list(colors) or ["b", "g", "r", "m", "c"]
    for i, bbox in enumerate(bboxes):
        color = colors[i % len(colors)]
        bbox = bbox.detach().cpu() if isinstance(bbox, torch.Tensor) else bbox
        rect = bbox_to_rect(bbox, color)
        axes.add_patch(rect)
        if labels and i < len(labels):
            axes.text(rect.xy[0], rect.xy[1], labels[i], va="center", ha="center", fontsize=9,
                      color="k" if color == "w" else "w", bbox=dict(facecolor=color, lw=0))


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Intersection over union of every box of `boxes1` (n, 4) with every box of `boxes2`
    (m, 4): shape (n, m)."""
    return torchvision.ops.box_iou(_boxes("boxes1", boxes1), _boxes("boxes2", boxes2))


# --- anchor boxes --------------------------------------------------------------------------------

def multibox_prior(data: torch.Tensor, sizes, ratios) -> torch.Tensor:
    """Anchor boxes centred on every pixel of `data` (..., h, w): for each pixel, sizes[k]
    with ratios[0], then sizes[0] with ratios[1:] (len(sizes) + len(ratios) - 1 boxes), in
    coordinates divided by the image's width and height. Shape (1, h * w * boxes, 4), pixel by
    pixel, row by row.

    A box of size s and ratio r is s * sqrt(r) * h / w wide and s / sqrt(r) high (the size a
    fraction of the image's height, the ratio width / height in pixels)."""
    if data.ndim < 2 or not len(sizes) or not len(ratios):
        raise ValueError(f"multibox_prior takes an image-like tensor (..., h, w) and at least one "
                         f"size and one ratio, got shape {tuple(data.shape)}, sizes {sizes}, "
                         f"ratios {ratios}")
    h, w = data.shape[-2:]
    device = data.device
    sizes = torch.as_tensor(sizes, dtype=torch.float32, device=device)
    ratios = torch.as_tensor(ratios, dtype=torch.float32, device=device)
    scale = torch.cat((sizes, sizes[:1].expand(len(ratios) - 1)))         # (boxes,)
    ratio = torch.cat((ratios[:1].expand(len(sizes)), ratios[1:]))       # (boxes,)
    half_w = scale * torch.sqrt(ratio) * h / w / 2
    half_h = scale / torch.sqrt(ratio) / 2
    cy = (torch.arange(h, device=device) + 0.5) * (1.0 / h)
    cx = (torch.arange(w, device=device) + 0.5) * (1.0 / w)
    cy, cx = torch.meshgrid(cy, cx, indexing="ij")                        # (h, w) each
    centers = torch.stack((cx, cy, cx, cy), dim=-1).reshape(-1, 1, 4)    # (h * w, 1, 4)
    offsets = torch.stack((-half_w, -half_h, half_w, half_h), dim=-1)    # (boxes, 4)
    return (centers + offsets).reshape(1, -1, 4)


def assign_anchor_to_bbox(ground_truth: torch.Tensor, anchors: torch.Tensor, device=None,
                          iou_threshold: float = 0.5) -> torch.Tensor:
    """For each anchor, the index of the ground-truth box it is assigned to, or -1.

    Greedily, each ground-truth box first takes the anchor it overlaps most (largest IoU over
    the pairs left, that anchor and box then out of the running); every other anchor takes
    the box it overlaps most if their IoU is at least `iou_threshold`."""
    jaccard = box_iou(anchors, ground_truth)                              # (anchors, boxes)
    num_boxes = jaccard.shape[1]
    max_ious, indices = torch.max(jaccard, dim=1) if num_boxes else (None, None)
    assigned = torch.full((jaccard.shape[0],), -1, dtype=torch.long, device=jaccard.device)
    if num_boxes:
        above = max_ious >= iou_threshold
        assigned[above] = indices[above]
    for _ in range(num_boxes):
        best = int(torch.argmax(jaccard))
        anchor, box = best // num_boxes, best % num_boxes
        assigned[anchor] = box
        jaccard[:, box] = -1
        jaccard[anchor, :] = -1
    return assigned if device is None else assigned.to(device)


def offset_boxes(anchors: torch.Tensor, assigned_bb: torch.Tensor,
                 eps: float = 1e-6) -> torch.Tensor:
    """The offsets of boxes from their anchors (both (n, 4) corners): centre shifts over the
    anchor's size times 10, and 5 log of the size ratios."""
    anc, box = box_corner_to_center(anchors), box_corner_to_center(assigned_bb)
    offset_xy = 10 * (box[:, :2] - anc[:, :2]) / anc[:, 2:]
    offset_wh = 5 * torch.log(eps + box[:, 2:] / anc[:, 2:])
    return torch.cat((offset_xy, offset_wh), dim=1)


def offset_inverse(anchors: torch.Tensor, offset_preds: torch.Tensor) -> torch.Tensor:
    """The boxes (corners) that `offset_preds` (n, 4) put on `anchors` (n, 4): the inverse of
    `offset_boxes`."""
    anc = box_corner_to_center(anchors)
    xy = offset_preds[:, :2] * anc[:, 2:] / 10 + anc[:, :2]
    wh = torch.exp(offset_preds[:, 2:] / 5) * anc[:, 2:]
    return box_center_to_corner(torch.cat((xy, wh), dim=1))


def multibox_target(anchors: torch.Tensor, labels: torch.Tensor):
    """Label anchors (1, a, 4) against each image's ground truth `labels` (batch, boxes, 5:
    class, x1, y1, x2, y2). Returns (offsets (batch, a * 4), masks (batch, a * 4): 1 where an
    anchor has a box, class labels (batch, a): 0 background, else the box's class + 1)."""
    anchors = _boxes("anchors", anchors.squeeze(0))
    if labels.ndim != 3 or labels.shape[2] != 5:
        raise ValueError(f"labels must be (batch, boxes, 5) rows of (class, x1, y1, x2, y2), got "
                         f"shape {tuple(labels.shape)}")
    offsets, masks, classes = [], [], []
    for label in labels:
        assigned = assign_anchor_to_bbox(label[:, 1:], anchors, anchors.device)
        has_box = assigned >= 0
        mask = has_box.float().unsqueeze(-1).repeat(1, 4)                  # (a, 4)
        cls = torch.zeros(len(anchors), dtype=torch.long, device=anchors.device)
        cls[has_box] = label[assigned[has_box], 0].long() + 1
        boxes = torch.zeros((len(anchors), 4), dtype=torch.float32, device=anchors.device)
        boxes[has_box] = label[assigned[has_box], 1:].float()
        offsets.append((offset_boxes(anchors, boxes) * mask).reshape(-1))
        masks.append(mask.reshape(-1))
        classes.append(cls)
    return torch.stack(offsets), torch.stack(masks), torch.stack(classes)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Non-maximum suppression: the indices of the boxes kept, by decreasing score; a box is
    dropped when its IoU with a kept box of higher score is above `iou_threshold`."""
    return torchvision.ops.nms(_boxes("boxes", boxes).float(), scores.float(), iou_threshold)


def multibox_detection(cls_probs: torch.Tensor, offset_preds: torch.Tensor, anchors: torch.Tensor,
                       nms_threshold: float = 0.5, pos_threshold: float = 0.009999999):
    """Predicted boxes from class probabilities (batch, classes + 1, a; background first),
    offsets (batch, a * 4) and anchors (1, a, 4). Returns (batch, a, 6) rows (class, score, x1,
    y1, x2, y2): the boxes kept by non-maximum suppression first (class the most probable
    non-background one), then the others with class -1; a kept box whose score is below
    `pos_threshold` gets class -1 and score 1 - score too."""
    anchors = _boxes("anchors", anchors.squeeze(0))
    out = []
    for cls_prob, offset_pred in zip(cls_probs, offset_preds, strict=True):
        conf, class_id = torch.max(cls_prob[1:], 0)                        # (a,), (a,)
        boxes = offset_inverse(anchors, offset_pred.reshape(-1, 4))
        keep = nms(boxes, conf, nms_threshold)
        dropped = torch.ones(len(anchors), dtype=torch.bool, device=anchors.device)
        dropped[keep] = False
        order = torch.cat((keep, dropped.nonzero().reshape(-1)))
        class_id = torch.where(dropped, -1, class_id)[order]
        conf, boxes = conf[order], boxes[order]
        low = conf < pos_threshold
        class_id[low], conf[low] = -1, 1 - conf[low]
        out.append(torch.cat((class_id.unsqueeze(1).to(conf.dtype), conf.unsqueeze(1), boxes),
                             dim=1))
    return torch.stack(out)


def _read_image(path) -> torch.Tensor:
    """An image file as an RGB uint8 tensor (3, H, W) (a palette image in its colours)."""
    with Image.open(path) as img:
        return torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1)


# --- banana detection ----------------------------------------------------------------------------

def read_data_bananas(is_train: bool = True):
    """The banana-detection images (uint8 tensors 3 x 256 x 256) and their labels (n, 1, 5):
    (class, x1, y1, x2, y2) divided by 256. Read from `banana-detection.zip` in the data folder
    (downloaded once)."""
    data_dir = Path(_download_extract("banana-detection"))
    split = data_dir / ("bananas_train" if is_train else "bananas_val")
    images, targets = [], []
    with open(split / "label.csv", newline="") as f:
        for row in csv.DictReader(f):
            images.append(_read_image(split / "images" / row["img_name"]))
            targets.append([float(row[k]) for k in ("label", "xmin", "ymin", "xmax", "ymax")])
    if not images:
        raise ValueError(f"{split / 'label.csv'} lists no images")
    return images, torch.tensor(targets).unsqueeze(1) / 256


class BananasDataset(torch.utils.data.Dataset):
    """The banana-detection training or validation set: (float image 3 x 256 x 256 in
    0..255, label (1, 5)) pairs."""

    def __init__(self, is_train: bool):
        self.features, self.labels = read_data_bananas(is_train)
        print(f"read {len(self.features)} {'training' if is_train else 'validation'} examples")

    def __getitem__(self, idx):
        return self.features[idx].float(), self.labels[idx]

    def __len__(self) -> int:
        return len(self.features)


def load_data_bananas(batch_size: int):
    """(training batches, shuffled; validation batches) of the banana-detection data."""
    batch_size = positive_int("batch_size", batch_size)
    train_iter = torch.utils.data.DataLoader(BananasDataset(is_train=True), batch_size,
                                             shuffle=True)
    val_iter = torch.utils.data.DataLoader(BananasDataset(is_train=False), batch_size)
    return train_iter, val_iter


# --- Pascal VOC semantic segmentation ------------------------------------------------------------

VOC_COLORMAP = [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128], [128, 0, 128],
                [0, 128, 128], [128, 128, 128], [64, 0, 0], [192, 0, 0], [64, 128, 0],
                [192, 128, 0], [64, 0, 128], [192, 0, 128], [64, 128, 128], [192, 128, 128],
                [0, 64, 0], [128, 64, 0], [0, 192, 0], [128, 192, 0], [0, 64, 128]]

VOC_CLASSES = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
               "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
               "potted plant", "sheep", "sofa", "train", "tv/monitor"]


def read_voc_images(voc_dir, is_train: bool = True):
    """(images, label images) of VOC's segmentation training or validation list, as uint8
    tensors 3 x H x W (labels in VOC's colours, RGB)."""
    voc_dir = Path(voc_dir)
    listing = voc_dir / "ImageSets" / "Segmentation" / ("train.txt" if is_train else "val.txt")
    if not listing.is_file():
        raise FileNotFoundError(f"{listing} not found: voc_dir must be the VOC2012 folder (the "
                                f"one holding ImageSets/, JPEGImages/, SegmentationClass/), "
                                f"such as d2l.download_extract('voc2012', 'VOCdevkit/VOC2012')")
    features, labels = [], []
    for name in listing.read_text().split():
        features.append(_read_image(voc_dir / "JPEGImages" / f"{name}.jpg"))
        labels.append(_read_image(voc_dir / "SegmentationClass" / f"{name}.png"))
    return features, labels


def voc_colormap2label() -> torch.Tensor:
    """A table from colour (R * 256 + G) * 256 + B to VOC class index (0 for other colours)."""
    table = torch.zeros(256 ** 3, dtype=torch.long)
    codes = torch.tensor([(r * 256 + g) * 256 + b for r, g, b in VOC_COLORMAP])
    table[codes] = torch.arange(len(VOC_COLORMAP))
    return table


def voc_label_indices(colormap: torch.Tensor, colormap2label: torch.Tensor) -> torch.Tensor:
    """The class index of every pixel of a label image (3 x H x W, VOC's colours): H x W."""
    c = colormap.long()
    return colormap2label[(c[0] * 256 + c[1]) * 256 + c[2]]


def voc_rand_crop(feature: torch.Tensor, label: torch.Tensor, height: int, width: int):
    """The same random `height` x `width` window of an image and its label image."""
    rect = transforms.RandomCrop.get_params(feature, (height, width))
    return transforms.functional.crop(feature, *rect), transforms.functional.crop(label, *rect)


class VOCSegDataset(torch.utils.data.Dataset):
    """VOC's segmentation training or validation set, random `crop_size` (height, width)
    windows: (image normalised by ImageNet's channel means and deviations, class indices
    H x W) pairs. Images smaller than the crop are left out."""

    def __init__(self, is_train: bool, crop_size, voc_dir):
        self.transform = transforms.Normalize(mean=[0.485, 0.456, 0.406],
                                              std=[0.229, 0.224, 0.225])
        self.crop_size = tuple(positive_int("crop_size", s) for s in crop_size)
        features, labels = read_voc_images(voc_dir, is_train=is_train)
        self.features = [self.normalize_image(f) for f in self.filter(features)]
        self.labels = self.filter(labels)
        self.colormap2label = voc_colormap2label()
        print(f"read {len(self.features)} examples")

    def normalize_image(self, img: torch.Tensor) -> torch.Tensor:
        return self.transform(img.float() / 255)

    def filter(self, imgs):
        """The images at least as large as the crop."""
        h, w = self.crop_size
        return [img for img in imgs if img.shape[1] >= h and img.shape[2] >= w]

    def __getitem__(self, idx):
        feature, label = voc_rand_crop(self.features[idx], self.labels[idx], *self.crop_size)
        return feature, voc_label_indices(label, self.colormap2label)

    def __len__(self) -> int:
        return len(self.features)


def load_data_voc(batch_size: int, crop_size):
    """(training batches, shuffled; test batches) of VOC2012's segmentation data, random
    `crop_size` windows, incomplete last batches dropped. Read from the VOC tar in the data
    folder (downloaded once: 2 GB)."""
    batch_size = positive_int("batch_size", batch_size)
    voc_dir = _download_extract("voc2012", os.path.join("VOCdevkit", "VOC2012"))
    workers = get_dataloader_workers()
    train_iter = torch.utils.data.DataLoader(VOCSegDataset(True, crop_size, voc_dir), batch_size,
                                             shuffle=True, drop_last=True, num_workers=workers)
    test_iter = torch.utils.data.DataLoader(VOCSegDataset(False, crop_size, voc_dir), batch_size,
                                            drop_last=True, num_workers=workers)
    for name, it in (("training", train_iter), ("test", test_iter)):
        if len(it) == 0:
            raise ValueError(f"load_data_voc: the {name} set has {len(it.dataset)} images of at "
                             f"least {crop_size}, fewer than one batch of {batch_size}")
    return train_iter, test_iter


# --- the Kaggle folders --------------------------------------------------------------------------

def read_csv_labels(fname) -> dict[str, str]:
    """{name: label} from a CSV file whose first line is a header and whose rows are
    'name,label'."""
    with open(fname) as f:
        lines = f.read().splitlines()[1:]
    rows = [line.rstrip().split(",") for line in lines if line.strip()]
    bad = [row for row in rows if len(row) != 2]
    if bad:
        raise ValueError(f"{fname}: rows must be 'name,label', got {','.join(bad[0])!r}")
    return dict(rows)


def copyfile(filename, target_dir) -> None:
    """Copy a file into `target_dir` (made if missing)."""
    os.makedirs(target_dir, exist_ok=True)
    shutil.copy(filename, target_dir)


def reorg_train_valid(data_dir, labels: dict, valid_ratio: float) -> int:
    """Copy data_dir/train/ into data_dir/train_valid_test/{train_valid,train,valid}/LABEL/:
    all files into train_valid, and of each label the first n (in the folder's listing order)
    into valid, the rest into train, n = max(1, floor(valid_ratio * the rarest label's count)).
    Returns n."""
    if not labels:
        raise ValueError("reorg_train_valid: labels is empty")
    rarest = collections.Counter(labels.values()).most_common()[-1][1]
    n_valid = max(1, math.floor(rarest * valid_ratio))
    taken: dict[str, int] = {}
    target = os.path.join(data_dir, "train_valid_test")
    for train_file in os.listdir(os.path.join(data_dir, "train")):
        name = train_file.split(".")[0]
        if name not in labels:
            raise KeyError(f"reorg_train_valid: {train_file} has no label (no row {name!r})")
        label, fname = labels[name], os.path.join(data_dir, "train", train_file)
        copyfile(fname, os.path.join(target, "train_valid", label))
        split = "valid" if taken.get(label, 0) < n_valid else "train"
        taken[label] = taken.get(label, 0) + (split == "valid")
        copyfile(fname, os.path.join(target, split, label))
    return n_valid


def reorg_test(data_dir) -> None:
    """Copy data_dir/test/ into data_dir/train_valid_test/test/unknown/ (one folder of
    unlabelled images, as torchvision's ImageFolder reads them)."""
    for test_file in os.listdir(os.path.join(data_dir, "test")):
        copyfile(os.path.join(data_dir, "test", test_file),
                 os.path.join(data_dir, "train_valid_test", "test", "unknown"))


def get_dataloader_workers() -> int:
    """How many processes read the data: 4, or fewer where fewer cores are available."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(4, cores or 1))


# --- training on several devices -----------------------------------------------------------------

def train_batch_ch13(net: nn.Module, X, y, loss, trainer, devices):
    """One minibatch step on devices[0] (X a tensor, or a list of tensors): forward, the summed
    loss backward, `trainer.step()`. Returns (summed loss, number of right predictions)."""
    X = [x.to(devices[0]) for x in X] if isinstance(X, list) else X.to(devices[0])
    y = y.to(devices[0])
    net.train()
    trainer.zero_grad()
    pred = net(X)
    l = loss(pred, y)  # noqa: E741 (the book's name)
    l.sum().backward()
    trainer.step()
    return l.sum().detach(), accuracy(pred, y)


def train_ch13(net: nn.Module, train_iter, test_iter, loss, trainer, num_epochs: int,
               devices=None) -> None:
    """Train `net` with `loss` (one value per example) and the optimiser `trainer`, drawing
    training loss and accuracy and test accuracy as it goes (the loop of `train_ch6`). On
    several GPUs the batches are split by `nn.DataParallel`; `devices` defaults to
    `try_all_gpus()`."""
    devices = _check_devices(try_all_gpus() if devices is None else devices, "train_ch13")
    net = (nn.DataParallel(net, device_ids=devices) if len(devices) > 1 else net).to(devices[0])
    _train_epochs(net, train_iter, test_iter, num_epochs, str(list(devices)), ylim=[0, 1],
                 step=lambda X, y: train_batch_ch13(net, X, y, loss, trainer, devices))
