"""Catalogue, files that are not what they claim: every weights file and checkpoint is read and checked whole
before anything changes; each problem is one ValueError naming the file and what is wrong."""

import json
import os

import numpy as np
import pytest
from catalogue_helpers import X, Y, small_model, weights_equal

import minicnn as mc
from minicnn import layers
from minicnn.checkpoint import load_checkpoint


def _flip_a_byte(raw: bytes) -> bytes:
    data = bytearray(raw)
    data[len(data) // 3] ^= 0xFF  # inside the first array's stored bytes: the zip's CRC no longer matches
    return bytes(data)


def _npz(path, arrays):
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


# (what, how to spoil a good file's bytes or arrays, the message): one distinct bad file each
SPOILED_BYTES = [
    ("an empty file", lambda raw: b"", r"the file is empty \(0 bytes\)"),
    ("a truncated file", lambda raw: raw[: len(raw) // 2], r"(not a readable|corrupt or truncated)"),
    ("a bit-flipped file", _flip_a_byte, r"corrupt or truncated .*(CRC|BadZipFile)"),
    ("a text file", lambda raw: b"weights: none\n", r"not a readable .*(pickle|Failed|ValueError|OSError)"),
    ("the last bytes cut off", lambda raw: raw[:-30], r"(not a readable|corrupt or truncated)"),
]


def _good_weights(tmp_path):
    model = small_model(seed=1)
    path = tmp_path / "w.npz"
    model.save_weights(path)
    return path


@pytest.mark.parametrize("what,spoil,message", SPOILED_BYTES, ids=[c[0] for c in SPOILED_BYTES])
def test_a_spoiled_weights_file_is_refused_by_name_and_changes_nothing(what, spoil, message, tmp_path):
    path = _good_weights(tmp_path)
    path.write_bytes(spoil(path.read_bytes()))
    model = small_model(seed=2)
    before = model.get_weights()
    with pytest.raises(ValueError, match=str(path) + ": " + message):
        model.load_weights(path)
    assert weights_equal(before, model.get_weights())


@pytest.mark.parametrize("what,spoil,message", SPOILED_BYTES, ids=[c[0] for c in SPOILED_BYTES])
def test_a_spoiled_checkpoint_is_refused_by_name_and_changes_nothing(what, spoil, message, tmp_path):
    small_model(seed=1).fit(X, Y, batch_size=8, epochs=1, verbose=0, checkpoint_dir=tmp_path)
    path = tmp_path / "checkpoint.npz"
    path.write_bytes(spoil(path.read_bytes()))
    model = small_model(seed=2)
    before = model.get_weights()
    with pytest.raises(ValueError, match=str(path) + ": " + message):
        model.fit(X, Y, batch_size=8, epochs=2, verbose=0, checkpoint_dir=tmp_path, resume=True)
    assert weights_equal(before, model.get_weights())


def _weights_arrays(tmp_path):
    with np.load(_good_weights(tmp_path)) as data:
        return {k: data[k] for k in data.files}


def _put(name, value):
    def change(arrays):
        arrays[name] = value(arrays[name]) if callable(value) else value
        return arrays

    return change


def _drop(name):
    def change(arrays):
        del arrays[name]
        return arrays

    return change


# (what, change to the arrays, message)
BAD_TENSORS = [
    (
        "a NaN in a kernel",
        _put("dense/kernel", lambda a: np.where(np.arange(a.size).reshape(a.shape) == 7, np.nan, a)),
        r"'dense/kernel' holds 1 NaN or infinite values",
    ),
    ("an infinity in a bias", _put("conv2d/bias", lambda a: a + np.inf), r"'conv2d/bias' holds 4 NaN or infinite"),
    ("a string array", _put("dense/bias", np.array(["0.1"] * 10)), r"'dense/bias' holds <U3 values, expected numbers"),
    ("a complex array", _put("dense/bias", np.zeros(10, complex)), r"'dense/bias' holds complex128 values"),
    ("a tensor missing", _drop("dense/bias"), r"no weights for 'dense/bias'"),
    (
        "an extra layer's tensors",
        _put("dense_1/kernel", np.zeros((10, 3), np.float32)),
        r"holds weights the model does not have: \['dense_1/kernel'\]",
    ),
    (
        "a tensor of another shape",
        _put("dense/kernel", np.zeros((3, 10), np.float32)),
        r"'dense/kernel' has shape \(3, 10\) in the file, the model expects \(144, 10\)",
    ),
    (
        "another architecture's layer list",
        _put("__layers__", np.array(["conv2d:Conv2D", "dense:Dense"])),
        r"was saved from another architecture \(2 layers, the model has 5\)",
    ),
]


@pytest.mark.parametrize("what,change,message", BAD_TENSORS, ids=[c[0] for c in BAD_TENSORS])
def test_a_weights_file_with_bad_tensors_is_refused_and_changes_nothing(what, change, message, tmp_path):
    path = tmp_path / "bad.npz"
    _npz(path, change(_weights_arrays(tmp_path)))
    model = small_model(seed=2)
    before = model.get_weights()
    with pytest.raises(ValueError, match=message):
        model.load_weights(path)
    assert weights_equal(before, model.get_weights())


def test_strict_false_loads_what_matches_and_leaves_the_rest(tmp_path):
    arrays = _weights_arrays(tmp_path)
    arrays["dense/kernel"] = np.zeros((3, 10), np.float32)  # mismatched: skipped
    arrays["extra/kernel"] = np.ones(2, np.float32)  # unknown: ignored
    _npz(tmp_path / "partial.npz", arrays)
    model = small_model(seed=2)
    kept = model.get_weights()[2]
    model.load_weights(tmp_path / "partial.npz", strict=False)
    np.testing.assert_array_equal(model.get_weights()[0], arrays["conv2d/kernel"])
    np.testing.assert_array_equal(model.get_weights()[2], kept)


def test_strict_false_still_refuses_non_finite_values(tmp_path):
    arrays = _weights_arrays(tmp_path)
    arrays["conv2d/kernel"] = arrays["conv2d/kernel"] * np.nan
    _npz(tmp_path / "nan.npz", arrays)
    with pytest.raises(ValueError, match="NaN or infinite"):
        small_model().load_weights(tmp_path / "nan.npz", strict=False)


@pytest.mark.parametrize(
    "what,make,message",
    [
        ("a .npy renamed .npz", lambda p: np.save(open(p, "wb"), np.zeros(3)), r"holds one bare array \(.npy format\)"),
        ("a directory", lambda p: os.mkdir(p), r"is a directory, expected a weights file"),
        ("no file at all", lambda p: None, r"no such weights file"),
        (
            "a pickled object array",
            lambda p: np.savez(open(p, "wb"), **{"conv2d/kernel": np.array([None, 1])}),
            r"holds Python objects \(pickled arrays\)",
        ),
    ],
    ids=["npy", "directory", "missing", "pickle"],
)
def test_a_weights_path_that_is_not_a_weights_file_is_named(what, make, message, tmp_path):
    path = tmp_path / "w.npz"
    make(path)
    with pytest.raises(ValueError, match=f"{path}: {message}"):
        small_model().load_weights(path)


@pytest.mark.parametrize(
    "what,position,value,message",
    [
        ("a string array last", 3, np.array(["x"] * 10), r"set_weights: layer 'dense' bias holds <U1 values"),
        ("a NaN last", 3, np.full(10, np.nan, np.float32), r"layer 'dense' bias holds 10 NaN or infinite values"),
        ("a wrong shape last", 3, np.zeros(9, np.float32), r"layer 'dense' bias has shape \(10,\), got \(9,\)"),
        ("an object array", 3, np.array([object()] * 10), r"layer 'dense' bias holds object values"),
    ],
    ids=["string", "nan", "shape", "object"],
)
def test_set_weights_is_all_or_nothing(what, position, value, message):
    model = small_model(seed=2)
    before = model.get_weights()
    new = [w + 1 for w in before]
    new[position] = value
    with pytest.raises(ValueError, match=message):
        model.set_weights(new)
    assert weights_equal(before, model.get_weights())  # the first arrays were not assigned either


def _checkpoint_arrays(tmp_path):
    small_model(seed=1).fit(X, Y, batch_size=8, epochs=1, verbose=0, checkpoint_dir=tmp_path / "good")
    with np.load(tmp_path / "good" / "checkpoint.npz") as data:
        return {k: data[k] for k in data.files}


def _meta(change):
    def apply(arrays):
        meta = json.loads(str(arrays["meta"]))
        change(meta)
        arrays["meta"] = np.array(json.dumps(meta))
        return arrays

    return apply


BAD_CHECKPOINTS = [
    ("no meta", _drop("meta"), r"not a minicnn checkpoint \(no 'meta' entry\)"),
    ("meta not JSON", _put("meta", np.array("{epochs_done: 1")), r"its meta is not JSON"),
    ("meta a list", _put("meta", np.array("[1, 2]")), r"its meta is a list, not a JSON object"),
    ("no iterations", _meta(lambda m: m.pop("iterations")), r"its meta has iterations=None, expected an int >= 0"),
    ("no epochs_done", _meta(lambda m: m.pop("epochs_done")), r"its meta has epochs_done=None"),
    ("negative epochs_done", _meta(lambda m: m.update(epochs_done=-1)), r"epochs_done=-1"),
    (
        "epochs_done beyond the history",
        _meta(lambda m: m.update(epochs_done=3)),
        r"history\['loss'\] holds 1 values, expected 3 numbers",
    ),
    ("a history entry not a list", _meta(lambda m: m["history"].update(loss=0.5)), r"history\['loss'\] holds 0.5"),
    ("a history holding text", _meta(lambda m: m["history"].update(loss=["x"])), r"history\['loss'\] holds 1 values"),
    ("settings not an object", _meta(lambda m: m.update(settings=[1])), r"its settings are not a JSON object"),
    (
        "NaN in the optimizer state",
        _put("optimizer/accumulated_grad/0", lambda a: a * np.nan),
        r"'optimizer/accumulated_grad/0' holds 36 NaN or infinite values",
    ),
    (
        "the optimizer state missing",
        lambda a: {k: v for k, v in a.items() if not k.startswith("optimizer/")},
        r"the optimizer state 'accumulated_grad' is missing or incomplete \(0 of 4 arrays\) after 2 updates",
    ),
    (
        "one optimizer array missing",
        _drop("optimizer/accumulated_delta/3"),
        r"'accumulated_delta' is missing or incomplete \(3 of 4 arrays\)",
    ),
    (
        "an optimizer array of another shape",
        _put("optimizer/accumulated_grad/1", np.zeros(3, np.float32)),
        r"'optimizer/accumulated_grad/1' has shape \(3,\), the weight it belongs to \(4,\)",
    ),
    ("NaN in the weights", _put("weights/dense/bias", lambda a: a * np.nan), r"'dense/bias' holds 10 NaN"),
    ("a string weight", _put("weights/dense/bias", np.array(["1"] * 10)), r"'dense/bias' holds <U1 values"),
    ("a weight missing", _drop("weights/conv2d/kernel"), r"no weights for 'conv2d/kernel'"),
    (
        "an unknown weight",
        _put("weights/dense_9/kernel", np.zeros(2, np.float32)),
        r"holds weights the model does not have",
    ),
]


@pytest.mark.parametrize("what,change,message", BAD_CHECKPOINTS, ids=[c[0] for c in BAD_CHECKPOINTS])
def test_a_damaged_checkpoint_is_refused_before_anything_changes(what, change, message, tmp_path):
    arrays = change(_checkpoint_arrays(tmp_path))
    os.makedirs(tmp_path / "bad")
    _npz(tmp_path / "bad" / "checkpoint.npz", arrays)
    model = small_model(seed=2)
    before, iterations = model.get_weights(), model.optimizer.iterations
    with pytest.raises(ValueError, match=message):
        load_checkpoint(model, tmp_path / "bad")
    assert weights_equal(before, model.get_weights()) and model.optimizer.iterations == iterations


def test_a_directory_where_the_checkpoint_should_be_is_named_as_such(tmp_path):
    os.makedirs(tmp_path / "checkpoint.npz")
    with pytest.raises(ValueError, match=r"checkpoint.npz: is a directory, expected a checkpoint"):
        load_checkpoint(small_model(), tmp_path)


def test_a_file_given_as_the_checkpoint_folder_is_named(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match=r"/f: is a file, expected the checkpoint folder"):
        load_checkpoint(small_model(), tmp_path / "f")


def test_a_checkpoint_saved_before_the_first_update_loads_without_optimizer_state(tmp_path):
    model = small_model()
    model.fit(X, Y, batch_size=8, epochs=0, verbose=0, checkpoint_dir=tmp_path)  # writes nothing: 0 epochs
    assert not (tmp_path / "checkpoint.npz").exists()
    arrays = _checkpoint_arrays(tmp_path)
    arrays = _meta(lambda m: m.update(iterations=0))({k: v for k, v in arrays.items() if not k.startswith("opt")})
    _npz(tmp_path / "checkpoint.npz", arrays)
    assert load_checkpoint(small_model(seed=3), tmp_path)["epochs_done"] == 1


def test_a_weights_file_from_a_model_with_the_same_tensors_but_other_layers_is_refused(tmp_path):
    a = mc.Sequential([layers.Dense(4, input_shape=(3,)), layers.Dropout(0.5), layers.Dense(2)], seed=0)
    b = (
        mc.Sequential([layers.Dense(4, input_shape=(3,)), layers.Activation("relu"), layers.Dense(2)], seed=1)
        if hasattr(layers, "Activation")
        else mc.Sequential([layers.Dense(4, input_shape=(3,)), layers.Dense(2)])
    )
    a.save_weights(tmp_path / "a.npz")
    with pytest.raises(ValueError, match="was saved from another architecture"):
        b.load_weights(tmp_path / "a.npz")
