"""The catalogue entries of the built-in models are complete model cards of exactly those models."""

from __future__ import annotations

import re

from jaif.catalogue.builtin import BUILTIN_SOLUTIONS
from jaif.catalogue.schemas import SLUG_PATTERN, SolutionCreate
from jaif.inference.service import BUILTIN_MODELS


def test_one_entry_per_built_in_model_linked_by_name():
    assert [s["model"] for s in BUILTIN_SOLUTIONS] == [m.name for m in BUILTIN_MODELS]


def test_every_entry_is_a_complete_valid_model_card():
    for entry in BUILTIN_SOLUTIONS:
        card = SolutionCreate.model_validate(entry)  # within every documented limit
        assert re.fullmatch(SLUG_PATTERN, card.slug)
        assert card.licence == "Apache-2.0" and card.languages == ["English"]
        for field in ("summary", "intended_use", "limitations", "training_data"):
            assert len(getattr(card, field)) > 80, (card.slug, field)
        assert "https://huggingface.co/" in card.training_data
