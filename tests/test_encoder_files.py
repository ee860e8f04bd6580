"""A pretrained encoder's folder that cannot be read is one clear line naming the file, whichever
reader (fine-tuning's `load_encoder`, the diagnosis's `frozen_encoder`) opens it."""

from __future__ import annotations

import json
import shutil

import pytest

from aam.errors import InputError
from aam.evaluate.frozen_encoder import frozen_encoder
from aam.pretrained import bundled_dir
from aam.training.encoder_init import encoder_config, encoder_weights


def test_the_bundled_encoder_reads_as_its_model_json_says():
    saved = json.loads((bundled_dir() / "model.json").read_text())["config"]
    config = encoder_config(bundled_dir())
    assert config == {k: v for k, v in saved.items() if k not in ("task", "n_outputs")}
    weights = encoder_weights(bundled_dir())
    model = frozen_encoder(bundled_dir(), "pretrained", seed=0)
    name, tensor = next(iter(weights.items()))
    assert (model.base.state_dict()[name] == tensor).all()


@pytest.mark.parametrize("broken,message", [
    ("model.json", "model.json: not a pretrained encoder's config"),
    ("model.safetensors", "model.safetensors: cannot read the encoder's weights"),
])
def test_an_unreadable_encoder_file_is_one_line_naming_it(tmp_path, broken, message):
    folder = tmp_path / "encoder"
    shutil.copytree(bundled_dir(), folder)
    (folder / broken).write_text("not what it should be")
    with pytest.raises(InputError, match=message) as err:
        frozen_encoder(folder, "pretrained", seed=0)
    assert "\n" not in str(err.value) and str(folder) in str(err.value)
