"""Integration tests: the gateway between real peers on loopback.

Every test starts what it needs on free loopback ports: the project's test LwM2M server and test
devices (built on libcoap, test/peers/), and the gateway itself, and stops them at the end.
Tests assert on what the peers saw.
"""
import os

import pytest

from lwm2m_peers import DEVICE_BIN, GATEWAY_BIN, SERVER_BIN, peers_fixture


peers = pytest.fixture(name="peers")(peers_fixture)


for binary in (GATEWAY_BIN, SERVER_BIN, DEVICE_BIN):
    if not os.access(binary, os.X_OK):
        raise RuntimeError(f"{binary} is not built; set GW_BUILD_DIR to the build directory")
