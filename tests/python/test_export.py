"""export_model and save_onnx: plain torch networks that compute what the models do."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings

import equivariance as eq
import pytest
import torch
from torch import nn

CLASSES = [f"class {i}" for i in range(10)]
SHAPE = (1, 28, 28)


def _trained_stats(model: nn.Module) -> nn.Module:
    """Batch-norm running statistics away from 0 / 1 (a few training-mode passes)."""
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(8, *SHAPE) * 2)
    model.eval()
    model.class_names = list(CLASSES)
    model.input_shape = SHAPE
    return model


def _build(name: str) -> nn.Module:
    if name == "EscnnC4CNN":
        return eq.escnn_models.EscnnC4CNN(widths=(4, 4, 6))
    if name == "EscnnD4CNN":
        return eq.escnn_models.EscnnCNN(N=4, flips=True, widths=(2, 2, 3))
    return getattr(eq, name)()


MODELS = ["SimpleCNN", "EqCNN", "C4CNN", "D4CNN", "EscnnC4CNN", "EscnnD4CNN"]


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    """Real images: the Fashion-MNIST subset shipped with the package."""
    return eq.load_fashion_mnist("test", root="subset", limit=64).tensors[0]


@pytest.fixture(scope="module", params=MODELS)
def pair(request):
    torch.manual_seed(1)
    model = _trained_stats(_build(request.param))
    return model, eq.export_model(model)


def _logits(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return module(x)


def test_the_exported_network_computes_the_models_logits(pair, images):
    model, net = pair
    for x in (torch.rand(17, *SHAPE), images):
        torch.testing.assert_close(_logits(net, x), _logits(model, x), rtol=0, atol=1e-5)


def test_the_exported_network_holds_only_torch_classes(pair):
    _, net = pair
    owners = {type(m).__module__ for m in net.modules()}
    assert all(owner.startswith("torch.") for owner in owners), owners
    assert not any("equivariance" in str(node.target) or "escnn" in str(node.target)
                   for node in net.graph.nodes)


def test_the_exported_network_is_in_eval_mode_and_keeps_names_and_input_shape(pair):
    _, net = pair
    assert not any(m.training for m in net.modules())
    assert net.class_names == CLASSES and net.input_shape == SHAPE
    assert eq.read_metadata(net) == {"class_names": CLASSES, "input_shape": SHAPE}


def test_torchscript_and_torch_export_accept_the_exported_network(pair, images):
    _, net = pair
    x = images[:5]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's own note on GraphModule attributes
        scripted = torch.jit.script(net)
    torch.testing.assert_close(_logits(scripted, x), _logits(net, x), rtol=0, atol=1e-6)
    assert scripted.class_names == CLASSES
    program = torch.export.export(net, (x,))
    torch.testing.assert_close(_logits(program.module(), x), _logits(net, x), rtol=0, atol=1e-6)
    assert eq.read_metadata(program.module())["class_names"] == CLASSES


def test_batch_norm_is_folded_into_the_convolutions():
    model = _trained_stats(eq.C4CNN())
    net = eq.export_model(model)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 3 and all(isinstance(m, nn.MaxPool2d) for m in net.modules()
                                   if "Pool" in type(m).__name__)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_the_model_is_left_in_its_mode_and_unchanged(mode):
    model = _trained_stats(eq.D4CNN())
    model.train(mode == "train")
    model.head.eval()  # a mixed state is kept too
    modes = [m.training for m in model.modules()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    eq.export_model(model)
    assert [m.training for m in model.modules()] == modes
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_a_module_of_ones_own_with_group_layers_is_exported():
    mine = nn.Sequential(
        eq.C4LiftingConv2d(1, 3, 5, padding=2), eq.C4BatchNorm2d(3), nn.ReLU(),
        eq.C4MaxPool2d(), eq.C4Conv2d(3, 2, 3, bias=False),
        eq.C4BatchNorm2d(2, track_running_stats=False), eq.C4GroupPool("mean"),
        nn.Flatten(), nn.LazyLinear(4),
    )
    mine.train()
    with torch.no_grad():
        mine(torch.rand(8, 1, 27, 27) * 2)  # odd sides: 3-wide pooling windows
    mine.eval()
    x = torch.rand(3, 1, 27, 27)
    net = eq.export_model(mine)  # no input shape: the pools stay parity-aware
    assert net.input_shape is None and net.class_names is None
    torch.testing.assert_close(_logits(net, x), _logits(mine, x), rtol=0, atol=1e-5)
    fixed = eq.export_model(mine, input_shape=(1, 27, 27))
    assert any(isinstance(m, nn.MaxPool2d) for m in fixed.modules())
    torch.testing.assert_close(_logits(fixed, x), _logits(mine, x), rtol=0, atol=1e-5)


def test_a_layer_the_exporter_does_not_know_is_named():
    mine = nn.Sequential(nn.Conv2d(1, 4, 3), eq.GroupMap(2, 4), nn.Flatten())
    with pytest.raises(TypeError, match=r"quantile map `1` \(GroupMap\), which cannot be "
                                        r"exported: it normalizes each sample"):
        eq.export_model(mine)
    mine[1] = eq.GroupMap(2, 4, track_running_stats=True)
    with pytest.raises(eq.ExportError, match=r"`1` \(GroupMap\).*running quantiles"):
        eq.export_model(mine)
    escnn_layer = eq.escnn_models.r2_conv(
        eq.escnn_models.field_type(eq.escnn_models.rot2d_on_r2(4), ["trivial"]),
        eq.escnn_models.field_type(eq.escnn_models.rot2d_on_r2(4), ["regular"]), 3)
    mine = nn.Sequential(nn.Identity(), nn.Sequential(escnn_layer))
    with pytest.raises(TypeError, match=r"does not know: `1\.0` \(escnn\.nn.*R2Conv\)"):
        eq.export_model(mine)


def test_bad_arguments_of_export_model():
    with pytest.raises(TypeError, match="`model` must be a torch nn.Module"):
        eq.export_model("C4CNN")
    with pytest.raises(ValueError, match=r"`input_shape` \(1, 2, 2\) does not fit the model"):
        eq.export_model(eq.SimpleCNN(), input_shape=(1, 2, 2))
    with pytest.raises(ValueError, match="`input_shape` must be"):
        eq.export_model(eq.SimpleCNN(), input_shape=(1, 0, 28))


# -- ONNX ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["SimpleCNN", "EqCNN", "C4CNN", "D4CNN", "EscnnC4CNN"])
def test_onnx_runtime_gives_pytorchs_logits_at_batch_1_and_17(name, tmp_path, images):
    import onnx
    import onnxruntime as ort

    torch.manual_seed(2)
    model = _trained_stats(_build(name))
    path = eq.save_onnx(model, tmp_path / "model.onnx")
    assert path == str(tmp_path / "model.onnx")
    proto = onnx.load(path)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["class_names"]) == CLASSES
    assert json.loads(meta["input_shape"]) == list(SHAPE)
    batch = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param and not batch.HasField("dim_value")  # a dynamic batch
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    for x in (images[:1], images[1:18], torch.rand(17, *SHAPE)):
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
        torch.testing.assert_close(torch.from_numpy(got), _logits(model, x), rtol=0, atol=1e-4)
    assert model.training is False and [p.key for p in proto.metadata_props][:2] == [
        "class_names", "input_shape"]


def test_the_torchscript_based_onnx_exporter_accepts_the_group_networks(tmp_path):
    import onnxruntime as ort

    net = eq.export_model(_trained_stats(eq.C4CNN()))
    x = torch.rand(3, *SHAPE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), str(tmp_path / "legacy.onnx"), dynamo=False,
                          input_names=["images"])
    session = ort.InferenceSession(str(tmp_path / "legacy.onnx"),
                                   providers=["CPUExecutionProvider"])
    got = session.run(None, {"images": x.numpy()})[0]
    torch.testing.assert_close(torch.from_numpy(got), _logits(net, x), rtol=0, atol=1e-4)


def test_save_onnx_names_the_extra_when_a_package_is_missing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import onnxscript fails
    with pytest.raises(ImportError, match=r"missing: onnxscript.*equivariance\[onnx\]"):
        eq.save_onnx(eq.C4CNN(), tmp_path / "m.onnx", input_shape=SHAPE)
    assert not (tmp_path / "m.onnx").exists()


def test_save_onnx_checks_the_path_first(tmp_path):
    missing = tmp_path / "no such folder" / "m.onnx"
    with pytest.raises(ValueError, match="`path` is in a folder that does not exist: .*no such"):
        eq.save_onnx(eq.C4CNN(), missing, input_shape=SHAPE)
    with pytest.raises(ValueError, match="`path` must be a file, got the folder"):
        eq.save_onnx(eq.C4CNN(), tmp_path, input_shape=SHAPE)
    with pytest.raises(TypeError, match="`path` must be a file path"):
        eq.save_onnx(eq.C4CNN(), 3, input_shape=SHAPE)


def test_save_onnx_needs_an_input_shape(tmp_path):
    with pytest.raises(ValueError, match="`input_shape` is needed"):
        eq.save_onnx(eq.C4CNN(), tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


# -- loading without the package -------------------------------------------------------------


LOADER = textwrap.dedent("""
    import json, sys
    sys.modules["equivariance"] = None  # an import of the package would fail
    sys.modules["escnn"] = None
    import torch
    folder, x = sys.argv[1], torch.load(sys.argv[1] + "/x.pt")
    program = torch.export.load(folder + "/net.pt2").module()
    pickled = torch.load(folder + "/net.pt", weights_only=False)
    scripted = torch.jit.load(folder + "/net.ts")
    names = json.loads(bytes(program.meta_class_names.tolist()).decode("utf-8"))
    out = {"export": program(x).argmax(1).tolist(), "pickle": pickled(x).argmax(1).tolist(),
           "script": scripted(x).argmax(1).tolist(), "names": names,
           "attr": [pickled.class_names, list(scripted.class_names)],
           "shape": [list(pickled.input_shape), program.meta_input_shape.tolist()]}
    print(json.dumps(out))
""")


@pytest.mark.parametrize("name", ["D4CNN", "EscnnC4CNN"])
def test_a_python_with_only_torch_loads_the_network_and_predicts_the_same(name, tmp_path, images):
    torch.manual_seed(3)
    model = _trained_stats(_build(name))
    net = eq.export_model(model)
    torch.save(images, tmp_path / "x.pt")
    torch.export.save(torch.export.export(net, (images,)), tmp_path / "net.pt2")
    torch.save(net, tmp_path / "net.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(net).save(str(tmp_path / "net.ts"))
    run = subprocess.run([sys.executable, "-c", LOADER, str(tmp_path)], check=False,
                         capture_output=True, text=True, cwd=tmp_path,
                         env={"PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout.strip().splitlines()[-1])
    want = _logits(model, images).argmax(1).tolist()
    assert out["export"] == out["pickle"] == out["script"] == want
    assert out["names"] == CLASSES and out["attr"] == [CLASSES, CLASSES]
    assert out["shape"] == [list(SHAPE), list(SHAPE)]
