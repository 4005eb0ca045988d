"""scripts/demo.py, the README's first command, for the bindings that run in seconds: it must
finish its round trips and exit 0 (the SMS default is covered by the SMS tests' peers). The
LoRaWAN demo (about 10 s) needs mosquitto, like the LoRaWAN binding's tests."""
import os
import subprocess

import pytest

from lwm2m_peers import ROOT


@pytest.mark.parametrize("binding, seen", [
    ("nidd", "Notify /3/0/13"),
    ("http", "Read-Composite: answered by the gateway 4.05"),
    ("lorawan", "lt=2592000 lwm2m=1.1 b=UQ, objects </1/0>,</3/0> (supplied by the gateway)"),
])
def test_demo_runs_its_round_trips(binding, seen):
    p = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "scripts", "demo.py"),
                        "--binding", binding], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "demo finished: every round trip crossed the gateway" in p.stdout
    assert seen in p.stdout
