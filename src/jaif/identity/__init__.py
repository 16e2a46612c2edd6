"""Sign-in: local accounts, e-mail verification, password reset, single sign-on, personal access tokens."""
