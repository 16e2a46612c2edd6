"""The operators' form for a catalogue solution: its text fields to the service's arguments (``parse``) and a
solution back to the form's values (``values_of``). Languages are typed separated by commas; the gateway
model by its name or an alias (empty: none); *published* is a checkbox.
"""

from __future__ import annotations

from typing import Any

from jaif.catalogue import schemas

TEXTS = ("name", "summary", "domain", "licence", "intended_use", "limitations", "training_data")
FIELDS = ("slug", *TEXTS, "languages", "model")


def parse(form: dict[str, str], *, new: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """(the solution's fields, {field: error}): create_solution's arguments (with ``slug`` when ``new``), or
    update_solution's changes. The service checks lengths, the slug's form and the model's name."""
    errors: dict[str, str] = {}
    data: dict[str, Any] = {field: form.get(field, "").strip() for field in TEXTS}
    data["languages"] = [part.strip() for part in form.get("languages", "").split(",") if part.strip()]
    data["model"] = form.get("model", "").strip() or None
    data["is_published"] = bool(form.get("is_published"))
    if new:
        data["slug"] = form.get("slug", "").strip()
        if not data["slug"]:
            errors["slug"] = "Give the solution a slug for its address, e.g. med-qa."
    if not data["name"]:
        errors["name"] = "Give the solution a name."
    if len(data["languages"]) > schemas.LANGUAGES_MAX:
        errors["languages"] = f"Name at most {schemas.LANGUAGES_MAX} languages."
    return data, errors


def blank() -> dict[str, Any]:
    return {"is_published": False}


def values_of(solution: schemas.Solution) -> dict[str, Any]:
    return {
        **{field: getattr(solution, field) for field in TEXTS},
        "slug": solution.slug, "languages": ", ".join(solution.languages),
        "model": solution.model.name if solution.model else "", "is_published": solution.is_published,
    }
