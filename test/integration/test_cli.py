"""The operator's commands for pairing a modem, against the virtual modem."""
import subprocess

from lwm2m_peers import GATEWAY_BIN


def run(*args, timeout=60):
    return subprocess.run([GATEWAY_BIN, *args], capture_output=True, text=True, timeout=timeout)


def test_sms_decode_prints_a_3gpp_example():
    # 3GPP TS 23.040 style SMS-DELIVER, GSM 7-bit "How are you?" from +31641600986.
    p = run("sms", "decode",
            "07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07")
    assert p.returncode == 0, p.stderr
    assert "SMS-DELIVER" in p.stdout
    assert "+31641600986" in p.stdout
    assert '"How are you?"' in p.stdout


def test_sms_decode_rejects_garbage_with_a_reason():
    p = run("sms", "decode", "07911326ZZ")
    assert p.returncode == 1
    assert "not a valid SMS PDU" in p.stderr


def test_modem_probe_reports_identity_and_a_config_snippet(peers):
    modem = peers.vmodem(["14155550125"], extra=["--personality", "quectel"])
    p = run("modem", "probe", modem.link)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Quectel" in p.stdout
    assert "bindings = { sms = { enabled = true;" in p.stdout
    assert modem.link in p.stdout or "/dev/serial/by-id" in p.stdout


def test_modem_list_runs_without_modems():
    p = run("modem", "list")
    assert p.returncode == 0, p.stderr
