from tests.support.services import api, engine, factory, mailer, migrated_url, portal, session, world  # noqa: F401
