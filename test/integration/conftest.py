"""Integration tests: the gateway between real peers on loopback.

Every test starts what it needs on free loopback ports: the project's test LwM2M server and test
devices (built on libcoap, test/peers/), and the gateway itself, and stops them at the end.
Tests assert on what the peers saw.
"""
import os

import pytest

from lwm2m_peers import (DEVICE_BIN, GATEWAY_BIN, SERVER_BIN, Device, Gateway, HttpDevice,
                         Mosquitto, MqttDevice, TestServer, VModem)


@pytest.fixture
def peers(tmp_path):
    """Starts peers on demand and stops them all at the end; the gateway must exit cleanly."""
    started = []

    class Factory:
        log_dir = str(tmp_path)

        def server(self, **kw):
            s = TestServer(str(tmp_path), **kw)
            started.append(s)
            return s

        def gateway(self, upstream_uri, **kw):
            g = Gateway(str(tmp_path), upstream_uri, **kw)
            started.append(g)
            return g

        def restart(self, gateway, **kw):
            """gateway (killed or stopped) started again on its state_dir and ports."""
            g = gateway.restart(**kw)
            started.append(g)
            return g

        def device(self, gateway, ep, server_uri=None, **kw):
            """A test device; on the gateway's SGi port unless server_uri says otherwise
            (e.g. a vmodem phone port, making it an SMS device)."""
            d = Device(str(tmp_path), server_uri or gateway.sgi_uri, ep, **kw)
            started.append(d)
            return d

        def vmodem(self, phones, **kw):
            m = VModem(str(tmp_path), phones, **kw)
            started.append(m)
            return m

        def broker(self, **kw):
            b = Mosquitto(str(tmp_path), **kw)
            started.append(b)
            return b

        def mqtt_device(self, broker, ep, **kw):
            d = MqttDevice(str(tmp_path), broker, ep, **kw)
            started.append(d)
            return d

        def http_device(self, gateway_url, ep, **kw):
            d = HttpDevice(str(tmp_path), gateway_url, ep, **kw)
            started.append(d)
            return d

    yield Factory()
    failures = []
    for p in reversed(started):
        rc = p.stop()
        if isinstance(p, Gateway) and rc != 0:
            failures.append(f"gateway exited with {rc}:\n" + p.peer.log_text()[-4000:])
    assert not failures, "\n".join(failures)


for binary in (GATEWAY_BIN, SERVER_BIN, DEVICE_BIN):
    if not os.access(binary, os.X_OK):
        raise RuntimeError(f"{binary} is not built; set GW_BUILD_DIR to the build directory")
