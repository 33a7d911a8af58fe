from tests.api.conftest import running  # noqa: F401  (the real server, shared with the API tests)
