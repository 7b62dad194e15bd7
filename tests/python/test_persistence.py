"""Tests of equivariance.save_model / load_model (persistence.py)."""

import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import equivariance as eq
import pytest
import torch
from equivariance import _registry, persistence
from torch import nn

INST_PYTHON = Path(__file__).resolve().parents[2] / "inst" / "python"
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def trained(model: nn.Module, side: int = 9) -> nn.Module:
    """Move the running statistics away from their initial values, as training does."""
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.rand(4, 1, side, side) * 3)
    return model


def states_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(
        torch.equal(sa[k], sb[k]) and sa[k].dtype == sb[k].dtype for k in sa)


def roundtrip(model: nn.Module, tmp_path: Path, **kwargs) -> nn.Module:
    path = tmp_path / "model.pt"
    eq.save_model(model, path)
    return eq.load_model(path, **kwargs)


def test_the_package_models_are_registered_under_their_public_names():
    public = {"SimpleCNN", "EqCNN", "GroupCNN", "C4CNN", "D4CNN", "C4LiftingConv2d", "C4Conv2d",
              "C4BatchNorm2d", "C4GroupPool", "C4MaxPool2d", "C4InvariantLinear", "GroupMap",
              "LayerMap", "InstanceMap", "GroupLiftingConv2d", "GroupConv2d",
              "GroupBatchNorm2d", "GroupPool", "GroupMaxPool2d", "GroupInvariantLinear",
              "D4LiftingConv2d", "D4Conv2d", "D4BatchNorm2d", "D4GroupPool", "D4MaxPool2d"}
    assert public <= set(_registry.REGISTRY)
    for name in public:
        assert _registry.REGISTRY[name] is getattr(eq, name)
        assert _registry.public_name(getattr(eq, name)) == name


@pytest.mark.parametrize("make", [
    lambda: eq.SimpleCNN(widths=(2, 3, 4), padding="same"),
    lambda: eq.EqCNN(widths=(2, 3, 4), padding="same"),
    lambda: eq.C4CNN(widths=(2, 2, 3), kernel_size=3),
    lambda: eq.C4LiftingConv2d(1, 2, 3, padding=1),
    lambda: eq.GroupMap(1, 1, target="uniform", track_running_stats=True),
    lambda: eq.LayerMap((1, 9, 9), track_running_stats=True, num_knots=9),
])
def test_package_models_come_back_with_weights_buffers_and_predictions(make, tmp_path):
    model = trained(make())
    model.class_names = [f"class {i}" for i in range(10)]
    x = torch.rand(3, 1, 9, 9)
    model.eval()
    with torch.no_grad():
        expected = model(x)
    loaded = roundtrip(model, tmp_path)
    assert type(loaded) is type(model) and loaded is not model
    assert states_equal(loaded, model)
    assert loaded.class_names == model.class_names
    with torch.no_grad():
        assert torch.equal(loaded(x), expected)


def test_quantile_map_running_statistics_are_kept(tmp_path):
    model = trained(eq.InstanceMap(1, track_running_stats=True, num_knots=9))
    assert int(model.num_batches_tracked) == 2
    loaded = roundtrip(model, tmp_path)
    assert int(loaded.num_batches_tracked) == 2
    assert torch.equal(loaded.running_quantiles, model.running_quantiles)


def test_the_escnn_model_comes_back(tmp_path):
    from equivariance.escnn_models import EscnnC4CNN

    model = trained(EscnnC4CNN(widths=(2, 2, 2)))
    x = torch.rand(2, 1, 9, 9)
    expected = eq.predict(model, x, type="logits")
    loaded = roundtrip(model, tmp_path)
    assert type(loaded) is EscnnC4CNN and loaded.training
    assert torch.equal(eq.predict(loaded, x, type="logits"), expected)


def test_training_flags_and_dtype_are_kept(tmp_path):
    model = eq.C4CNN(widths=(2, 2, 2)).double()
    model.train()
    model.features[1].eval()
    loaded = roundtrip(model, tmp_path)
    assert [m.training for m in loaded.modules()] == [m.training for m in model.modules()]
    assert next(loaded.parameters()).dtype == torch.float64
    model.eval()
    assert not roundtrip(model, tmp_path).training


def test_saving_and_loading_leave_the_random_stream_alone(tmp_path):
    model = eq.C4CNN(widths=(2, 2, 2))
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    roundtrip(model, tmp_path)
    assert torch.equal(torch.rand(3), expected)


def test_a_new_process_predicts_exactly_the_same(tmp_path):
    model = trained(eq.C4CNN(widths=(2, 2, 3)))
    model.class_names = list("abcdefghij")
    x = torch.rand(4, 1, 9, 9)
    eq.save_model(model, tmp_path / "model.pt")
    torch.save(x, tmp_path / "x.pt")
    script = (
        "import sys, torch; sys.path.insert(0, sys.argv[1]); import equivariance as eq; "
        "m = eq.load_model(sys.argv[2]); x = torch.load(sys.argv[3]); "
        "torch.save({'logits': eq.predict(m, x, type='logits'), "
        "'names': eq.predict(m, x, type='class', names=True)}, sys.argv[4])"
    )
    subprocess.run([sys.executable, "-c", script, str(INST_PYTHON), str(tmp_path / "model.pt"),
                    str(tmp_path / "x.pt"), str(tmp_path / "out.pt")], check=True, timeout=120)
    out = torch.load(tmp_path / "out.pt")
    assert torch.equal(out["logits"], eq.predict(model, x, type="logits"))
    assert out["names"] == eq.predict(model, x, type="class", names=True)


def test_a_users_module_is_saved_with_its_weights(tmp_path):
    def make():
        return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.LazyLinear(3))

    model = make()
    model(torch.rand(2, 1, 5, 5))
    model.class_names = ["x", "y", "z"]
    path = tmp_path / "mine.pt"
    eq.save_model(model, path)
    with pytest.raises(ValueError, match="holds the weights of a Sequential but not its "
                                         "architecture.*pass it as `model`"):
        eq.load_model(path)
    target = make()
    target(torch.rand(2, 1, 5, 5))
    target.train()
    assert eq.load_model(path, model=target) is target
    assert states_equal(target, model) and target.training
    assert target.class_names == ["x", "y", "z"]
    other = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(18, 4))
    before = {k: v.clone() for k, v in other.state_dict().items()}
    other.train()
    with pytest.raises(ValueError, match=r"`model` does not match the weights in .*: "
                                         r"3.weight is \(3, 18\) in the file, \(4, 18\)"):
        eq.load_model(path, model=other)
    # nothing half-loaded, and the modes as they were
    assert all(torch.equal(v, other.state_dict()[k]) for k, v in before.items())
    assert all(m.training for m in other.modules())
    with pytest.raises(ValueError, match="missing weight; missing bias; unexpected 0.weight"):
        eq.load_model(path, model=nn.Linear(2, 2))
    with pytest.raises(TypeError, match="`model` must be None or a torch nn.Module"):
        eq.load_model(path, model="Sequential")


def test_subclasses_and_changed_models_are_saved_with_weights_only(tmp_path):
    class Mine(eq.SimpleCNN):
        pass

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a user's class is saved quietly
        eq.save_model(Mine(widths=(2, 2, 2)), tmp_path / "mine.pt")
    with pytest.raises(ValueError, match="Mine is not one of the package's models"):
        eq.load_model(tmp_path / "mine.pt")
    changed = eq.SimpleCNN(widths=(2, 2, 2))
    changed.head = nn.Linear(2, 5)
    with pytest.warns(UserWarning, match="weights no longer match"):
        eq.save_model(changed, tmp_path / "changed.pt")
    loaded = eq.load_model(tmp_path / "changed.pt", model=changed)
    assert loaded is changed
    with pytest.warns(UserWarning, match="argument target is a function"):
        eq.save_model(eq.GroupMap(1, 2, target=lambda q: q), tmp_path / "fn.pt")


def test_loading_runs_no_code_from_the_file(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    contents = persistence._contents(eq.SimpleCNN(), None, "test")
    contents["class_names"] = Payload()
    torch.save(contents, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="is not a model file saved by save_model.*Python "
                                         "objects .*could run any code"):
        eq.load_model(tmp_path / "evil.pt")
    assert not marker.exists()


def test_an_architecture_naming_another_class_is_refused(tmp_path):
    contents = persistence._contents(eq.SimpleCNN(), None, "test")
    contents["architecture"] = {"class": "os.system", "arguments": {"command": "echo hi"}}
    torch.save(contents, tmp_path / "odd.pt")
    with pytest.raises(ValueError, match="names class 'os.system', which this version"):
        eq.load_model(tmp_path / "odd.pt")


def test_bad_files_are_clear_errors(tmp_path):
    missing = tmp_path / "missing.pt"
    with pytest.raises(ValueError, match="`path` .*missing.pt' does not exist"):
        eq.load_model(missing)
    with pytest.raises(ValueError, match="must be a file, got the folder"):
        eq.load_model(tmp_path)
    good = tmp_path / "good.pt"
    eq.save_model(eq.SimpleCNN(widths=(2, 2, 2)), good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated.pt' is damaged or truncated"):
        eq.load_model(truncated)
    text = tmp_path / "notes.txt"
    text.write_text("not a model\n")
    with pytest.raises(ValueError, match="notes.txt' is not a model file"):
        eq.load_model(text)
    plain = tmp_path / "plain.pt"
    torch.save(nn.Linear(2, 2).state_dict(), plain)
    with pytest.raises(ValueError, match="holds the weights of a model but not its architecture "
                                         ".a state dict: weights only.: build the model"):
        eq.load_model(plain)
    into = eq.load_model(plain, model=nn.Linear(2, 2))  # weights only, into a model
    assert torch.equal(into.weight, torch.load(plain, weights_only=True)["weight"])


def test_a_file_from_a_newer_version_is_refused(tmp_path):
    contents = persistence._contents(eq.SimpleCNN(), None, "test")
    contents["format_version"] = persistence.FORMAT_VERSION + 1
    torch.save(contents, tmp_path / "newer.pt")
    with pytest.raises(ValueError, match="saved by a newer version of equivariance .file "
                                         "format 2; .* update the package"):
        eq.load_model(tmp_path / "newer.pt")


def test_state_that_is_not_a_tensor_is_refused(tmp_path):
    class Extra(nn.Linear):
        def get_extra_state(self):
            return {"note": object()}

    with pytest.raises(ValueError, match="`model` has state that is not a tensor .'_extra_state'"):
        eq.save_model(Extra(2, 2), tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()


def test_bad_paths(tmp_path):
    model = eq.SimpleCNN(widths=(2, 2, 2))
    with pytest.raises(ValueError, match="`path` is in a folder that does not exist"):
        eq.save_model(model, tmp_path / "no" / "model.pt")
    with pytest.raises(ValueError, match="`path` must be a file, got the folder"):
        eq.save_model(model, tmp_path)
    with pytest.raises(TypeError, match="`path` must be a file path"):
        eq.save_model(model, 3)
    with pytest.raises(TypeError, match="`path` must be a file path"):
        eq.load_model(None)
    with pytest.raises(TypeError, match="`model` must be a torch nn.Module"):
        eq.save_model({"weights": 1}, tmp_path / "x.pt")


def test_an_interrupted_save_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    eq.save_model(eq.SimpleCNN(widths=(2, 2, 2)), path)
    before = path.read_bytes()

    def interrupted(obj, f):
        f.write(b"PK\x03\x04 half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(persistence.torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        eq.save_model(eq.SimpleCNN(widths=(3, 3, 3)), path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.pt"]  # no temporary file left behind


def test_saving_replaces_a_file_and_expands_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    first = eq.SimpleCNN(widths=(2, 2, 2))
    second = eq.SimpleCNN(widths=(3, 3, 3))
    assert eq.save_model(first, "~/m.pt") == str(tmp_path / "m.pt")
    eq.save_model(second, "~/m.pt")
    assert states_equal(eq.load_model("~/m.pt"), second)


@pytest.mark.parametrize("device", DEVICES)
def test_map_location(device, tmp_path):
    model = eq.C4CNN(widths=(2, 2, 2))
    loaded = roundtrip(model, tmp_path, map_location=device)
    assert all(t.device.type == device for t in list(loaded.parameters()) + list(loaded.buffers()))
    x = torch.rand(2, 1, 9, 9)
    assert torch.allclose(eq.predict(loaded, x), eq.predict(model, x), atol=1e-5)


def test_map_location_without_cuda(tmp_path, monkeypatch):
    eq.save_model(eq.SimpleCNN(widths=(2, 2, 2)), tmp_path / "m.pt")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="`map_location` is 'cuda' but CUDA is not available"):
        eq.load_model(tmp_path / "m.pt", map_location="cuda")


def test_recorded_arguments_are_plain_values():
    model = eq.GroupMap(1, 2, dtype=torch.float64, device=torch.device("cpu"))
    cls, arguments = _registry.recorded(model)
    assert cls is eq.GroupMap
    assert arguments["num_groups"] == 1 and arguments["target"] == "gaussian"
    assert arguments["dtype"] == {"__dtype__": "float64"} and arguments["device"] is None
    assert _registry.decode(arguments["dtype"]) is torch.float64
    assert pickle.loads(pickle.dumps(arguments)) == arguments


def test_a_file_with_unknown_arguments_is_refused(tmp_path):
    model = eq.SimpleCNN(widths=(2, 2, 2))
    arch, _ = persistence.architecture(model)
    arch["arguments"]["colour"] = "blue"
    torch.save(persistence._contents(model, arch, None), tmp_path / "m.pt")
    with pytest.raises(ValueError, match=r"SimpleCNN has no argument\(s\) \['colour'\]"):
        eq.load_model(tmp_path / "m.pt")
    arch["arguments"].pop("colour")
    arch["arguments"]["widths"] = [0, 1, 1]
    torch.save(persistence._contents(model, arch, None), tmp_path / "m.pt")
    with pytest.raises(ValueError, match="cannot build a SimpleCNN from the arguments.*widths"):
        eq.load_model(tmp_path / "m.pt")
