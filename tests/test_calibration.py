"""Validation calibration of a regression head (aam.training.calibration), against hand-worked
values and against the model's own outputs before the calibration was folded into its weights.
`aam finetune` with ``calibrate: true``: tests/test_generalization_options.py."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from helpers.aam_synthetic import make_batch  # noqa: E402

from aam.errors import InputError  # noqa: E402
from aam.models.aam import AAMConfig, SequencePredictor  # noqa: E402
from aam.models.ensemble import EnsemblePredictor  # noqa: E402
from aam.training.calibration import Calibration, apply_calibration, fit_calibration  # noqa: E402

torch.set_num_threads(1)


def test_fit_by_hand():
    # centre: mean of the training outputs (0.5 + 1.5) / 2 = 1; validation deviations -1, 1, 3 and
    # targets -1, 1, 2: slope through the origin (1 + 1 + 6) / (1 + 1 + 9) = 8 / 11
    cal = fit_calibration(np.array([0.5, 1.5]), np.array([0.0, 2.0, 4.0]), np.array([-1.0, 1.0, 2.0]))
    assert cal.centre == pytest.approx(1.0)
    assert cal.scale == pytest.approx(8 / 11)
    assert (cal.n_train, cal.n_val) == (2, 3)


@pytest.mark.parametrize("targets,scale", [
    ([1.0, -1.0, -3.0], 0.0),   # anti-correlated on validation: predict the training mean
    ([-3.0, 3.0, 9.0], 1.0),    # slope 3: never spread further than trained
])
def test_scale_is_clipped_to_0_1(targets, scale):
    assert fit_calibration(np.array([1.0]), np.array([0.0, 2.0, 4.0]), np.array(targets)).scale == scale


def test_outputs_that_do_not_vary_on_validation_predict_the_mean():
    assert fit_calibration(np.array([2.0, 2.0]), np.array([2.0, 2.0]), np.array([1.0, -1.0])).scale == 0.0


def test_no_validation_sample_is_a_clear_error():
    with pytest.raises(InputError, match="validation"):
        fit_calibration(np.array([1.0]), np.array([]), np.array([]))


def _tiny() -> AAMConfig:
    return AAMConfig(embedding_dim=16, layers=1, heads=2, ff_dim=32, dropout=0.0, max_bp=12, asv_limit=8,
                     asv_encoder="kmer", kmer_size=3, task="regression", n_outputs=1)


def _args():
    batch = make_batch([[0, 1, 2, 3], [2, 4], [5], [1, 6, 7]], counts=[[9, 5, 2, 1], [4, 4], [7], [3, 2, 1]])
    return batch["tokens"], batch["asv_index"], batch["asv_mask"], batch["asv_counts"]


def test_folded_head_gives_k_times_output_minus_centre():
    torch.manual_seed(0)
    model = SequencePredictor(_tiny()).eval()
    args = _args()
    cal = Calibration(centre=0.3, scale=0.25, n_train=10, n_val=4)
    with torch.no_grad():
        before = model(*args)["target"].clone()
        apply_calibration(model, cal)
        after = model(*args)["target"]
    torch.testing.assert_close(after, 0.25 * (before - 0.3))


def test_ensemble_calibrates_the_mean_of_its_members():
    members = []
    for seed in range(2):
        torch.manual_seed(seed)
        members.append(SequencePredictor(_tiny()).eval())
    ensemble = EnsemblePredictor.of(members).eval()
    args = _args()
    with torch.no_grad():
        before = ensemble(*args)["target"].clone()
        apply_calibration(ensemble, Calibration(centre=-0.5, scale=0.6, n_train=10, n_val=4))
        after = ensemble(*args)["target"]
    torch.testing.assert_close(after, 0.6 * (before + 0.5))
