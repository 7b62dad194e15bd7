"""escnn helpers, and agreement between this package's C4 layers and escnn."""

import equivariance as eq
import numpy as np
import pytest
import torch

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


# ---------------------------------------------------------------- D4, C_N, SO(2)


@pytest.fixture(scope="module")
def d4_gspace():
    return em.flip_rot2d_on_r2(4)


def test_d4_group_data_is_escnns(d4_gspace):
    from equivariance.groups import D4

    elements = em.group_elements(d4_gspace)
    assert len(elements) == 8
    index = {str(e): i for i, e in enumerate(elements)}
    cayley = [[index[str(a @ b)] for b in elements] for a in elements]
    assert D4.cayley.tolist() == cayley
    x = torch.randn(2, 1, 5, 6)
    gt = em.geometric_tensor(x, em.field_type(d4_gspace, "trivial"))
    for i, g in enumerate(elements):
        assert torch.equal(gt.transform(g).tensor, eq.groups.group.grid_transform(x, i, D4))
        regular = em.representation_matrix(d4_gspace, "regular", g)
        np.testing.assert_allclose(regular[:, 0], np.eye(8)[:, cayley[i][0]], atol=1e-9)


@pytest.mark.parametrize("size", [9, 10])
def test_our_d4_fields_transform_as_escnn_says(d4_gspace, size):
    """Our D4 layers' outputs, transformed by each element, equal escnn's transform."""
    lift = eq.D4LiftingConv2d(2, 3, 3, padding=1)
    conv = eq.D4Conv2d(3, 2, 3)
    x = torch.randn(2, 2, size, size)
    h_type = em.field_type(d4_gspace, ["regular"] * 3)
    y_type = em.field_type(d4_gspace, ["regular"] * 2)
    with torch.no_grad():
        h = lift(x)
        y = conv(h)
        x_gt = em.geometric_tensor(x, em.field_type(d4_gspace, ["trivial"] * 2))
        for i, g in enumerate(em.group_elements(d4_gspace)):
            h_escnn = em.geometric_tensor(h, h_type).transform(g).tensor
            torch.testing.assert_close(lift(x_gt.transform(g).tensor), h_escnn)
            torch.testing.assert_close(conv(h_escnn), em.geometric_tensor(y, y_type)
                                       .transform(g).tensor)
            torch.testing.assert_close(eq.regular_transform(y, i, "D4"),
                                       em.geometric_tensor(y, y_type).transform(g).tensor)


def test_our_d4_batch_norm_matches_inner_batch_norm(d4_gspace):
    ours = eq.D4BatchNorm2d(2)
    theirs = em.inner_batch_norm(em.field_type(d4_gspace, ["regular"] * 2))
    x = torch.randn(3, 16, 4, 4) * 2 + 1
    torch.testing.assert_close(ours(x), theirs(em.geometric_tensor(x, theirs.in_type)).tensor)


@pytest.mark.parametrize("N,flips,order", [(8, False, 8), (3, True, 6), (1, True, 2)])
def test_gspaces_layers_and_pooling_for_any_finite_group(N, flips, order):
    gspace = (em.flip_rot2d_on_r2 if flips else em.rot2d_on_r2)(N)
    assert gspace.fibergroup.order() == order
    regular = em.field_type(gspace, ["regular"] * 2)
    model = em.sequential(em.r2_conv(em.field_type(gspace, "trivial"), regular, 3),
                          em.inner_batch_norm(regular), em.relu(regular),
                          em.group_pooling(regular))
    out = em.forward(model.eval(), torch.randn(2, 1, 7, 7))
    assert tuple(out.tensor.shape) == (2, 2, 5, 5)
    assert out.type.size == 2 and em.representation(gspace, "regular").size == order


def test_so2_fields_with_norm_layers():
    gspace = em.rot2d_on_r2(-1, maximum_frequency=2)
    assert str(gspace.fibergroup) == "SO(2)"
    assert em.representation(gspace, "irrep_2").size == 2
    hidden = em.field_type(gspace, ["irrep_0", "irrep_1", "irrep_2"])
    model = em.sequential(em.r2_conv(em.field_type(gspace, "trivial"), hidden, 5, padding=2),
                          em.iid_batch_norm(hidden), em.norm_nonlinearity(hidden),
                          em.norm_pool(hidden)).eval()
    x = torch.randn(2, 1, 9, 9)
    y = em.forward(model, x).tensor
    assert tuple(y.shape) == (2, 3, 9, 9)
    # norms of the fields are invariant under quarter turns (exact on the grid)
    turned = em.forward(model, torch.rot90(x, 1, dims=(-2, -1))).tensor
    torch.testing.assert_close(turned, torch.rot90(y, 1, dims=(-2, -1)), atol=1e-4, rtol=1e-4)
    o2 = em.flip_rot2d_on_r2(-1, maximum_frequency=2)
    assert str(o2.fibergroup) == "O(2)"
    assert em.representation(o2, "irrep_1,5").size == 2  # built on demand
    with pytest.raises(ValueError, match="iid_batch_norm"):
        em.inner_batch_norm(hidden)
    with pytest.raises(ValueError, match="norm_nonlinearity"):
        em.relu(hidden)
    with pytest.raises(ValueError, match="norm_pool"):
        em.group_pooling(hidden)


@pytest.mark.parametrize("N,flips", [(8, False), (4, True)])
def test_escnn_cnn_for_c8_and_d4(N, flips):
    net = em.EscnnCNN(N=N, flips=flips, widths=(2, 2, 3))
    x = torch.randn(2, 1, 11, 11)
    assert net(x).shape == (2, 10)
    group = "D4" if flips else "C4"
    assert max(eq.check_equivariance_group(net, x, group=group).values()) < 1e-4
    # default widths keep C4CNN's channel counts: 4 fields of 8 channels = 8 of 4
    assert em.EscnnCNN(N=N, flips=flips).blocks[0].out_type.size == 32


def test_escnn_c4_cnn_is_escnn_cnn_with_n_4(classifier):
    assert isinstance(classifier, em.EscnnCNN)
    assert classifier.blocks[0].out_type.size == 32
    assert list(classifier.state_dict())[-2:] == ["head.linear.weight", "head.linear.bias"]


def test_bad_group_arguments():
    for bad in (0, 2.5, -2):
        with pytest.raises(ValueError, match="`N`"):
            em.flip_rot2d_on_r2(bad)
    with pytest.raises(ValueError, match="`maximum_frequency`"):
        em.rot2d_on_r2(-1, maximum_frequency=0)
    with pytest.raises(ValueError, match="`N`.*finite"):
        em.EscnnCNN(N=-1)
    with pytest.raises(TypeError, match="`flips`"):
        em.EscnnCNN(N=4, flips="TRUE")
    with pytest.raises(ValueError, match="`kernel_size`"):
        em.EscnnCNN(N=4, kernel_size=2)
    with pytest.raises(ValueError, match="`fn`"):
        em.norm_nonlinearity(em.field_type(em.rot2d_on_r2(4), "regular"), fn="relu")
