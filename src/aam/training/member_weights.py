"""The shares of a fine-tuned model's prediction: its neural members', its linear member's
(``finetune.linear_member``) and its forest member's (``finetune.forest_member``).

Why a rule of its own: each member's ``weight`` may be a number (its share; the neural members get
what the others leave) or ``auto``, an equal share among the parts the model has: 1/2 with one
member beside the neural ones, 1/3 with both. The forest joins only the target kinds its ``tasks``
names. Checked before any training, so a bad sum fails in one line, not after an hour.
"""

from __future__ import annotations

from collections.abc import Mapping

from aam.errors import InputError


def active_members(fine: Mapping, task: str) -> dict[str, Mapping]:
    """The tabular members this fine-tuning fits: ``linear`` and ``forest`` with their sections."""
    members = {}
    if fine.get("linear_member") is not None:
        members["linear"] = fine["linear_member"]
    forest = fine.get("forest_member")
    if forest is not None and task in forest.get("tasks", ["classification"]):
        members["forest"] = forest
    return members


def member_weights(fine: Mapping, task: str) -> dict[str, float]:
    """Per active member its share of the prediction (``auto``: equal shares among the neural
    ensemble and the members); InputError where the shares leave the neural members nothing."""
    members = active_members(fine, task)
    equal = 1.0 / (1 + len(members))
    weights = {name: equal if spec.get("weight", "auto") == "auto" else float(spec["weight"])
               for name, spec in members.items()}
    if weights and sum(weights.values()) >= 1.0:
        given = ", ".join(f"finetune.{name}_member.weight {w:g}" for name, w in weights.items())
        raise InputError(f"{given}: the members' shares must sum to less than 1, leaving the neural "
                         "members a share")
    return weights
