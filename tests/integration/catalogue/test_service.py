"""The catalogue against a real database: operators curate, everyone signed in reads what is published,
solutions link to gateway models, and the built-in models come with their model cards."""

from __future__ import annotations

import pytest

from jaif.bootstrap import initialise
from jaif.catalogue import service
from jaif.errors import Conflict, Forbidden, InvalidRequest, NotFound
from jaif.inference import service as inference


def add(session, actor, slug="med-qa", **fields):
    card = {
        "name": "Medical QA",
        "summary": "Answers clinicians' questions.",
        "domain": "health",
        "licence": "Apache-2.0",
        "intended_use": "Decision support, with a human in the loop.",
        "limitations": "Not a diagnosis.",
        "languages": ["English", "German"],
    } | fields
    return service.create_solution(session=session, actor=actor, slug=slug, **card)


def test_only_operators_create_and_edit_solutions(session, world):
    alice, op = world.user("alice"), world.operator()
    with pytest.raises(Forbidden):
        add(session, alice)
    add(session, op, is_published=True)
    with pytest.raises(Forbidden):
        service.update_solution(session=session, actor=alice, slug="med-qa", changes={"name": "Mine"})
    with pytest.raises(Forbidden):
        service.publish(session=session, actor=alice, slug="med-qa", published=False)


def test_unpublished_solutions_exist_only_for_operators(session, world):
    alice, op = world.user("alice"), world.operator()
    draft = add(session, op)
    assert draft.is_published is False
    assert service.list_solutions(session=session, actor=alice) == []
    with pytest.raises(NotFound):
        service.get_solution(session=session, actor=alice, slug="med-qa")
    # Operators see drafts when they ask; users asking the same get published ones only.
    assert [s.slug for s in service.list_solutions(session=session, actor=op, include_unpublished=True)] == ["med-qa"]
    assert service.list_solutions(session=session, actor=alice, include_unpublished=True) == []
    service.publish(session=session, actor=op, slug="med-qa")
    shown = service.get_solution(session=session, actor=alice, slug="med-qa")
    assert shown.licence == "Apache-2.0" and shown.languages == ["English", "German"]


def test_a_solution_links_to_a_gateway_model_by_name_or_alias(session, world):
    op = world.operator()
    inference.add_model(session=session, name="llama-med", upstreams=["http://gpu1:8000/v1"], aliases=["med-chat"])
    by_alias = add(session, op, model="med-chat")
    assert by_alias.model.name == "llama-med"
    assert by_alias.model.aliases == ["med-chat"] and by_alias.model.served is True
    with pytest.raises(InvalidRequest) as refused:
        add(session, op, slug="other", model="no-such-model")
    assert refused.value.param == "model"
    unlinked = service.update_solution(session=session, actor=op, slug="med-qa", changes={"model": None})
    assert unlinked.model is None


def test_a_linked_model_without_active_replicas_is_shown_as_not_served(session, world):
    op = world.operator()
    model = inference.add_model(session=session, name="llama-off", upstreams=["http://gpu1:8000/v1"])
    for replica in model.replicas:
        replica.is_active = False
    session.flush()
    assert add(session, op, model="llama-off").model.served is False


def test_slugs_are_unique_and_url_safe(session, world):
    op = world.operator()
    add(session, op)
    with pytest.raises(Conflict):
        add(session, op)
    for bad in ("Med QA", "med_qa", "-med", "", "a" * 101, "med\x00qa"):
        with pytest.raises(InvalidRequest):
            add(session, op, slug=bad)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", " "),
        ("name", "two\nlines"),
        ("licence", "x" * 201),
        ("intended_use", "nul\x00"),
        ("languages", ["English", ""]),
        ("languages", ["Eng\rlish"]),
    ],
)
def test_bad_model_card_fields_are_refused_by_name(session, world, field, value):
    with pytest.raises(InvalidRequest) as refused:
        add(session, world.operator(), **{field: value})
    assert refused.value.param == field


def test_edits_change_only_the_fields_given(session, world):
    op = world.operator()
    add(session, op)
    edited = service.update_solution(
        session=session,
        actor=op,
        slug="med-qa",
        changes={"limitations": "Not for emergencies.", "languages": ["French"]},
    )
    assert edited.limitations == "Not for emergencies." and edited.languages == ["French"]
    assert edited.intended_use == "Decision support, with a human in the loop."
    for bad in ({"slug": "renamed"}, {"name": None}, {"is_published": "yes"}):
        with pytest.raises(InvalidRequest):
            service.update_solution(session=session, actor=op, slug="med-qa", changes=bad)


def test_search_by_words_domain_and_language(session, world):
    op, alice = world.operator(), world.user()
    add(session, op, is_published=True)
    add(
        session,
        op,
        slug="climate-downscaling",
        name="Climate downscaling",
        domain="climate",
        summary="100%_sure",
        languages=["English"],
        is_published=True,
    )

    def found(**filters):
        return [s.slug for s in service.list_solutions(session=session, actor=alice, **filters)]

    assert found(domain="Health") == ["med-qa"]
    assert found(language="german") == ["med-qa"]
    assert found(q="clinicians") == ["med-qa"]
    assert found(q="100%_") == ["climate-downscaling"]  # LIKE wildcards are taken literally
    assert found(q="_") == ["climate-downscaling"]
    assert service.list_domains(session=session, actor=alice) == ["climate", "health"]


def test_first_start_adds_the_built_in_models_with_their_model_cards(session, world):
    initialise(session=session, builtin_models=True)
    alice = world.user()
    cards = {s.slug: s for s in service.list_solutions(session=session, actor=alice)}
    assert {"smollm2-135m-instruct", "all-minilm-l6-v2"} <= set(cards)
    chat, embedding = cards["smollm2-135m-instruct"], cards["all-minilm-l6-v2"]
    for card in (chat, embedding):
        assert card.licence == "Apache-2.0" and card.languages == ["English"]
        assert card.intended_use and card.limitations and card.training_data and card.model.served
    assert chat.model.aliases == ["default-chat"] and chat.model.kind == "chat"
    assert embedding.model.aliases == ["default-embedding"] and "256 word pieces" in embedding.limitations
    # Idempotent, and an operator's edits survive the next start.
    service.update_solution(
        session=session, actor=world.operator(), slug="all-minilm-l6-v2", changes={"domain": "search"}
    )
    initialise(session=session, builtin_models=True)
    assert service.get_solution(session=session, actor=alice, slug="all-minilm-l6-v2").domain == "search"


def test_without_built_in_models_the_first_start_adds_no_entries(session, world):
    initialise(session=session, builtin_models=False)
    assert service.list_solutions(session=session, actor=world.operator(), include_unpublished=True) == []


def test_seeding_before_the_models_are_registered_leaves_the_entries_unlinked(session, world):
    assert service.seed_builtin_solutions(session=session) == ["smollm2-135m-instruct", "all-minilm-l6-v2"]
    assert all(s.model is None for s in service.list_solutions(session=session, actor=world.user()))
    assert service.seed_builtin_solutions(session=session) == []
