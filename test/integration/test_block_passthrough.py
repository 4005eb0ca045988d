"""Block-wise transfers (RFC 7959) pass through the gateway untouched, checked with libcoap's own
client and server as the peers: coap-client as a device on the SGi binding, coap-server as the
upstream server."""
import shutil
import subprocess

import pytest

from lwm2m_peers import Peer, free_port

CLIENT = shutil.which("coap-client-notls") or shutil.which("coap-client")
SERVER = shutil.which("coap-server-notls") or shutil.which("coap-server")


@pytest.mark.skipif(not CLIENT or not SERVER, reason="libcoap3-bin is not installed")
def test_block1_put_and_block2_get_through_the_gateway(peers, tmp_path):
    port = free_port()
    server = Peer("coap-server", [SERVER, "-A", "127.0.0.1", "-p", str(port), "-v", "0"],
                  str(tmp_path))
    try:
        gw = peers.gateway(f"coap://127.0.0.1:{port}")
        body = "0123456789abcdef" * 8  # 128 bytes: eight 16-byte blocks each way
        put = subprocess.run([CLIENT, "-m", "put", "-b", "16", "-e", body,
                              f"{gw.sgi_uri}/example_data"], capture_output=True, timeout=30)
        assert put.returncode == 0, put.stderr
        direct = subprocess.run([CLIENT, "-m", "get", f"coap://127.0.0.1:{port}/example_data"],
                                capture_output=True, text=True, timeout=30)
        assert direct.stdout.strip() == body  # the server reassembled all Block1 blocks
        got = subprocess.run([CLIENT, "-m", "get", "-b", "16", f"{gw.sgi_uri}/example_data"],
                             capture_output=True, text=True, timeout=30)
        assert got.stdout.strip() == body  # and the device reassembled all Block2 blocks
        assert gw.metrics()["uplink_requests_total"] == 16
    finally:
        server.stop()
