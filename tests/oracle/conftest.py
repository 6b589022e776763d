"""Fixtures of the oracle's tests.

``tests`` is not a package, so the fixture modules beside this file are imported by their own
names: pytest puts this folder on ``sys.path`` (its default ``prepend`` import mode), and
``pytest_plugins`` is refused outside the top-level conftest.
"""

# The custody bank simulator (bank_fixtures) and the licence registry simulator
# (licence_fixtures), each as a real process.

from bank_fixtures import bank_simulator  # noqa: F401
from licence_fixtures import licence_simulator  # noqa: F401
