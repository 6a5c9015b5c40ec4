"""numcnn.models.names / get / recipe / options and the registry's error messages."""

from __future__ import annotations

import numpy as np
import pytest

import numcnn
import numcnn.models
import numcnn.nn.functional as F
from numcnn.models import registry

ALL = ["convnet", "inception", "lenet5", "resnet", "shallow", "simplecnn"]


def test_names_sorted_and_complete():
    assert numcnn.models.names() == ALL


def test_unknown_name_lists_known_ones():
    with pytest.raises(ValueError, match="unknown model 'vgg'") as e:
        numcnn.models.get("vgg")
    assert all(n in str(e.value) for n in ALL)
    with pytest.raises(ValueError, match="lenet5"):
        numcnn.models.recipe("alexnet")


def test_unknown_option_is_named():
    with pytest.raises(TypeError, match="'batch_norm'") as e:
        numcnn.models.get("lenet5", batch_norm=True)
    assert "batchnorm=False" in str(e.value) and "dropout=0.0" in str(e.value)
    with pytest.raises(TypeError, match="'depth'.*options are: none"):
        numcnn.models.get("convnet", depth=3)


def test_options_are_the_constructor_keywords():
    assert numcnn.models.options("lenet5") == {"batchnorm": False, "dropout": 0.0, "init": "default"}
    assert numcnn.models.options("resnet") == {"blocks_per_stage": 2, "bottleneck": False,
                                               "zero_init_residual": False}
    assert numcnn.models.options("convnet") == {} == numcnn.models.options("inception")
    assert numcnn.models.options("shallow") == {"channels": 4}
    assert numcnn.models.options("simplecnn") == {"channels": 10, "hidden": 100, "dropout": 0.5}
    assert numcnn.models.get("simplecnn", hidden=7).fc2.in_features == 7
    assert all(numcnn.models.describe(n) for n in ALL)


def test_get_is_reproducible_under_a_seed():
    sds = []
    for _ in range(2):
        numcnn.manual_seed(7)
        sds.append(numcnn.models.get("resnet", in_channels=3, num_classes=4).state_dict())
    assert all(np.array_equal(sds[0][k].numpy(), sds[1][k].numpy()) for k in sds[0])
    numcnn.manual_seed(8)
    other = numcnn.models.get("resnet", in_channels=3, num_classes=4).state_dict()
    assert not np.array_equal(other["conv1.weight"].numpy(), sds[0]["conv1.weight"].numpy())


@pytest.mark.parametrize("name", ALL)
def test_summary_on_every_model(name):
    model = numcnn.models.get(name, in_channels=3, num_classes=7)
    s = numcnn.utils.summary(model, (3, 28, 28), print_fn=None)
    assert s.total_params == s.trainable_params == sum(p.numel() for p in model.parameters())
    assert s.layers[-1].output_shape == (1, 7)
    assert s.total_macs > 0 and f"Total MACs per image: {s.total_macs:,}" in str(s)
    assert model.training  # summary leaves the mode as it found it


def test_recipes_have_every_key():
    for name in ALL:
        r = numcnn.models.recipe(name)
        assert tuple(r) == registry.RECIPE_KEYS, name
        assert r["optimizer"] in ("adam", "sgd") and r["loss"] in ("cross_entropy", "mse")
        assert (r["scheduler"] == "onecycle") == (r["max_lr"] is not None)
        assert isinstance(r["batch_size"], int) and isinstance(r["epochs"], int) and isinstance(r["augment"], bool)


def test_recipe_values():
    conv = numcnn.models.recipe("convnet")
    assert (conv["optimizer"], conv["scheduler"], conv["max_lr"], conv["batch_size"], conv["epochs"]) == (
        "adam", "onecycle", 3e-3, 100, 3)
    res = numcnn.models.recipe("resnet")
    assert res["optimizer"] == "sgd" and res["optimizer_kwargs"] == {"momentum": 0.9, "nesterov": True}
    assert (res["weight_decay"], res["max_lr"], res["batch_size"], res["epochs"], res["augment"]) == (
        5e-4, 0.1, 128, 15, True)
    assert numcnn.models.recipe("shallow")["loss"] == "mse"
    assert numcnn.models.recipe("simplecnn")["lr"] == 1e-3 and numcnn.models.recipe("simplecnn")["scheduler"] is None


def test_recipe_is_a_copy():
    r = numcnn.models.recipe("resnet")
    r["optimizer_kwargs"]["momentum"] = 0.0
    r["epochs"] = 1
    assert numcnn.models.recipe("resnet")["optimizer_kwargs"]["momentum"] == 0.9
    assert numcnn.models.recipe("resnet")["epochs"] == 15


@pytest.mark.parametrize("name", ALL)
def test_recipe_builds_numcnn_optimizers(name):
    # What the CLI does with a recipe: the optimizer and scheduler must accept its values as they are.
    r = numcnn.models.recipe(name)
    model = numcnn.models.get(name)
    cls = {"adam": numcnn.optim.Adam, "sgd": numcnn.optim.SGD}[r["optimizer"]]
    opt = cls(model.parameters(), lr=r["lr"], weight_decay=r["weight_decay"], **r["optimizer_kwargs"])
    group = opt.param_groups[0]
    assert group["weight_decay"] == r["weight_decay"]
    for k, v in r["optimizer_kwargs"].items():
        assert group[k] == v
    if r["scheduler"] == "onecycle":
        numcnn.optim.lr_scheduler.OneCycleLR(opt, max_lr=r["max_lr"], epochs=r["epochs"], steps_per_epoch=10)
        assert group["lr"] == pytest.approx(r["max_lr"] / 25)  # OneCycle starts at max_lr / div_factor
    else:
        assert group["lr"] == r["lr"]


def test_shallow_recipe_learns_with_its_loss():
    # The hand-derived net with its own recipe (plain SGD on the L2 loss against one-hot targets): a few full
    # steps on a batch of two easily separated patterns must drive the L2 loss down.
    numcnn.manual_seed(0)
    r = numcnn.models.recipe("shallow")
    model = numcnn.models.get("shallow")
    opt = numcnn.optim.SGD(model.parameters(), lr=r["lr"], weight_decay=r["weight_decay"], **r["optimizer_kwargs"])
    x = np.zeros((8, 1, 28, 28), dtype=np.float32)
    y = np.arange(8) % 2
    x[y == 0, :, :14] = 1.0  # class 0: top half lit
    x[y == 1, :, 14:] = 1.0  # class 1: bottom half lit
    target = numcnn.tensor(np.eye(10, dtype=np.float32)[y])
    losses = []
    for _ in range(40):
        out = model(numcnn.tensor(x))
        loss = F.mse_loss(out, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    with numcnn.no_grad():
        assert (model(numcnn.tensor(x)).numpy().argmax(1) == y).all()


def test_register_checks_names_and_signatures():
    with pytest.raises(ValueError, match="already registered"):
        registry.register("lenet5", numcnn.models.recipe("lenet5"), "dup")(numcnn.models.LeNet5)

    class Bad(numcnn.nn.Module):
        def __init__(self, num_classes, in_channels):
            super().__init__()

    with pytest.raises(TypeError, match="in_channels, num_classes"):
        registry.register("bad", numcnn.models.recipe("lenet5"), "bad")(Bad)
    assert "bad" not in numcnn.models.names()


def test_make_recipe_validates():
    with pytest.raises(ValueError, match="optimizer"):
        registry.make_recipe("lbfgs", 1.0)
    with pytest.raises(ValueError, match="max_lr"):
        registry.make_recipe("adam", 1e-3, scheduler="onecycle")
    with pytest.raises(ValueError, match="loss"):
        registry.make_recipe("adam", 1e-3, loss="hinge")
