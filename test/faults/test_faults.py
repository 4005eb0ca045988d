"""The fault suite (issue 11): each fault, and what the peers saw. Nothing acknowledged may be
lost, nothing delivered twice, no device may have to register again, every server request must
get an answer, and legitimate devices keep working. scripts/faults prints the same figures.
"""
import os

import pytest

import fault_scenarios as fs

KILLS = int(os.environ.get("GW_FAULT_KILLS", "20"))


def assert_nothing_lost(figures):
    for f in figures:
        assert f.lost == 0, f
        assert f.duplicated == 0, f
        assert f.registrations == 0, f
        assert f.answered == f.requests, f


def test_sigkill_under_mixed_traffic(peers):
    figures, gw = fs.sigkill(peers, kills=KILLS)
    assert_nothing_lost(figures)
    nidd, sms, reads = figures
    assert nidd.acked > KILLS and sms.acked > 0  # traffic flowed through the kills
    assert reads.requests > KILLS


@pytest.mark.parametrize("seconds", [3, 10])
def test_modem_unplugged_mid_traffic(peers, seconds):
    figures, gw = fs.modem_unplug(peers, seconds)
    assert_nothing_lost(figures)
    assert figures[0].delivered == figures[0].sent
    assert gw.metrics()["unavailable_total"] == 0  # no 5.03 for the burst


@pytest.mark.parametrize("mode", ["drop", "refuse"])
def test_upstream_outage(peers, mode):
    figures, gw = fs.upstream_outage(peers, mode, 5)
    assert_nothing_lost(figures)
    for f in figures:
        assert f.acked > 0
