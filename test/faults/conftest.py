"""The fault suite (issue 11) uses the integration tests' peers and their `peers` fixture."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "integration"))

from lwm2m_peers import peers_fixture  # noqa: E402

peers = pytest.fixture(name="peers")(peers_fixture)
