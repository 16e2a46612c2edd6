"""The password policy, the token formats and the redirect guard: pure functions, no database."""

from __future__ import annotations

import hashlib

import pytest

from jaif.identity import secret_tokens
from jaif.identity.policy import password_problem
from jaif.web.session import safe_next


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("short", "at least 12 characters"),
        ("x" * 257, "at most 256"),
        ("password1234", "too common"),
        ("Password1234", "too common"),
        ("aaaaaaaaaaaaaaa", "5 different characters"),
        ("abababababab", "5 different characters"),
        ("ada.lovelace@example.org", "e-mail address"),
        ("my ada.lovelace secret", "e-mail address"),
    ],
)
def test_bad_passwords_are_refused_with_a_reason(password, problem):
    found = password_problem(password, email="ada.lovelace@example.org")
    assert found is not None and problem in found


@pytest.mark.parametrize("password", ["correct horse battery", "Zürich-Jülich 2026!", "x7$Lq!pA0vR#"])
def test_good_passwords_pass(password):
    assert password_problem(password, email="ada.lovelace@example.org") is None


def test_the_minimum_length_is_a_setting():
    assert password_problem("a1b2c3d4e5", min_length=10) is None
    assert "at least 16" in password_problem("a1b2c3d4e5f6", min_length=16)


def test_a_short_local_part_does_not_forbid_common_letters():
    assert password_problem("all the bob things", email="bo@example.org") is None


def test_personal_tokens_have_a_prefix_and_only_their_hash_is_kept():
    token = secret_tokens.new_personal_token()
    assert token.startswith("jaifpat-") and len(token) > 40
    assert secret_tokens.display_prefix(token) == token[:16]
    assert secret_tokens.digest(token) == hashlib.sha256(token.encode()).hexdigest()
    assert len({secret_tokens.new_personal_token() for _ in range(100)}) == 100
    assert secret_tokens.is_personal_token(token) and not secret_tokens.is_personal_token("jaif-abc")


def test_one_time_tokens_are_long_and_unique():
    made = {secret_tokens.new_one_time_token() for _ in range(100)}
    assert len(made) == 100 and min(len(t) for t in made) >= 43


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/account", "/account"),
        ("/projects/1/team?tab=keys", "/projects/1/team?tab=keys"),
        ("", "/"),
        (None, "/"),
        ("https://evil.example/", "/"),
        ("//evil.example/x", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("account", "/"),
    ],
)
def test_only_local_paths_are_followed_after_sign_in(value, expected):
    assert safe_next(value) == expected
