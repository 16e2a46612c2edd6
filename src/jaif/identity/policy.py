"""The password policy: long enough, not an obvious choice, not the user's own e-mail address.

NIST SP 800-63B asks for length and a check against known-bad passwords rather than composition rules;
this follows it with a short built-in list of the most common choices.
"""

from __future__ import annotations

MAX_LENGTH = 256  # argon2 hashes any length; a bound keeps a sign-in form from being a load test

COMMON = frozenset(
    {
        "password", "password1", "password12", "password123", "password1234", "passw0rd", "p@ssw0rd",
        "123456789012", "1234567890", "qwertyuiop", "qwertyuiop123", "qwerty123456", "iloveyou1234",
        "letmein12345", "welcome12345", "administrator", "changeme1234", "aifactory123", "supercomputer",
        "correcthorsebatterystaple", "trustno1trustno1", "abcdefghijkl", "abc123abc123", "000000000000",
        "111111111111", "monkey123456", "dragon123456", "football1234", "baseball1234", "sunshine1234",
    }
)


def password_problem(password: str, *, email: str = "", min_length: int = 12) -> str | None:
    """What is wrong with ``password``, in words for the form; None when it is acceptable."""
    if len(password) < min_length:
        return f"Use at least {min_length} characters."
    if len(password) > MAX_LENGTH:
        return f"Use at most {MAX_LENGTH} characters."
    lowered = password.lower()
    if lowered in COMMON:
        return "This password is too common; choose another."
    if len(set(password)) < 5:
        return "Use at least 5 different characters."
    email = email.strip().lower()
    local = email.split("@", 1)[0]
    if email and (lowered == email or (len(local) >= 4 and local in lowered)):
        return "Do not use your e-mail address in your password."
    return None
