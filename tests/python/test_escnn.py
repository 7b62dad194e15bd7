"""escnn helpers, and agreement between this package's C4 layers and escnn."""

import numpy as np
import pytest
import torch

import equivariance as eq

escnn = pytest.importorskip("escnn")
em = eq.escnn_models


@pytest.fixture(scope="module")
def gspace():
    return em.rot2d_on_r2(4)


@pytest.fixture(scope="module")
def walkthrough():
    torch.manual_seed(0)
    return em.walkthrough_model().eval()


@pytest.fixture(scope="module")
def classifier():
    torch.manual_seed(0)
    return em.EscnnC4CNN()


def test_group_and_representations(gspace):
    assert str(gspace.fibergroup) == "C4"
    assert str(em.rot2d_on_r2(-1).fibergroup) == "SO(2)"
    elements = em.group_elements(gspace)
    assert [str(e) for e in elements] == [f"{k}[2pi/4]" for k in range(4)]
    irrep1 = em.representation_matrix(gspace, "irrep_1", 1)
    np.testing.assert_allclose(irrep1, [[0, -1], [1, 0]], atol=1e-12)
    assert 0 < abs(irrep1[0, 0]) < 1e-15  # escnn's ~6e-17 rounding is kept
    regular = np.round(em.representation_matrix(gspace, "regular", elements[1]))
    np.testing.assert_array_equal(regular, np.roll(np.eye(4), 1, axis=0))
    sizes = {n: em.representation(gspace, n).size
             for n in ["irrep_0", "irrep_1", "irrep_2", "regular", "trivial"]}
    assert sizes == {"irrep_0": 1, "irrep_1": 2, "irrep_2": 1, "regular": 4, "trivial": 1}


def test_walkthrough_shapes(gspace, walkthrough):
    conv = em.r2_conv(em.field_type(gspace, ["trivial"]),
                      em.field_type(gspace, ["regular"] * 3), kernel_size=3)
    y = conv(em.geometric_tensor(torch.randn(2, 1, 32, 32), conv.in_type))
    assert tuple(y.tensor.shape) == (2, 12, 30, 30)
    out = walkthrough(em.geometric_tensor(torch.randn(1, 1, 17, 17), walkthrough.in_type))
    assert tuple(out.tensor.shape) == (1, 4, 11, 11)
    pooled = em.pointwise_avg_pool(walkthrough.out_type, 11)(out)
    assert tuple(pooled.tensor.shape) == (1, 4, 1, 1)
    invariant = em.group_pooling(walkthrough.out_type)(pooled)
    assert tuple(invariant.tensor.shape) == (1, 1, 1, 1)
    errors = eq.check_equivariance(walkthrough, torch.randn(2, 1, 17, 17))
    assert max(errors) < 1e-4


def test_vander_rotate_then_convolve(gspace):
    conv = em.r2_conv(em.field_type(gspace, "trivial"), em.field_type(gspace, "regular"), 3)
    with torch.no_grad():
        conv.weights.fill_(1)
    x = em.geometric_tensor(torch.vander(torch.arange(0, 4)).view(1, 1, 4, 4).float(),
                            conv.in_type)
    g = em.group_element(gspace, 1)
    turned = x
    for _ in range(4):
        turned = turned.transform(g)
    assert torch.equal(turned.tensor, x.tensor)
    torch.testing.assert_close(conv(x.transform(g)).tensor, conv(x).transform(g).tensor)


@pytest.mark.parametrize("size", [9, 10])
def test_escnn_action_is_rot90(gspace, size):
    x = torch.randn(2, 1, size, size)
    gt = em.geometric_tensor(x, em.field_type(gspace, "trivial"))
    for k, g in enumerate(em.group_elements(gspace)):
        assert torch.equal(gt.transform(g).tensor, torch.rot90(x, k, dims=(-2, -1)))


@pytest.mark.parametrize("size", [9, 10])
def test_our_regular_fields_transform_as_escnn_says(gspace, size):
    lift = eq.C4LiftingConv2d(2, 3, 3, padding=1)
    conv = eq.C4Conv2d(3, 2, 3)
    x = torch.randn(2, 2, size, size)
    with torch.no_grad():
        h = lift(x)
        y = conv(h)
    h_type = em.field_type(gspace, ["regular"] * 3)
    y_type = em.field_type(gspace, ["regular"] * 2)
    for k, g in enumerate(em.group_elements(gspace)):
        with torch.no_grad():
            h_rot = lift(torch.rot90(x, k, dims=(-2, -1)))
            y_rot = conv(em.geometric_tensor(h, h_type).transform(g).tensor)
        torch.testing.assert_close(h_rot, em.geometric_tensor(h, h_type).transform(g).tensor)
        torch.testing.assert_close(y_rot, em.geometric_tensor(y, y_type).transform(g).tensor)
        torch.testing.assert_close(eq.rotate_regular(y, k),
                                   em.geometric_tensor(y, y_type).transform(g).tensor)


def test_our_batch_norm_matches_inner_batch_norm(gspace):
    ours = eq.C4BatchNorm2d(3)
    theirs = em.inner_batch_norm(em.field_type(gspace, ["regular"] * 3))
    x = torch.randn(4, 12, 6, 6) * 2 + 1
    torch.testing.assert_close(ours(x), theirs(em.geometric_tensor(x, theirs.in_type)).tensor)


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("size", [28, 15])
def test_escnn_classifier_is_invariant(classifier, train, size):
    classifier.train(train)
    x = torch.randn(3, 1, size, size)
    assert classifier(x).shape == (3, 10)
    assert max(eq.check_equivariance(classifier, x)) < 1e-4
    n_ours = sum(p.numel() for p in eq.C4CNN().parameters())
    n_escnn = sum(p.numel() for p in classifier.parameters())
    assert 0.5 * n_ours < n_escnn <= n_ours


def test_bad_input(gspace):
    with pytest.raises(ValueError, match="N"):
        em.rot2d_on_r2(2.5)
    with pytest.raises(ValueError, match="reprs"):
        em.field_type(gspace, ["regular", "spin"])
    with pytest.raises(ValueError, match="reprs"):
        em.field_type(gspace, [])
    with pytest.raises(TypeError, match="gspace"):
        em.field_type("C4", ["regular"])
    trivial, regular = em.field_type(gspace, "trivial"), em.field_type(gspace, "regular")
    with pytest.raises(ValueError, match="kernel_size"):
        em.r2_conv(trivial, regular, 0)
    with pytest.raises(ValueError, match="4 channels"):
        em.geometric_tensor(torch.randn(1, 3, 5, 5), regular)
    x = em.geometric_tensor(torch.randn(1, 1, 5, 5), trivial)
    with pytest.raises(ValueError, match="field type"):
        em.geometric_tensor(x, regular)
    with pytest.raises(ValueError, match="field type"):
        em.forward(em.r2_conv(regular, regular, 3), x)
    with pytest.raises(ValueError, match="field type"):
        eq.check_equivariance(em.r2_conv(regular, regular, 3), x)
    with pytest.raises(ValueError, match="element"):
        em.representation_matrix(gspace, "regular", 0.5)
    with pytest.raises(ValueError, match="infinitely"):
        em.group_elements(em.rot2d_on_r2(-1))
    with pytest.raises(ValueError, match="x"):
        em.EscnnC4CNN()(torch.randn(1, 3, 8, 8))
