"""Agreement across rotations, fit(unlabeled_data=...), and the benchmark's label budget."""

import csv

import equivariance as eq
import numpy as np
import pytest
import torch
from equivariance import transforms as T
from equivariance.label_budget import balanced_subset, check_labels, repeated
from equivariance.training.evaluation import agreement
from torch import nn

SMALL = {"epochs": 1, "batch_size": 64, "root": "subset", "limit": 200, "test_limit": 100,
         "verbose": False}


class Quarter(nn.Module):
    """Class = which quarter of the image holds the brightest pixel (turns with the image)."""

    def forward(self, x):
        h = x.shape[-1] // 2
        q = torch.stack([x[..., :h, :h].flatten(1).amax(1), x[..., :h, h:].flatten(1).amax(1),
                         x[..., h:, h:].flatten(1).amax(1), x[..., h:, :h].flatten(1).amax(1)], 1)
        return torch.cat([q, torch.zeros(x.shape[0], 6)], 1)


class Recorder(nn.Module):
    """A linear classifier that keeps every batch it is called on."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(16, 3)
        self.seen = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.lin(x.flatten(1))


# -- agreement ---------------------------------------------------------------------------


def test_agreement_is_one_for_an_invariant_model():
    model = eq.C4CNN(widths=(2, 2, 2))
    x, y = torch.rand(30, 1, 28, 28), torch.randint(0, 10, (30,))
    rows = eq.evaluate(model, (x, y), device="cpu")
    assert [r["agreement"] for r in rows] == [1.0] * 4
    rows = eq.evaluate(eq.D4CNN(widths=(1, 1, 1)), (x, y), device="cpu", mirror=True)
    assert len(rows) == 8 and all(r["agreement"] == 1.0 for r in rows)


def test_agreement_is_the_exact_share_on_a_constructed_case():
    # one bright pixel per image: a quarter turn moves it to the next quarter, so the
    # class changes at every turn, except for images whose four quarters are equal
    x = torch.zeros(8, 1, 4, 4)
    for i in range(6):
        x[i, 0, 0, 0] = 1.0
    x[6:] = 0.5  # constant images: the same class (0) at every angle
    y = torch.zeros(8, dtype=torch.long)
    rows = eq.evaluate(Quarter(), (x, y), device="cpu")
    assert rows[0]["agreement"] == pytest.approx(2 / 8)
    assert [r["accuracy"] for r in rows] == [1.0, 2 / 8, 2 / 8, 2 / 8]
    # only the upright angle tested: every image agrees with itself
    assert eq.evaluate(Quarter(), (x, y), rotations=[0], device="cpu")[0]["agreement"] == 1.0
    # turns 0 and 2 only: the bright pixel lands in quarter 2 instead of 0
    assert eq.evaluate(Quarter(), (x, y), rotations=[0, 2], device="cpu")[0]["agreement"] == 0.25


def test_agreement_function():
    assert agreement([torch.tensor([1, 2, 3, 4]), np.array([1, 2, 0, 4]), [1, 0, 3, 4]]) == 0.5
    with pytest.raises(ValueError, match="`classes`"):
        agreement([torch.tensor([1, 2]), torch.tensor([1])])


def test_benchmark_rows_and_csv_have_agreement(tmp_path):
    path = tmp_path / "t.csv"
    result = eq.rotation_benchmark(["SimpleCNN", "C4CNN"], csv=str(path), **SMALL)
    simple, c4 = result.rows
    assert c4["agreement"] == 1.0
    assert 0.0 <= simple["agreement"] <= 1.0
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert float(rows[1]["agreement"]) == 1.0 and "agreement" in rows[0]
    assert "agree%" in result.format()


# -- fit(unlabeled_data=...) ------------------------------------------------------------------


def _regularizer(model, n=4):
    return eq.EquivarianceRegularizer(model, (1, 4, 4), [(T.identity, T.rot90(1), 0.0, 1.0)],
                                      dist="kl_logits", n=n)


def test_regularizer_sees_the_unlabeled_images_and_the_loss_the_labelled_ones():
    torch.manual_seed(0)
    x, y = torch.rand(12, 1, 4, 4), torch.randint(0, 3, (12,))
    u = torch.rand(10, 1, 4, 4) + 5.0  # values > 1: told apart from the labelled ones
    model = Recorder()
    reg = _regularizer(model, n=4)
    history = eq.fit(model, (x, y), epochs=2, batch_size=6, regularizer=reg, unlabeled_data=u,
                     seed=1, verbose=False)
    assert len(history.reg) == 4 and all(r > 0 for r in history.reg)
    labelled = [b for b in model.seen if b.shape[0] == 6]
    regularized = [b for b in model.seen if b.shape[0] != 6]
    assert len(labelled) == 4 and len(regularized) == 4
    assert all(float(b.max()) <= 1.0 for b in labelled)  # the loss never sees them
    # the regularizer's batched pass: 4 unlabeled images and their turned copies
    assert all(b.shape[0] == 8 and float(b.min()) >= 5.0 for b in regularized)
    # shuffled passes over the unlabeled images: the first 8 draws hold 8 distinct ones
    drawn = torch.cat([b[:4] for b in regularized[:2]])
    assert len({tuple(r.flatten().tolist()) for r in drawn}) == 8
    assert all(any(torch.equal(d, v) for v in u) for d in drawn)


def test_unlabeled_pair_and_numpy_images_are_accepted():
    x, y = torch.rand(8, 1, 4, 4), torch.randint(0, 3, (8,))
    u = np.random.rand(6, 4, 4).astype("float32")  # (N, H, W): one channel added
    for given in (u, (u, np.zeros(6)), {"x": u, "y": np.zeros(6)},
                  torch.utils.data.TensorDataset(torch.as_tensor(u))):
        model = Recorder()
        eq.fit(model, (x, y), batch_size=4, regularizer=_regularizer(model), unlabeled_data=given,
               verbose=False, seed=0)
        assert any(b.shape[0] == 8 for b in model.seen)


def test_unlabeled_data_reproducible_with_seed():
    x, y = torch.rand(8, 1, 4, 4), torch.randint(0, 3, (8,))
    u = torch.rand(20, 1, 4, 4)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = Recorder()
        runs.append(eq.fit(model, (x, y), batch_size=4, regularizer=_regularizer(model),
                           unlabeled_data=u, seed=3, verbose=False).reg)
    assert runs[0] == runs[1]


@pytest.mark.parametrize("bad, message", [
    (torch.rand(5, 1, 5, 5), r"`unlabeled_data` must be images of the shape of `data`'s"),
    (torch.rand(0, 1, 4, 4), r"`unlabeled_data` must hold at least one image"),
    (torch.full((3, 1, 4, 4), float("nan")), r"`unlabeled_data` must hold finite numbers"),
    (torch.full((3, 1, 4, 4), float("inf")), r"`unlabeled_data` must hold finite numbers"),
    (torch.rand(3, 2, 4, 4), r"`unlabeled_data` must be images of"),
])
def test_bad_unlabeled_data(bad, message):
    x, y = torch.rand(8, 1, 4, 4), torch.randint(0, 3, (8,))
    model = Recorder()
    with pytest.raises(ValueError, match=message):
        eq.fit(model, (x, y), regularizer=_regularizer(model), unlabeled_data=bad, verbose=False)


def test_unlabeled_images_checked_against_the_model_channels():
    model = eq.SimpleCNN()
    reg = eq.EquivarianceRegularizer(model, (1, 28, 28), [(T.identity, T.rot90(1), 0.0, 1.0)])
    with pytest.raises(ValueError, match="`unlabeled_data` must be images of shape"):
        eq.fit(model, (torch.rand(4, 1, 28, 28), torch.zeros(4, dtype=torch.long)),
               regularizer=reg, unlabeled_data=torch.rand(3, 3, 28, 28), verbose=False)


def test_bad_unlabeled_type_and_missing_pieces():
    x, y = torch.rand(8, 1, 4, 4), torch.randint(0, 3, (8,))
    model = Recorder()
    with pytest.raises(TypeError, match="`unlabeled_data` must be images"):
        eq.fit(model, (x, y), regularizer=_regularizer(model), unlabeled_data="x", verbose=False)
    with pytest.raises(ValueError, match='`reg_points = "unlabeled"` needs `unlabeled_data`'):
        eq.fit(model, (x, y), regularizer=_regularizer(model), reg_points="unlabeled",
               verbose=False)
    with pytest.raises(ValueError, match='`unlabeled_data` is only used with `reg_points'):
        eq.fit(model, (x, y), regularizer=_regularizer(model), reg_points="batch",
               unlabeled_data=torch.rand(3, 1, 4, 4), verbose=False)
    with pytest.raises(TypeError, match="`unlabeled_data` needs `regularizer`"):
        eq.fit(model, (x, y), unlabeled_data=torch.rand(3, 1, 4, 4), verbose=False)
    with pytest.raises(ValueError, match="`reg_points` must be"):
        eq.fit(model, (x, y), regularizer=_regularizer(model), reg_points="all", verbose=False)


# -- the label budget ----------------------------------------------------------------------------


def test_balanced_subset_is_balanced_distinct_and_seeded():
    labels = torch.arange(10).repeat_interleave(50)[torch.randperm(500)]
    idx = balanced_subset(labels, 100, seed=1)
    assert idx.numel() == 100 and idx.unique().numel() == 100
    assert torch.bincount(labels[idx], minlength=10).tolist() == [10] * 10
    assert torch.equal(idx, balanced_subset(labels, 100, seed=1))
    assert not torch.equal(idx, balanced_subset(labels, 100, seed=2))
    counts = torch.bincount(labels[balanced_subset(labels, 23, seed=0)], minlength=10)
    assert counts.sum() == 23 and counts.max() - counts.min() == 1
    # a class with too few images gives all it has; the others fill in
    small = torch.cat([torch.zeros(2, dtype=torch.long), torch.ones(50, dtype=torch.long)])
    assert torch.bincount(small[balanced_subset(small, 20, seed=0)]).tolist() == [2, 18]


def test_repeated_cycles_through_the_subset():
    idx = torch.tensor([3, 7, 9, 11])
    order = repeated(idx, 10, seed=0)
    assert order.numel() == 10
    assert sorted(order[:4].tolist()) == [3, 7, 9, 11]
    assert sorted(order[4:8].tolist()) == [3, 7, 9, 11]


@pytest.mark.parametrize("bad", [2.5, "100", True, 5, 600])
def test_bad_labels(bad):
    with pytest.raises(ValueError, match="`labels`"):
        check_labels(bad, 500, 10)


def test_benchmark_with_a_label_budget():
    result = eq.rotation_benchmark(["SimpleCNN+aug", "SimpleCNN+reg"], labels=20, reg_n=8,
                                   **SMALL)
    assert result.settings["labels"] == 20
    aug, reg = result.histories["SimpleCNN+aug"], result.histories["SimpleCNN+reg"]
    # an epoch keeps the length of a full-data epoch: 200 images, batch 64 -> 4 steps
    assert len(aug.loss) == len(reg.loss) == 4
    assert all(r > 0 for r in reg.reg) and all(r == 0 for r in aug.reg)
    for bad in (5, 201, 20.5):
        with pytest.raises(ValueError, match="`labels`"):
            eq.rotation_benchmark(["SimpleCNN"], labels=bad, **SMALL)


def test_warmed_up_regularizer_grows_linearly():
    from equivariance.benchmark_recipe import WarmedUpRegularizer, benchmark_regularizer

    model = eq.C4CNN(widths=(1, 1, 1))
    torch.manual_seed(0)
    plain = eq.SimpleCNN()
    x = torch.rand(4, 1, 28, 28)
    reg = benchmark_regularizer(plain, n=4, lambda_eq=2.0, warmup=4)
    assert isinstance(reg, WarmedUpRegularizer) and "warmup=4" in repr(reg)
    values = []
    for _ in range(6):
        torch.manual_seed(1)
        values.append(float(reg(x).detach()))
    torch.manual_seed(1)
    base = float(reg.__class__.__mro__[1].__call__(reg, x).detach())
    assert values == pytest.approx([base * f for f in (0.25, 0.5, 0.75, 1, 1, 1)], rel=1e-5)
    with torch.no_grad():  # monitoring neither counts nor scales
        torch.manual_seed(1)
        assert float(reg(x)) == pytest.approx(base, rel=1e-5) and reg.calls == 6
    assert not isinstance(benchmark_regularizer(model), WarmedUpRegularizer)
