"""Fixtures of the oracle's tests.

``tests`` is not a package, so the fixture modules beside this file are imported by their own
names: pytest puts this folder on ``sys.path`` (its default ``prepend`` import mode), and
``pytest_plugins`` is refused outside the top-level conftest.
"""

# ---------------------------------------------------------------- licence registry simulator

from licence_fixtures import licence_simulator  # noqa: F401
