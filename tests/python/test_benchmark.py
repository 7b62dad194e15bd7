"""Tests for equivariance.benchmark (the rotated Fashion-MNIST benchmark)."""

import csv

import equivariance as eq
import pytest
import torch
from equivariance import benchmark as B
from torch import nn

SMALL = dict(epochs=1, batch_size=64, root="subset", limit=128, test_limit=100, verbose=False)


def test_builtin_models_respect_the_parameter_budget():
    counts = {name: sum(p.numel() for p in B.benchmark_model(name).parameters())
              for name in B.MODEL_NAMES}
    assert all(count <= 14000 for count in counts.values()), counts
    # the regularized model is the plain one, the EqCNN shares its filters
    assert counts["SimpleCNN"] == counts["SimpleCNN+reg"] == counts["EqCNN"]
    assert isinstance(B.benchmark_model("C4CNN"), eq.C4CNN)


def test_table_rows_columns_and_invariance(capsys):
    result = eq.rotation_benchmark(["SimpleCNN", "C4CNN"], **SMALL)
    assert capsys.readouterr().out == ""
    assert [r["model"] for r in result.rows] == ["SimpleCNN", "C4CNN"]
    assert result.columns == ["model", "parameters", "seconds_per_epoch", "accuracy_0",
                              "accuracy_90", "accuracy_180", "accuracy_270", "invariance_error",
                              "agreement"]
    simple, c4 = result.rows
    for row in result.rows:
        assert 0.0 <= min(row[f"accuracy_{d}"] for d in (0, 90, 180, 270)) <= 1.0
        assert row["seconds_per_epoch"] > 0
        assert row["parameters"] == sum(p.numel() for p in result.models[row["model"]].parameters())
    # the C4 network is exactly invariant: same accuracy at every angle
    assert c4["invariance_error"] < 1e-4
    assert c4["agreement"] == 1.0 and 0.0 <= simple["agreement"] < 1.0
    assert len({c4[f"accuracy_{d}"] for d in (0, 90, 180, 270)}) == 1
    assert simple["invariance_error"] > 1e-3
    assert result.settings["train_size"] == 128 and result.settings["test_size"] == 100
    assert result.settings["source"] == "subset"
    assert len(result.histories["C4CNN"].loss) == 2
    assert "C4CNN" in str(result) and "acc@90" in str(result) and "agree%" in str(result)


def test_seeded_runs_repeat():
    a = eq.rotation_benchmark(["SimpleCNN"], seed=3, **SMALL)
    b = eq.rotation_benchmark(["SimpleCNN"], seed=3, **SMALL)
    assert a.histories["SimpleCNN"].loss == b.histories["SimpleCNN"].loss
    assert a.rows[0]["accuracy_90"] == b.rows[0]["accuracy_90"]


def test_regularized_model_trains_with_the_regularizer():
    result = eq.rotation_benchmark(["SimpleCNN+reg"], reg_n=16, reg_lambda=2.0, **SMALL)
    history = result.histories["SimpleCNN+reg"]
    assert history.reused_outputs and all(r > 0 for r in history.reg)
    plain = eq.rotation_benchmark(["SimpleCNN"], **SMALL).histories["SimpleCNN"]
    assert all(r == 0 for r in plain.reg)


def test_benchmark_regularizer_transforms():
    model = B.benchmark_model("SimpleCNN")
    reg = B.benchmark_regularizer(model, n=8, num_funcs=2, lambda_eq=0.5)
    assert reg.n == 8 and reg.num_funcs == 2 and len(reg.transforms) == 3
    assert all(t.lambda_eq == 0.5 and t.epsilon == 0.0 for t in reg.transforms)
    # the regularized row differs from the augmented one by the term only
    assert reg.dist == "kl_logits"
    assert "SimpleCNN+reg" in B.AUGMENTED and "SimpleCNN+aug" in B.AUGMENTED
    assert B.REGULARIZED == ("SimpleCNN+reg",)
    # an invariant model has no error under any of the three rotations
    invariant = B.benchmark_regularizer(B.benchmark_model("C4CNN").eval())
    assert float(invariant.errors(torch.rand(4, 1, 28, 28)).max()) < 1e-4


def test_custom_models_and_csv(tmp_path):
    def make():
        torch.manual_seed(0)
        return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))

    given = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))
    path = tmp_path / "table.csv"
    result = eq.rotation_benchmark({"linear": make, "given": given, "c4": "C4CNN"}, csv=path,
                                   rotations=(0, 1), **SMALL)
    assert result.models["given"] is given
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["model"] for r in rows] == ["linear", "given", "c4"]
    assert list(rows[0]) == ["model", "parameters", "seconds_per_epoch", "accuracy_0",
                             "accuracy_90", "invariance_error", "agreement"]
    assert int(rows[0]["parameters"]) == 28 * 28 * 10 + 10
    assert float(rows[2]["accuracy_90"]) == pytest.approx(result.rows[2]["accuracy_90"])


def test_escnn_model_in_the_table():
    pytest.importorskip("escnn")
    result = eq.rotation_benchmark(["EscnnC4CNN"], **{**SMALL, "limit": 64, "test_limit": 40})
    assert result.rows[0]["invariance_error"] < 1e-4


D4_LABELS = ["0", "90", "180", "270", "flip_0", "flip_90", "flip_180", "flip_270"]


def test_d4_rows_are_extra_and_within_the_budget():
    assert not set(B.EXTRA_MODEL_NAMES) & set(B.MODEL_NAMES)
    d4 = B.benchmark_model("D4CNN")
    assert isinstance(d4, eq.D4CNN) and sum(p.numel() for p in d4.parameters()) <= 14000
    assert [label for label, _, _ in B._model_specs(None)] == list(B.MODEL_NAMES)


def test_d4_test_has_8_columns_and_d4cnn_is_invariant(capsys):
    result = eq.rotation_benchmark(["SimpleCNN", "D4CNN"], test="d4", **SMALL)
    assert result.columns == (["model", "parameters", "seconds_per_epoch"]
                              + [f"accuracy_{d}" for d in D4_LABELS]
                              + ["invariance_error", "agreement"])
    simple, d4 = result.rows
    assert d4["invariance_error"] < 1e-4 and d4["agreement"] == 1.0
    assert len({d4[f"accuracy_{d}"] for d in D4_LABELS}) == 1  # all 8 equal
    assert simple["invariance_error"] > 1e-3
    # the mirrored images differ: the plain CNN's accuracy is not the same on all 8
    assert len({simple[f"accuracy_{d}"] for d in D4_LABELS}) > 1
    assert "acc@flip_90" in str(result)
    # the default test keeps the 4 rotations
    c4 = eq.rotation_benchmark(["D4CNN"], **SMALL)
    assert c4.columns[3:7] == [f"accuracy_{d}" for d in D4_LABELS[:4]]
    assert c4.rows[0]["accuracy_90"] == d4["accuracy_90"]


def test_escnn_c8_and_d4_rows():
    pytest.importorskip("escnn")
    result = eq.rotation_benchmark(["EscnnC8CNN", "EscnnD4CNN"], test="d4",
                                   **{**SMALL, "limit": 64, "test_limit": 40})
    c8, d4 = result.rows
    assert d4["invariance_error"] < 1e-4
    assert len({d4[f"accuracy_{d}"] for d in D4_LABELS}) == 1
    # C8 contains the quarter turns (it is not built to be invariant to mirrors)
    evaluation = result.evaluations["EscnnC8CNN"]
    assert len(evaluation) == 8
    assert max(e["invariance_error"] for e in evaluation if not e["mirrored"]) < 1e-4
    assert len({c8[f"accuracy_{d}"] for d in D4_LABELS[:4]}) == 1


def test_verbose_prints_progress_and_table(capsys):
    eq.rotation_benchmark(["SimpleCNN"], **{**SMALL, "verbose": True})
    out = capsys.readouterr().out
    assert "== model 1/1 SimpleCNN" in out and "epoch 1/1" in out and "acc@0" in out


def test_progress_events_name_the_model_and_replace_the_text(capsys):
    events = []
    result = eq.rotation_benchmark(["SimpleCNN", "C4CNN"], **{**SMALL, "verbose": True},
                                   progress=events.append, table=False)
    assert capsys.readouterr().out == ""
    models = [e for e in events if e["event"] == "model"]
    assert models == [{"event": "model", "model": "SimpleCNN", "index": 1, "models": 2},
                      {"event": "model", "model": "C4CNN", "index": 2, "models": 2}]
    kinds = [e["event"] for e in events]
    assert kinds.count("start") == 2 and kinds.count("epoch") == 2 and kinds[-1] == "end"
    assert result.settings["num_classes"] == 10


def test_subset_fallback_warns(tmp_path, monkeypatch):
    monkeypatch.setattr(eq.data.fashion_mnist, "DEBIAN_ROOT", tmp_path / "absent")
    monkeypatch.delenv(eq.data.ENV_VAR, raising=False)
    with pytest.warns(eq.data.SubsetWarning):
        result = eq.rotation_benchmark(["SimpleCNN"], **{**SMALL, "root": None})
    assert result.settings["source"] == "subset"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(models=["Nope"]), "models"),
        (dict(models=[]), "models"),
        (dict(models=42), "models"),
        (dict(models={"x": 3}), "models"),
        (dict(models={"a": "C4CNN", "": "C4CNN"}), "models"),
        (dict(models={"bad": lambda: 3}), "models"),
        (dict(epochs=0), "epochs"),
        (dict(epochs=1.5), "epochs"),
        (dict(batch_size=-1), "batch_size"),
        (dict(lr=0), "lr"),
        (dict(seed=-1), "seed"),
        (dict(rotations=[90]), "rotations"),
        (dict(reg_n=0), "reg_n"),
        (dict(reg_lambda=-1.0), "reg_lambda"),
        (dict(limit=0), "limit"),
        (dict(csv="/nonexistent-folder/table.csv"), "csv"),
        (dict(csv=3), "csv"),
        (dict(test="D8"), "`test`"),
        (dict(test=["d4"]), "`test`"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, match):
    args = {**SMALL, "models": ["SimpleCNN"], "limit": 32, "test_limit": 20, **kwargs}
    with pytest.raises((ValueError, TypeError), match=match):
        eq.rotation_benchmark(**args)


def test_limits_are_named():
    with pytest.raises(ValueError, match="`test_limit` must be a positive whole number"):
        eq.rotation_benchmark(**{**SMALL, "models": ["SimpleCNN"], "test_limit": 0})
    with pytest.raises(ValueError, match="`seed` must be None or a whole number from 0 to 2"):
        eq.rotation_benchmark(**{**SMALL, "models": ["SimpleCNN"], "seed": 2**70})


def test_augmented_row_trains_on_randomly_turned_images(monkeypatch):
    assert "SimpleCNN+aug" in B.MODEL_NAMES
    made, seen = [], []
    original = B.T.random_rot90

    def recording_rot90(per_sample=True):
        made.append(per_sample)
        transform = original(per_sample)

        def apply(x):
            seen.append(x.shape[0])
            return transform(x)

        return apply

    monkeypatch.setattr(B.T, "random_rot90", recording_rot90)
    result = eq.rotation_benchmark(["SimpleCNN", "SimpleCNN+aug"], **SMALL)
    assert made == [True]  # one quarter turn per image, for the +aug row only
    assert seen == [64, 64]  # every training batch of the +aug row
    aug, plain = result.histories["SimpleCNN+aug"], result.histories["SimpleCNN"]
    assert all(r == 0 for r in aug.reg + plain.reg)  # augmented, not regularized
    assert aug.loss != plain.loss  # same seed and network, different images
    assert result.rows[0]["parameters"] == result.rows[1]["parameters"]


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def test_models_train_and_are_tested_on_the_device(device):
    tiny = dict(SMALL, limit=32, test_limit=16)
    result = eq.rotation_benchmark({"m": lambda: eq.SimpleCNN(widths=(2, 2, 2))}, device=device,
                                   **tiny)
    assert next(result.models["m"].parameters()).device.type == device


def test_cuda_without_cuda_fails_before_training(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    built = []
    with pytest.raises(ValueError, match="`device` is 'cuda' but CUDA is not available.*\"auto\""):
        eq.rotation_benchmark({"m": lambda: built.append(1) or eq.SimpleCNN()}, device="cuda",
                              **SMALL)
    assert built == []


def test_evaluate_mirror_rows_follow_the_rotations():
    torch.manual_seed(0)
    x, y = torch.rand(20, 1, 28, 28), torch.randint(0, 10, (20,))
    net = eq.SimpleCNN(widths=(2, 2, 2))
    rows = eq.evaluate(net, (x, y), mirror=True, device="cpu")
    assert [(r["mirrored"], r["degrees"]) for r in rows] == \
        [(m, d) for m in (False, True) for d in (0, 90, 180, 270)]
    assert rows[0]["invariance_error"] == 0 and rows[4]["invariance_error"] > 0
    # flip_rot90: mirrored left to right, then turned, compared with the image as it is
    with torch.no_grad():
        net.eval()
        turned = net(torch.rot90(torch.flip(x, dims=(-1,)), 1, dims=(-2, -1)))
    assert rows[5]["correct"] == int((turned.argmax(-1) == y).sum())
    assert len(eq.evaluate(net, (x, y), device="cpu")) == 4  # no mirror by default
    with pytest.raises(TypeError, match="`mirror`"):
        eq.evaluate(net, (x, y), mirror="yes")


def test_benchmark_eqcnn_has_no_padding_and_the_simple_cnns_budget():
    eqcnn, simple = B.benchmark_model("EqCNN"), B.benchmark_model("SimpleCNN")
    assert eqcnn.padding == (0, 0, 0) and simple.padding == (1, 1, 1)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(eqcnn) == count(simple) == 13_780
    assert eqcnn(torch.rand(2, 1, 28, 28)).shape == (2, 10)
