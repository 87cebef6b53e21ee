"""The computer-vision chapter's names in `d2lai.torch`: boxes and non-maximum suppression
against plain computations, anchors and offsets against values worked out by hand, the data
sets read from stand-ins in their real layouts, and a small `train_ch13` fit."""

import math
import os
import zipfile

import matplotlib
import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch import nn

from d2lai import torch as d2l
from d2lai.testing import (
    write_fake_bananas,
    write_fake_cifar10_tiny,
    write_fake_dog_tiny,
    write_fake_hotdog,
    write_fake_pretrained,
    write_fake_voc2012,
)

matplotlib.use("Agg")


def _iou(a, b):
    """The IoU of two boxes, in plain Python."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _greedy_nms(boxes, scores, threshold):
    """Non-maximum suppression as the chapter describes it, one box at a time."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    keep = []
    for i in order:
        if all(_iou(boxes[i], boxes[j]) <= threshold for j in keep):
            keep.append(i)
    return keep


def _random_boxes(n, seed):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g)
    return torch.cat((xy, xy + 0.05 + 0.4 * torch.rand(n, 2, generator=g)), dim=1)


# --- boxes ---------------------------------------------------------------------------------------

def test_box_conversions_by_hand_and_round_trip():
    boxes = torch.tensor([[60.0, 45.0, 378.0, 516.0], [400.0, 112.0, 655.0, 493.0]])
    centers = d2l.box_corner_to_center(boxes)
    assert torch.equal(centers, torch.tensor([[219.0, 280.5, 318.0, 471.0],
                                              [527.5, 302.5, 255.0, 381.0]]))
    assert torch.equal(d2l.box_center_to_corner(centers), boxes)
    with pytest.raises(ValueError, match=r"shape \(n, 4\).*\(2, 3\)"):
        d2l.box_corner_to_center(boxes[:, :3])


def test_box_iou_against_plain_python_and_torchvision():
    a, b = _random_boxes(30, 0), _random_boxes(20, 1)
    iou = d2l.box_iou(a, b)
    assert iou.shape == (30, 20)
    expected = torch.tensor([[_iou(x.tolist(), y.tolist()) for y in b] for x in a])
    torch.testing.assert_close(iou, expected)
    assert torch.equal(iou, torchvision.ops.box_iou(a, b))
    assert d2l.box_iou(torch.tensor([[0.0, 0, 2, 2]]), torch.tensor([[1.0, 1, 3, 3]])).item() \
        == pytest.approx(1 / 7)
    with pytest.raises(ValueError, match="boxes2"):
        d2l.box_iou(a, b[:, :2])


@pytest.mark.parametrize("threshold", [0.1, 0.3, 0.5, 0.7])
def test_nms_keeps_what_greedy_suppression_keeps(threshold):
    boxes = _random_boxes(60, 2)
    scores = torch.randperm(60, generator=torch.Generator().manual_seed(3)).float() / 60
    keep = d2l.nms(boxes, scores, threshold)
    assert keep.dtype == torch.int64
    assert keep.tolist() == _greedy_nms(boxes.tolist(), scores.tolist(), threshold)
    assert torch.equal(keep, torchvision.ops.nms(boxes, scores, threshold))


def test_bbox_to_rect_and_show_bboxes_draw_labelled_rectangles():
    from matplotlib import pyplot as plt

    rect = d2l.bbox_to_rect([60.0, 45.0, 378.0, 516.0], "blue")
    assert rect.get_xy() == (60.0, 45.0) and (rect.get_width(), rect.get_height()) == (318, 471)
    _, ax = plt.subplots()
    d2l.show_bboxes(ax, torch.tensor([[0.1, 0.1, 0.5, 0.5], [0.2, 0.3, 0.9, 0.8]]),
                    ["dog", "cat"], "w")
    assert len(ax.patches) == 2 and [t.get_text() for t in ax.texts] == ["dog", "cat"]
    assert ax.texts[0].get_color() == "k"  # dark text on a white box
    plt.close("all")


# --- anchors -------------------------------------------------------------------------------------

def test_multibox_prior_by_hand():
    # a 2 x 4 image, size 0.5 with ratios 1 and 4: widths scale by h / w = 0.5
    Y = d2l.multibox_prior(torch.zeros(1, 3, 2, 4), sizes=[0.5], ratios=[1, 4])
    assert Y.shape == (1, 2 * 4 * 2, 4)
    # pixel (0, 0), centre (0.125, 0.25): 0.25 x 0.5, then 0.5 x 0.25
    torch.testing.assert_close(Y[0, 0], torch.tensor([0.0, 0.0, 0.25, 0.5]))
    torch.testing.assert_close(Y[0, 1], torch.tensor([-0.125, 0.125, 0.375, 0.375]))
    # pixel (0, 1) comes next (row by row), centre x 0.375; pixel (1, 0) after the first row
    torch.testing.assert_close(Y[0, 2], torch.tensor([0.25, 0.0, 0.5, 0.5]))
    torch.testing.assert_close(Y[0, 8], torch.tensor([0.0, 0.5, 0.25, 1.0]))


def test_multibox_prior_on_the_chapters_image_size():
    h, w = 561, 728
    Y = d2l.multibox_prior(torch.zeros(1, 3, h, w), sizes=[0.75, 0.5, 0.25], ratios=[1, 2, 0.5])
    assert Y.shape == (1, h * w * 5, 4)
    box = Y.reshape(h, w, 5, 4)[250, 250, 0]
    cx, cy, half_w, half_h = 250.5 / w, 250.5 / h, 0.75 * h / w / 2, 0.75 / 2
    torch.testing.assert_close(box, torch.tensor([cx - half_w, cy - half_h, cx + half_w,
                                                  cy + half_h]))


GROUND_TRUTH = torch.tensor([[0, 0.1, 0.08, 0.52, 0.92], [1, 0.55, 0.2, 0.9, 0.88]])
ANCHORS = torch.tensor([[0, 0.1, 0.2, 0.3], [0.15, 0.2, 0.4, 0.4], [0.63, 0.05, 0.88, 0.98],
                        [0.66, 0.45, 0.8, 0.8], [0.57, 0.3, 0.92, 0.9]])


def test_assign_anchor_to_bbox_greedy_then_threshold():
    iou = [[_iou(a, b) for b in GROUND_TRUTH[:, 1:].tolist()] for a in ANCHORS.tolist()]
    # the largest IoU pairs anchor 4 with the cat, then anchor 1 takes the dog; of the others
    # only anchor 2 overlaps a box (the cat) at 0.5 or more
    assert max(max(row) for row in iou) == iou[4][1] and iou[1][0] == max(r[0] for r in iou)
    assert iou[2][1] >= 0.5 and all(max(iou[k]) < 0.5 for k in (0, 3))
    assigned = d2l.assign_anchor_to_bbox(GROUND_TRUTH[:, 1:], ANCHORS, "cpu")
    assert assigned.tolist() == [-1, 0, 1, -1, 1]
    assert d2l.assign_anchor_to_bbox(GROUND_TRUTH[:, 1:], ANCHORS, "cpu",
                                     iou_threshold=0.9).tolist() == [-1, 0, -1, -1, 1]


def _offsets_by_hand(anchor, box):
    acx, acy = (anchor[0] + anchor[2]) / 2, (anchor[1] + anchor[3]) / 2
    aw, ah = anchor[2] - anchor[0], anchor[3] - anchor[1]
    bcx, bcy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    bw, bh = box[2] - box[0], box[3] - box[1]
    return [10 * (bcx - acx) / aw, 10 * (bcy - acy) / ah, 5 * math.log(1e-6 + bw / aw),
            5 * math.log(1e-6 + bh / ah)]


def test_multibox_target_on_the_chapters_example():
    offsets, mask, classes = d2l.multibox_target(ANCHORS.unsqueeze(0), GROUND_TRUTH.unsqueeze(0))
    assert classes.tolist() == [[0, 1, 2, 0, 2]]
    assert mask.tolist() == [[0.0] * 4 + [1.0] * 8 + [0.0] * 4 + [1.0] * 4]
    dog, cat = GROUND_TRUTH[0, 1:].tolist(), GROUND_TRUTH[1, 1:].tolist()
    expected = ([0.0] * 4 + _offsets_by_hand(ANCHORS[1].tolist(), dog)
                + _offsets_by_hand(ANCHORS[2].tolist(), cat) + [0.0] * 4
                + _offsets_by_hand(ANCHORS[4].tolist(), cat))
    torch.testing.assert_close(offsets, torch.tensor([expected]), rtol=1e-4, atol=1e-4)
    assert offsets[0, 4:8].tolist() == pytest.approx([1.4, 10.0, 2.594, 7.175], abs=1e-3)
    with pytest.raises(ValueError, match=r"\(batch, boxes, 5\)"):
        d2l.multibox_target(ANCHORS.unsqueeze(0), GROUND_TRUTH)


def test_offset_inverse_undoes_offset_boxes():
    anchors, boxes = _random_boxes(40, 4), _random_boxes(40, 5)
    offsets = d2l.offset_boxes(anchors, boxes, eps=0)
    torch.testing.assert_close(d2l.offset_inverse(anchors, offsets), boxes)
    torch.testing.assert_close(d2l.offset_inverse(anchors, torch.zeros(40, 4)), anchors)


def test_multibox_detection_on_the_chapters_example():
    anchors = torch.tensor([[0.1, 0.08, 0.52, 0.92], [0.08, 0.2, 0.56, 0.95],
                            [0.15, 0.3, 0.62, 0.91], [0.55, 0.2, 0.9, 0.88]])
    cls_probs = torch.tensor([[0.0] * 4, [0.9, 0.8, 0.7, 0.1], [0.1, 0.2, 0.3, 0.9]])
    out = d2l.multibox_detection(cls_probs.unsqueeze(0), torch.zeros(1, 16),
                                 anchors.unsqueeze(0), nms_threshold=0.5)
    assert out.shape == (1, 4, 6)
    torch.testing.assert_close(out[0], torch.tensor([
        [0.0, 0.9, 0.1, 0.08, 0.52, 0.92],     # dog, kept
        [1.0, 0.9, 0.55, 0.2, 0.9, 0.88],      # cat, kept
        [-1.0, 0.8, 0.08, 0.2, 0.56, 0.95],    # suppressed by the first
        [-1.0, 0.7, 0.15, 0.3, 0.62, 0.91]]))


def test_multibox_detection_low_scores_become_background():
    anchors = torch.tensor([[0.0, 0.0, 0.2, 0.2], [0.5, 0.5, 0.9, 0.9]])
    cls_probs = torch.tensor([[[0.995, 0.1], [0.005, 0.9]]])
    out = d2l.multibox_detection(cls_probs, torch.zeros(1, 8), anchors.unsqueeze(0))
    assert out[0, :, 0].tolist() == [0.0, -1.0]    # by score: anchor 1, then anchor 0
    assert out[0, :, 1].tolist() == pytest.approx([0.9, 0.995])


# --- data ----------------------------------------------------------------------------------------

@pytest.fixture
def vision_root(tmp_path, monkeypatch):
    monkeypatch.setenv("D2LAI_DATA", str(tmp_path))
    return tmp_path


def test_hub_lists_the_chapters_data_sets_with_the_books_sha1():
    assert d2l.DATA_HUB["hotdog"] == (d2l.DATA_URL + "hotdog.zip",
                                      "fba480ffa8aa7e0febbb511d181409f899b9baa5")
    for name in ("banana-detection", "voc2012", "cifar10_tiny", "dog_tiny"):
        url, sha1 = d2l.DATA_HUB[name]
        assert url.startswith(d2l.DATA_URL) and len(sha1) == 40


def test_missing_data_offline_names_url_file_and_folder(vision_root, offline):
    with pytest.raises(FileNotFoundError) as err:
        d2l.load_data_bananas(4)
    msg = str(err.value)
    assert d2l.DATA_URL + "banana-detection.zip" in msg and str(vision_root) in msg


def test_bananas_from_the_stand_in(vision_root):
    write_fake_bananas(vision_root, num_train=10, num_val=3)
    train_iter, val_iter = d2l.load_data_bananas(4)
    assert len(train_iter.dataset) == 10 and len(val_iter.dataset) == 3
    X, Y = next(iter(val_iter))
    assert X.shape == (3, 3, 256, 256) and X.dtype == torch.float32 and X.max() > 1
    assert Y.shape == (3, 1, 5)
    with zipfile.ZipFile(vision_root / "banana-detection.zip") as z:
        rows = z.read("banana-detection/bananas_val/label.csv").decode().split()[1:]
    expected = torch.tensor([[float(v) for v in r.split(",")[1:]] for r in rows]) / 256
    torch.testing.assert_close(Y[:, 0], expected)
    # the banana is yellow inside its box: more red and green than blue at the box's centre
    x1, y1, x2, y2 = (Y[0, 0, 1:] * 256).tolist()
    r, g, b = X[0, :, int((y1 + y2) / 2), int((x1 + x2) / 2)].tolist()
    assert r > b + 60 and g > b + 60


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory):
    """A data root with the VOC stand-in: 4 training images (the 4th portrait), 3 to test."""
    root = tmp_path_factory.mktemp("voc")
    write_fake_voc2012(root, num_train=4, num_val=3)
    return root


def test_voc_labels_are_the_palette_indices(voc_root, monkeypatch):
    monkeypatch.setenv("D2LAI_DATA", str(voc_root))
    voc_dir = d2l.download_extract("voc2012", "VOCdevkit/VOC2012")
    features, labels = d2l.read_voc_images(voc_dir, True)
    assert len(features) == len(labels) == 4
    assert features[0].dtype == torch.uint8 and features[0].shape == labels[0].shape
    name = (open(os.path.join(voc_dir, "ImageSets/Segmentation/train.txt")).read().split()[0])
    with Image.open(os.path.join(voc_dir, "SegmentationClass", f"{name}.png")) as png:
        assert png.mode == "P"
        indices = torch.tensor(np.array(png), dtype=torch.long)
    indices[indices == 255] = 0  # the outline's colour is no class: background
    y = d2l.voc_label_indices(labels[0], d2l.voc_colormap2label())
    assert torch.equal(y, indices) and y.max() > 0
    table = d2l.voc_colormap2label()
    assert table[(128 * 256 + 0) * 256 + 0] == 1 and table[(0 * 256 + 64) * 256 + 128] == 20
    assert len(d2l.VOC_CLASSES) == len(d2l.VOC_COLORMAP) == 21
    with pytest.raises(FileNotFoundError, match="VOC2012 folder"):
        d2l.read_voc_images(voc_root)


def test_voc_rand_crop_cuts_the_same_window_of_both():
    rows, cols = torch.meshgrid(torch.arange(40), torch.arange(60), indexing="ij")
    feature = torch.stack((rows, cols, rows + cols))  # each pixel says where it is
    label = feature * 10
    for _ in range(5):
        f, lab = d2l.voc_rand_crop(feature, label, 15, 25)
        i, j = int(f[0, 0, 0]), int(f[1, 0, 0])
        assert f.shape == (3, 15, 25) and torch.equal(f, feature[:, i:i + 15, j:j + 25])
        assert torch.equal(lab, label[:, i:i + 15, j:j + 25])


def test_voc_dataset_filters_small_images_and_loads_batches(voc_root, monkeypatch, capsys):
    monkeypatch.setenv("D2LAI_DATA", str(voc_root))
    voc_dir = d2l.download_extract("voc2012", "VOCdevkit/VOC2012")
    # only the portrait image (the 4th) is tall enough for a 400-row crop
    ds = d2l.VOCSegDataset(True, (400, 300), voc_dir)
    assert len(ds) == 1 and "read 1 examples" in capsys.readouterr().out
    X, Y = ds[0]
    assert X.shape == (3, 400, 300) and Y.shape == (400, 300) and Y.dtype == torch.int64
    train_iter, test_iter = d2l.load_data_voc(2, (64, 96))
    X, Y = next(iter(train_iter))
    assert X.shape == (2, 3, 64, 96) and Y.shape == (2, 64, 96) and 0 <= Y.min() <= Y.max() <= 20
    assert len(test_iter) == 1  # 3 test images, batches of 2, the last one dropped
    with pytest.raises(ValueError, match="fewer than one batch of 8"):
        d2l.load_data_voc(8, (64, 96))


def test_kaggle_folders_reorganised(vision_root):
    write_fake_cifar10_tiny(vision_root, num_train=60, num_test=4)
    data_dir = d2l.download_extract("cifar10_tiny")
    labels = d2l.read_csv_labels(os.path.join(data_dir, "trainLabels.csv"))
    assert len(labels) == 60 and set(labels.values()) == set(
        ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"])
    n_valid = d2l.reorg_train_valid(data_dir, labels, 0.4)  # 6 of each class: 2 to validate
    d2l.reorg_test(data_dir)
    assert n_valid == 2
    tvt = os.path.join(data_dir, "train_valid_test")
    count = {split: sum(len(files) for _, _, files in os.walk(os.path.join(tvt, split)))
             for split in ("train_valid", "train", "valid", "test")}
    assert count == {"train_valid": 60, "train": 40, "valid": 20, "test": 4}
    for split in ("train", "valid"):
        ds = torchvision.datasets.ImageFolder(os.path.join(tvt, split))
        assert len(ds.classes) == 10
        for path, k in ds.samples:  # each file sits in its label's folder
            assert labels[os.path.basename(path).split(".")[0]] == ds.classes[k]
    assert os.listdir(os.path.join(tvt, "test")) == ["unknown"]
    (vision_root / "bad.csv").write_text("id,label\n1,cat,dog\n")
    with pytest.raises(ValueError, match="name,label"):
        d2l.read_csv_labels(vision_root / "bad.csv")


def test_dog_stand_in_reorganised_by_breed(vision_root):
    write_fake_dog_tiny(vision_root, num_breeds=3, per_breed=2, num_test=1)
    data_dir = d2l.download_extract("dog_tiny")
    labels = d2l.read_csv_labels(os.path.join(data_dir, "labels.csv"))
    assert len(labels) == 6 and all(len(name) == 32 for name in labels)
    assert d2l.reorg_train_valid(data_dir, labels, 0.1) == 1
    d2l.reorg_test(data_dir)
    valid = torchvision.datasets.ImageFolder(os.path.join(data_dir, "train_valid_test", "valid"))
    assert valid.classes == sorted(set(labels.values())) and len(valid) == 3
    image, _ = valid[0]
    assert image.mode == "RGB" and min(image.size) >= 200


def test_pretrained_stand_in_loads_through_torchvision(tmp_path, monkeypatch):
    (path,) = write_fake_pretrained(tmp_path, archs=("resnet18",))
    assert path.name == "resnet18-f37072fd.pth" and path.stat().st_size < 6e6
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    net = torchvision.models.resnet18(weights=torchvision.models.ResNet18_Weights.IMAGENET1K_V1)
    net.eval()
    with torch.no_grad():
        out = net(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 1000) and torch.isfinite(out).all() and out.std() > 0


def test_get_dataloader_workers_and_module_names():
    assert 1 <= d2l.get_dataloader_workers() <= 4
    assert d2l.Image is Image and d2l.torchvision is torchvision


# --- training ------------------------------------------------------------------------------------

def test_train_batch_ch13_is_one_sgd_step_on_the_summed_loss():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    copy = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    copy.load_state_dict(net.state_dict())
    X, y = torch.randn(8, 3, 2, 2), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    loss = nn.CrossEntropyLoss(reduction="none")
    total, acc = d2l.train_batch_ch13(net, X, y, loss, torch.optim.SGD(net.parameters(), lr=0.1),
                                  [torch.device("cpu")])
    out = copy(X)
    expected = nn.functional.cross_entropy(out, y, reduction="sum")
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert acc == float((out.argmax(1) == y).sum())
    expected.backward()
    with torch.no_grad():
        for p, q in zip(net.parameters(), copy.parameters(), strict=True):
            torch.testing.assert_close(p, q - 0.1 * q.grad)


def test_train_ch13_fits_the_hotdog_stand_in(vision_root, capsys, one_thread):
    write_fake_hotdog(vision_root, num_train=24, num_test=8)
    data_dir = d2l.download_extract("hotdog")
    augs = torchvision.transforms.Compose([torchvision.transforms.Resize((24, 24)),
                                           torchvision.transforms.ToTensor()])
    train_iter, test_iter = (torch.utils.data.DataLoader(torchvision.datasets.ImageFolder(
        os.path.join(data_dir, split), transform=augs), batch_size=8, shuffle=split == "train")
        for split in ("train", "test"))
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(8, 2))
    trainer = torch.optim.Adam(net.parameters(), lr=0.02)
    d2l.train_ch13(net, train_iter, test_iter, nn.CrossEntropyLoss(reduction="none"), trainer,
                   6, [torch.device("cpu")])
    lines = capsys.readouterr().out.splitlines()
    figures = dict(part.rsplit(" ", 1) for part in lines[-2].split(", "))
    assert float(figures["train acc"]) > 0.9 and float(figures["test acc"]) > 0.9
    assert "examples/sec on [device(type='cpu')]" in lines[-1]
    assert d2l.evaluate_accuracy_gpu(net, test_iter) == float(figures["test acc"])


def test_train_ch13_refuses_an_empty_training_set():
    empty = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(
        torch.zeros(3, 2), torch.zeros(3, dtype=torch.long)), batch_size=4, drop_last=True)
    with pytest.raises(ValueError, match="smaller than one batch"):
        d2l.train_ch13(nn.Linear(2, 2), empty, empty, nn.CrossEntropyLoss(reduction="none"),
                       None, 1, [torch.device("cpu")])
