"""A model file is data, never code: ``minicnn.models.load_model`` refuses damaged, forged, oversized and
inconsistent ``.keras`` files with one ModelFileError naming the file and the problem, and runs nothing from them.

Every bad file is built here from a good one (zipfile and h5py in memory): each test changes one thing.
"""

import io
import json
import zipfile

import numpy as np
import pytest
from optional_modules import need

import minicnn as mc
from minicnn import layers as L
from minicnn.models import Limits, ModelFileError, load_model, model_from_json

h5py = need("h5py", "keras-files")


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """The members of a good file: (config dict, metadata dict, weights bytes) of a small conv net."""
    model = mc.Sequential(
        [L.Conv2D(2, 3, input_shape=(6, 6, 1)), L.BatchNormalization(), L.Flatten(), L.Dense(3, activation="softmax")],
        seed=0,
    )
    model.compile(optimizer="adadelta", metrics=["accuracy"])
    path = tmp_path_factory.mktemp("good") / "good.keras"
    model.save(path)
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("config.json")), json.loads(zf.read("metadata.json")), zf.read("model.weights.h5")


def write(path, members, compression=zipfile.ZIP_STORED):
    """A zip of ``members`` ({name: bytes or dict}), in order (a list of pairs allows repeated names)."""
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items() if isinstance(members, dict) else members:
            zf.writestr(name, json.dumps(data) if isinstance(data, dict) else data)
    return path


def members(good, config=None, weights=None):
    cfg, meta, w = good
    return {
        "metadata.json": meta,
        "config.json": cfg if config is None else config,
        "model.weights.h5": w if weights is None else weights,
    }


def edited_weights(good, edit):
    """The good weights file after ``edit(h5py.File)``, as bytes."""
    buffer = io.BytesIO(good[2])
    with h5py.File(buffer, "r+") as f:
        edit(f)
    return buffer.getvalue()


def edited_config(good, edit):
    config = json.loads(json.dumps(good[0]))
    edit(config)
    return config


def refused(path, pattern, **kwargs):
    with pytest.raises(ModelFileError, match=pattern) as info:
        load_model(path, **kwargs)
    assert str(path) in str(info.value)  # the message names the file
    return info.value


def test_the_good_file_loads(tmp_path, good):
    model = load_model(write(tmp_path / "ok.keras", members(good)))
    assert model.count_params() == 2 * 9 + 2 + 4 * 2 + 32 * 3 + 3


@pytest.mark.parametrize(
    "data, pattern",
    [
        (b"not a zip at all", "not a readable zip archive"),
        (b"PK\x03\x04" + b"\x00" * 100, "not a readable zip archive"),
    ],
)
def test_not_a_zip(tmp_path, data, pattern):
    (tmp_path / "bad.keras").write_bytes(data)
    refused(tmp_path / "bad.keras", pattern)


def test_archive_structure_is_checked(tmp_path, good):
    ok = members(good)
    refused(write(tmp_path / "a.keras", {**ok, "../../evil.sh": b"rm -rf /"}), r"unexpected member '\.\./\.\./evil")
    refused(write(tmp_path / "b.keras", {**ok, "model.pkl": b"\x80\x04."}), "unexpected member 'model.pkl'")
    refused(
        write(tmp_path / "c.keras", {"metadata.json": ok["metadata.json"], "config.json": ok["config.json"]}),
        "no model.weights.h5",
    )
    with pytest.warns(UserWarning, match="Duplicate name"):
        dup = write(tmp_path / "d.keras", [*ok.items(), ("config.json", {"x": 1})])
    refused(dup, "two members named 'config.json'")
    refused(write(tmp_path / "e.keras", ok), "holds 3 members, over the limit of 2", limits=Limits(members=2))


def test_size_limits_declared_and_actual(tmp_path, good):
    path = write(tmp_path / "ok.keras", members(good))
    refused(path, "over the limit of 1,000", limits=Limits(file_bytes=1000))
    refused(path, "model.weights.h5 declares .* bytes, over the limit of 100", limits=Limits(weights_bytes=100))
    # a zip bomb: 64 MiB of spaces deflate to ~64 KiB; refused from its declared size, before it is inflated
    bomb = write(tmp_path / "bomb.keras", members(good, config=b" " * (64 << 20)), compression=zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 1 << 20
    refused(bomb, "config.json declares 67,108,864 bytes, over the limit of 16,777,216")


def _patch_declared_size(path, name, new_size):
    """Rewrite the uncompressed size of ``name`` in the central directory (what zipfile believes)."""
    data = bytearray(path.read_bytes())
    start = data.rindex(b"PK\x01\x02", 0, data.rindex(name.encode()) + 1)
    data[start + 24 : start + 28] = new_size.to_bytes(4, "little")
    path.write_bytes(bytes(data))


def test_a_header_that_lies_about_the_size_is_refused(tmp_path, good):
    bigger = write(tmp_path / "bigger.keras", members(good))
    _patch_declared_size(bigger, "config.json", len(json.dumps(good[0])) + 1000)
    refused(bigger, "config.json holds .* bytes where its header declares")
    smaller = write(tmp_path / "smaller.keras", members(good))
    _patch_declared_size(smaller, "config.json", 10)
    refused(smaller, "config.json cannot be read .*CRC")


def test_encrypted_member_is_refused(tmp_path, good):
    path = write(tmp_path / "enc.keras", members(good))
    data = bytearray(path.read_bytes())
    start = data.rindex(b"PK\x01\x02", 0, data.rindex(b"config.json") + 1)
    data[start + 8] |= 0x1
    path.write_bytes(bytes(data))
    refused(path, "config.json is encrypted")


@pytest.mark.parametrize(
    "text, pattern",
    [
        (b"\xff\xfe not utf-8", "config.json is not valid JSON"),
        (b'{"class_name": "Sequential", "config": {"layers": [NaN]}}', "NaN is not a JSON number"),
        (b'{"class_name": "Sequential", "class_name": "Functional"}', "'class_name' appears twice"),
        (b"[" * 100_000 + b"]" * 100_000, "config.json is not valid JSON"),
        (b"[1, 2]", "holds a list, not a JSON object"),
    ],
)
def test_bad_json_is_refused(tmp_path, good, text, pattern):
    refused(write(tmp_path / "j.keras", members(good, config=text)), pattern)


@pytest.mark.parametrize(
    "edit, pattern",
    [
        (
            lambda c: c["config"]["layers"].insert(
                2,
                {
                    "module": "keras.layers",
                    "class_name": "Lambda",
                    "config": {"function": {"class_name": "__lambda__", "config": {"code": "4wEAAAAAAAAA"}}},
                },
            ),
            "layer 'Lambda' is not",
        ),
        (
            lambda c: c["config"]["layers"][1].update(module="evil.layers", registered_name="evil>Conv2D"),
            "custom object .*minicnn imports nothing",
        ),
        (lambda c: c.update(class_name="Functional"), "'Functional' is not supported"),
        (lambda c: c["config"]["layers"][1]["config"].update(dilation_rate=[2, 2]), r"dilation_rate=\[2, 2\]"),
        (
            lambda c: c["config"]["layers"][4]["config"].update(activation={"class_name": "function", "config": "x"}),
            "not a built-in activation",
        ),
        (
            lambda c: c["config"]["layers"][4]["config"].update(
                kernel_regularizer={"module": "keras.regularizers", "class_name": "Orthogonal"}
            ),
            "regularizer.*'Orthogonal' is not supported",
        ),
        (lambda c: c["config"]["layers"][2]["config"].update(dtype="mixed_float16"), "dtype 'mixed_float16'"),
        (lambda c: c["config"]["layers"][4]["config"].update(units=-3), "units must be a positive int"),
        (lambda c: c["config"]["layers"].pop(3), "Dense 'dense' expects flat inputs"),
        # a configuration that would allocate far more than the file's weights: refused before anything is made
        (
            lambda c: c["config"]["layers"][4]["config"].update(units=10**8),
            r"describes 3,300,000,028 weights \(13,200,000,112 bytes\), more than the",
        ),
    ],
)
def test_configurations_minicnn_cannot_reproduce_are_refused(tmp_path, good, edit, pattern):
    refused(write(tmp_path / "c.keras", members(good, config=edited_config(good, edit))), pattern)


def test_an_optimizer_that_does_not_map_leaves_the_model_uncompiled_with_a_warning(tmp_path, good):
    config = edited_config(good, lambda c: c["compile_config"]["optimizer"]["config"].update(clipnorm=1.0))
    with pytest.warns(UserWarning, match="uncompiled: optimizer Adadelta setting clipnorm=1.0"):
        model = load_model(write(tmp_path / "o.keras", members(good, config=config)))
    assert model.optimizer is None and model.count_params() > 0


def test_an_optimizer_state_of_another_layout_is_skipped_with_a_warning(tmp_path, good):
    config = edited_config(
        good,
        lambda c: c["compile_config"]["optimizer"].update(
            class_name="Adam", config={"name": "adam", "learning_rate": 0.01, "amsgrad": True}
        ),
    )
    with pytest.warns(
        UserWarning, match="state holds 14 arrays where Adam with these settings keeps 20: the optimizer starts afresh"
    ):
        model = load_model(write(tmp_path / "o.keras", members(good, config=config)))
    assert isinstance(model.optimizer, mc.optimizers.Adam) and model.optimizer.iterations == 0


def test_the_optimizer_state_is_checked_as_the_weights_are(tmp_path, good):
    for edit, pattern in (
        (_replace("optimizer/vars/4", np.full(2, np.inf, np.float32)), "vars/4 .*non-finite"),
        (_replace("optimizer/vars/3", np.zeros(2, np.float32)), r"vars/3 has shape \(2,\)"),
        (_replace("optimizer/vars/0", h5py.ExternalLink("/etc/passwd", "/x")), "ExternalLink"),
    ):
        refused(write(tmp_path / "s.keras", members(good, weights=edited_weights(good, edit))), pattern)


def _add_extra_weight(f):
    f["layers/dense/vars"].create_dataset("2", data=np.zeros(3, np.float32))


def _replace(path, value):
    def edit(f):
        del f[path]
        f[path] = value

    return edit


@pytest.mark.parametrize(
    "edit, pattern",
    [
        (lambda f: f.__delitem__("layers/dense"), "no weights for layer 'dense'"),
        (_add_extra_weight, r"layer 'dense' \(Dense\) has 3 weights"),
        (
            lambda f: f["layers"].create_group("conv2d_1/vars").create_dataset("0", data=np.ones(2, np.float32)),
            "/layers/conv2d_1 holds weights for no layer",
        ),
        (_replace("layers/dense/vars/0", np.zeros((31, 3), np.float32)), r"has shape \(31, 3\), the configuration"),
        (_replace("layers/dense/vars/1", np.zeros(3, np.float64)), "holds float64, the model computes in float32"),
        (_replace("layers/dense/vars/1", np.array([0, np.nan, 0], np.float32)), "non-finite values"),
        (_replace("layers/conv2d/vars/0", h5py.ExternalLink("/etc/passwd", "/x")), r"is a link \(ExternalLink\)"),
        (_replace("layers/conv2d/vars/1", h5py.SoftLink("/layers/dense/vars/1")), r"is a link \(SoftLink\)"),
        (lambda f: f.__delitem__("layers"), "no 'layers' group"),
    ],
)
def test_inconsistent_weights_are_refused(tmp_path, good, edit, pattern):
    refused(write(tmp_path / "w.keras", members(good, weights=edited_weights(good, edit))), pattern)


def test_compressed_dataset_and_non_hdf5_weights_are_refused(tmp_path, good):
    def compress(f):
        data = f["layers/dense/vars/0"][()]
        del f["layers/dense/vars/0"]
        f["layers/dense/vars"].create_dataset("0", data=data, compression="gzip")

    refused(write(tmp_path / "z.keras", members(good, weights=edited_weights(good, compress))), "is filtered")
    refused(
        write(tmp_path / "n.keras", members(good, weights=b"\x89HDF\r\n\x1a\n" + b"\x00" * 4096)),
        "not a readable HDF5 file",
    )


def test_model_from_json_refuses_what_load_model_refuses(good):
    text = json.dumps(edited_config(good, lambda c: c["config"]["layers"][2].update(class_name="Lambda")))
    with pytest.raises(ValueError, match="layer 'Lambda' is not supported"):
        model_from_json(text)
    with pytest.raises(ValueError, match="not valid JSON"):
        model_from_json("{")
    huge = json.dumps(edited_config(good, lambda c: c["config"]["layers"][4]["config"].update(units=10**9)))
    with pytest.raises(ModelFileError, match="model JSON: the configuration describes 33,000,000,028 weights"):
        model_from_json(huge)


def test_loading_opens_only_the_given_file_and_writes_nothing(tmp_path, good, monkeypatch):
    import builtins

    path = write(tmp_path / "ok.keras", members(good))
    opened, real_open = [], builtins.open

    def watching_open(file, mode="r", *args, **kwargs):
        opened.append((str(file), mode))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", watching_open)
    monkeypatch.setattr(zipfile.ZipFile, "extract", lambda *a, **k: pytest.fail("a member was extracted"))
    monkeypatch.setattr(zipfile.ZipFile, "extractall", lambda *a, **k: pytest.fail("members were extracted"))
    load_model(path)
    assert opened == [(str(path), "rb")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.keras"]
