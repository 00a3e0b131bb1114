"""The shared names: one spelling, and what the runtime writes is what the watches select."""

from __future__ import annotations

from typing import get_args

from bespoke_operator import constants
from bespoke_operator.api import ModelCustomization, ModelVersion
from bespoke_operator.api.crd import KINDS


def test_the_api_version_is_the_group_and_version_the_crds_and_models_declare() -> None:
    assert f"{constants.GROUP}/{constants.VERSION}" == constants.API_VERSION
    for model in (ModelCustomization, ModelVersion):
        assert get_args(model.model_fields["api_version"].annotation) == (constants.API_VERSION,)
    assert {k.plural for k in KINDS} == {constants.CUSTOMIZATIONS, constants.VERSIONS}


def test_every_bespoke_key_lives_under_the_api_group() -> None:
    owned = [
        constants.CUSTOMIZATION_LABEL,
        constants.VERSION_LABEL,
        constants.ATTEMPT_LABEL,
        constants.APPROVAL_ANNOTATION,
        constants.TRAINING_HASH_ANNOTATION,
        constants.FINALIZER,
    ]
    assert all(key.startswith(f"{constants.DOMAIN}/") for key in owned)
