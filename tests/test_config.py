import json

import numpy as np
import pytest

from np_draw import PRESETS, NPDrawConfig


def test_presets_carry_the_papers_numbers():
    mnist, cifar, celeba = PRESETS["mnist"], PRESETS["cifar10"], PRESETS["celeba"]
    assert (mnist.part_size, mnist.num_parts, mnist.num_steps, mnist.likelihood) == (5, 50, 36, "bernoulli")
    assert (cifar.part_size, cifar.num_parts, cifar.num_steps, cifar.likelihood) == (4, 200, 64, "logistic_mixture")
    assert (celeba.image_size, celeba.canvas_size, celeba.likelihood, celeba.upscale) == (64, 32, "logistic", 2)
    assert (mnist.prior.num_layers, mnist.prior.hidden_size, mnist.prior.dropout) == (8, 64, 0.1)
    assert mnist.empty_threshold == 0.01


def test_json_round_trip(tmp_path):
    config = NPDrawConfig.preset("celeba", decoder_channels=32)
    config.to_json(tmp_path / "config.json")
    assert NPDrawConfig.from_json(tmp_path / "config.json") == config
    assert json.loads(config.to_json())["prior"]["num_layers"] == 8


@pytest.mark.parametrize("bad, message", [
    ({"part_size": 0}, "part_size"),
    ({"grid_size": 7}, "grid does not fit"),
    ({"likelihood": "gaussian"}, "likelihood"),
    ({"channels": 3}, "bernoulli"),
    ({"empty_threshold": -0.1}, "empty_threshold"),
    ({"empty_threshold": "0.1"}, r"empty_threshold must be a number in \[0, 1\), got '0.1'"),
    ({"padding": True}, "padding must be a non-negative integer, got True"),
])
def test_invalid_config_names_the_field(bad, message):
    with pytest.raises(ValueError, match=message):
        NPDrawConfig.preset("mnist", **bad)


def test_numpy_numbers_are_taken_as_python_ones():
    config = NPDrawConfig.preset("mnist", empty_threshold=np.float32(0.25), num_parts=np.int64(40),
                                 padding=np.int64(1), prior={"num_layers": np.int64(2), "dropout": np.float32(0.5)})
    assert config.empty_threshold == 0.25 and type(config.empty_threshold) is float
    assert NPDrawConfig.from_dict(json.loads(config.to_json())) == config


def test_unknown_keys_are_an_error():
    data = NPDrawConfig.preset("mnist").to_dict()
    data["decoder_width"] = 3
    with pytest.raises(ValueError, match="decoder_width"):
        NPDrawConfig.from_dict(data)
    with pytest.raises(ValueError, match="known presets"):
        NPDrawConfig.preset("svhn")


@pytest.mark.parametrize("prior", [5, "x", [1]])
def test_a_prior_that_is_not_a_config_is_named(prior):
    """As a config.json may give it: a TypeError naming the field, not an AttributeError from inside the model."""
    data = {**NPDrawConfig.preset("mnist").to_dict(), "prior": prior}
    with pytest.raises(TypeError, match=f"prior must be a PriorConfig or a dict of its fields, got {type(prior).__name__}"):
        NPDrawConfig.from_dict(data)


@pytest.mark.parametrize("text, message", [
    ("[]", "a JSON object is expected, got a JSON list"),  # an AttributeError before
    ('"num_parts"', "a JSON object is expected, got a JSON str"),  # its letters were taken for unknown keys
    ("{", "Expecting property name"),  # json's own error, which did not name the file
    ("[" * 100_000 + "]" * 100_000, "maximum recursion depth"),  # a RecursionError
    ('{"prior": 5}', "prior must be a PriorConfig or a dict of its fields, got int"),
])
def test_from_json_names_the_file_that_is_not_a_config(tmp_path, text, message):
    from np_draw import InvalidInputError

    (tmp_path / "config.json").write_text(text)
    with pytest.raises(InvalidInputError, match=f"^{tmp_path / 'config.json'} is not a valid NP-DRAW config: {message}"):
        NPDrawConfig.from_json(tmp_path / "config.json")


@pytest.mark.parametrize("data", [None, [("num_parts", 40)], "num_parts"])
def test_from_dict_of_what_is_not_a_dict_is_a_type_error_naming_it(data):
    from np_draw import InvalidTypeError

    with pytest.raises(InvalidTypeError, match=f"a config must be a dict of NPDrawConfig's fields, got {type(data).__name__}"):
        NPDrawConfig.from_dict(data)
