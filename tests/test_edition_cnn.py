"""`init_cnn` in the convolutional chapters: the modern CNNs apply it in their constructors,
before their lazy layers have shapes, and again through `apply_init` after a forward pass."""

import torch
from torch import nn

from d2lai import torch as d2l


def _weights(net):
    return [m.weight.detach().clone() for m in net.modules() if type(m) in (nn.Linear, nn.Conv2d)]


def test_init_cnn_leaves_lazy_layers_alone_and_xavier_inits_the_rest():
    net = nn.Sequential(nn.Conv2d(1, 3, kernel_size=3), nn.LazyConv2d(4, kernel_size=3),
                        nn.LazyBatchNorm2d(), nn.ReLU(), nn.Flatten(), nn.LazyLinear(5))
    net.apply(d2l.init_cnn)  # no error: the lazy layers are skipped
    assert net[1].has_uninitialized_params() and net[5].has_uninitialized_params()
    net(torch.randn(2, 1, 8, 8))  # shapes: (2, 3, 6, 6) -> (2, 4, 4, 4) -> (2, 64) -> (2, 5)
    assert net[1].weight.shape == (4, 3, 3, 3) and net[5].weight.shape == (5, 64)
    bn_weight = net[2].weight.detach().clone()
    torch.manual_seed(7)
    net.apply(d2l.init_cnn)
    torch.manual_seed(7)  # the same draws, by hand, in the order apply visits the layers
    expected = [nn.init.xavier_uniform_(torch.empty(*w.shape)) for w in _weights(net)]
    assert all(torch.equal(a, b) for a, b in zip(_weights(net), expected, strict=True))
    assert torch.equal(net[2].weight, bn_weight)  # batch norm is not touched


class SmallNiN(d2l.Classifier):
    """A model in the modern CNNs' style: lazy layers, `init_cnn` applied in the constructor."""

    def __init__(self, lr=0.1, num_classes=10):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.LazyConv2d(8, kernel_size=5, stride=2), nn.LazyBatchNorm2d(), nn.ReLU(),
            nn.LazyConv2d(4, kernel_size=1), nn.ReLU(), nn.Flatten(),
            nn.LazyLinear(num_classes))
        self.net.apply(d2l.init_cnn)


def test_a_modern_cnn_builds_initialises_and_trains(fashion_root, one_thread):
    torch.manual_seed(0)
    model = SmallNiN()
    assert model.net[0].has_uninitialized_params()
    data = d2l.FashionMNIST(batch_size=64, root=str(fashion_root))
    X = next(iter(data.get_dataloader(True)))[0]
    model.apply_init([X], d2l.init_cnn)
    w = model.net[0].weight.detach()
    assert w.shape == (8, 1, 5, 5)
    bound = (6 / (25 + 8 * 25)) ** 0.5  # Xavier-uniform: fan_in 1*5*5, fan_out 8*5*5
    assert 0.8 * bound < float(w.abs().max()) <= bound
    trainer = d2l.Trainer(max_epochs=2)
    trainer.fit(model, data)
    assert trainer.metrics.val_acc > 0.3  # chance is 0.1
