"""SMS Secured Packets: the C codec (sms/secured_packet.c) and the independent Python device side
(scripts/secured_packet.py, python3-cryptography) against each other.

C -> Python: the packets and SMS user data below were written by sms_sp_encode() and
sms_sp_sms_part() + sms_udh_encode(); Python must open them and write the very same octets.
Python -> C: test/unit/secured_packet_vectors.txt, which test_secured_packet (cmocka) decodes and
re-encodes, must be exactly what the script writes today.
"""
import os
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(ROOT, "scripts", "secured_packet.py")
VECTORS = os.path.join(ROOT, "test", "unit", "secured_packet_vectors.txt")
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import secured_packet as sp  # noqa: E402

# Written by the C encoder (keys: the "secret" octets as KIc key then KID key).
C_PACKETS = [
    dict(
        name="coap_content_aes128",
        params="12121600B20203",
        secret="0B121920272E353C434A51585F666D747B828990979EA5ACB3BAC1C8CFD6DDE4",
        counter=42,
        data="05096045ABCDFF32322E35",
        packet="00281516001212B2020309CF2AD877CF41A5BDB7CDAC10B742911638CC26E1535C4407159768"
               "1C6362C5",
        uds=["02700000281516001212B2020309CF2AD877CF41A5BDB7CDAC10B742911638CC26E1535C4407"
             "1597681C6362C5"],
    ),
    dict(
        name="concat_aes256_plus_one",
        params="52621E09B20203",
        secret="161D242B323940474E555C636A71787F868D949BA2A9B0B7BEC5CCD3DAE1E8EFF6FD040B1219"
               "20272E353C434A51585F666D747B828990979EA5ACB3BAC1C8CF",
        counter=1,
        data=bytes(255 - i for i in range(150)).hex(),
        packet="00B8151E095262B2020307598FEBB2F7F4C628BB53CA09555900DB81A4075F99DF5B2448E2FD"
               "E20DAA3982117578E64F8C6841C5F690880B96F98D325DDCDC461D106316BFE1962BED1E1792"
               "4379E11AFFBDFC1FD4970395803D52B28168E48CCF228FB3CA949EC70DFC170A505AA2A95BFE"
               "2584D7B52F1798E6C64437149C504DBC54EA482E127DAFF5AEC9A9D30FE38FD51E3D82E06246"
               "CEDBCA905AB89EA8A7B98272B7EDB605800C2CA17BE530D9609B8B7EAAAA21453A3C",
        uds=["0770000003A7020100B8151E095262B2020307598FEBB2F7F4C628BB53CA09555900DB81A4075F"
             "99DF5B2448E2FDE20DAA3982117578E64F8C6841C5F690880B96F98D325DDCDC461D106316BF"
             "E1962BED1E17924379E11AFFBDFC1FD4970395803D52B28168E48CCF228FB3CA949EC70DFC17"
             "0A505AA2A95BFE2584D7B52F1798E6C64437149C504DBC54EA",
             "050003A70202482E127DAFF5AEC9A9D30FE38FD51E3D82E06246CEDBCA905AB89EA8A7B98272"
             "B7EDB605800C2CA17BE530D9609B8B7EAAAA21453A3C"],
    ),
    dict(
        name="clear_aes192_available",
        params="00220A00B20203",
        secret="21282F363D444B525960676E757C838A91989FA6ADB4BBC2C9D0D7DEE5ECF3FA01080F161D24"
               "2B323940474E555C636A",
        counter=0xABCDEF0123,
        data="73656375726564",
        packet="001D150A000022B20203ABCDEF0123000B5E61338D3213E673656375726564",
        uds=["027000001D150A000022B20203ABCDEF0123000B5E61338D3213E673656375726564"],
    ),
]


def keys_of(v):
    return sp.parse_keys(bytes.fromhex(v["params"]), bytes.fromhex(v["secret"]))


@pytest.mark.parametrize("v", C_PACKETS, ids=[v["name"] for v in C_PACKETS])
def test_python_opens_what_c_wrote(v):
    ks = keys_of(v)
    data, counter = sp.decode_command(ks, bytes.fromhex(v["packet"]))
    assert data == bytes.fromhex(v["data"])
    assert counter == v["counter"]


@pytest.mark.parametrize("v", C_PACKETS, ids=[v["name"] for v in C_PACKETS])
def test_python_writes_what_c_wrote(v):
    ks = keys_of(v)
    packet = sp.encode_command(ks, v["counter"], bytes.fromhex(v["data"]))
    assert packet.hex().upper() == v["packet"]


@pytest.mark.parametrize("v", C_PACKETS, ids=[v["name"] for v in C_PACKETS])
def test_sms_framing_matches(v):
    packet = bytes.fromhex(v["packet"])
    uds = [bytes.fromhex(u) for u in v["uds"]]
    assert sp.sms_user_data(packet, ref=0xA7) == uds
    assert all(len(u) <= 140 for u in uds)
    assert sp.packet_from_user_data(list(reversed(uds))) == packet
    # The CPI (IEI 70, no data) opens the first UDH only (3GPP 31.115 4).
    assert uds[0][1:3] == b"\x70\x00"
    assert all(b"\x70\x00" not in u[1:1 + u[0]] for u in uds[1:])


def test_c_coap_message_in_ber_tlv():
    ks = keys_of(C_PACKETS[0])
    data, _ = sp.decode_command(ks, bytes.fromhex(C_PACKETS[0]["packet"]))
    coap = sp.tlv_unwrap(data)
    assert coap[:2] == b"\x60\x45"  # ACK, 2.05 Content
    assert coap[coap.index(0xFF) + 1:] == b"22.5"


def test_vectors_file_is_what_python_writes():
    """test_secured_packet (cmocka) reads this file: it must be current."""
    with open(VECTORS) as f:
        committed = f.read().splitlines()
    assert committed == list(sp.vector_lines())
    assert len([x for x in committed if not x.startswith("#")]) >= 13


def test_every_octet_tampered_is_refused():
    v = C_PACKETS[1]
    ks = keys_of(v)
    packet = bytes.fromhex(v["packet"])
    for i in range(len(packet)):
        bad = bytearray(packet)
        bad[i] ^= 0x01
        with pytest.raises(sp.SecuredPacketError) as e:
            sp.decode_command(ks, bytes(bad))
        expected = {0: "cpl", 1: "cpl", 2: "chl", 3: "spi-mismatch", 4: "checksum",
                    5: "keyid-mismatch", 6: "keyid-mismatch", 7: "tar", 8: "tar", 9: "tar"}
        assert e.value.reason == expected.get(i, "checksum"), i
    for cut in range(len(packet)):
        with pytest.raises(sp.SecuredPacketError):
            sp.decode_command(ks, packet[:cut])


def test_counter_replay_and_modes():
    v = C_PACKETS[0]
    ks = keys_of(v)
    _, counter = sp.decode_command(ks, bytes.fromhex(v["packet"]))
    assert sp.counter_acceptable(ks.spi, 41, counter)
    assert not sp.counter_acceptable(ks.spi, counter, counter)  # the same SMS again
    plus_one = keys_of(C_PACKETS[1]).spi
    assert sp.counter_acceptable(plus_one, 0, 1)
    assert not sp.counter_acceptable(plus_one, 0, 2)
    available = keys_of(C_PACKETS[2]).spi
    assert sp.counter_acceptable(available, 100, 3)


@pytest.mark.parametrize("params,reason", [
    ("11121600B20203", "des"),          # KIc: DES CBC
    ("1D121600B20203", "des"),          # KIc: DES ECB
    ("12011600B20203", "des"),          # KID: DES CBC
    ("15121600B20203", "algorithm"),    # KIc: 3DES
    ("12121400B20203", "spi-integrity"),
    ("12121700B20203", "spi-integrity"),
    ("12121600000000", "tar"),
])
def test_refused_key_parameters(params, reason):
    with pytest.raises(sp.SecuredPacketError) as e:
        sp.parse_keys(bytes.fromhex(params), bytes(32))
    assert e.value.reason == reason


def test_cmac_rfc4493_example_2():
    key = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
    msg = bytes.fromhex("6bc1bee22e409f96e93d7e117393172a")
    assert sp._cmac8(key, msg) == bytes.fromhex("070a16b46b4d4144")


def test_cli_round_trip():
    v = C_PACKETS[0]
    enc = subprocess.run([sys.executable, SCRIPT, "encode", v["params"], v["secret"],
                          str(v["counter"]), v["data"]], capture_output=True, text=True,
                         check=True)
    assert enc.stdout.strip() == v["packet"]
    dec = subprocess.run([sys.executable, SCRIPT, "decode", v["params"], v["secret"],
                          v["packet"]], capture_output=True, text=True, check=True)
    assert dec.stdout.strip() == f"counter {v['counter']} data {v['data']}"
    bad = v["packet"][:-2] + "00"
    dec = subprocess.run([sys.executable, SCRIPT, "decode", v["params"], v["secret"], bad],
                         capture_output=True, text=True)
    assert dec.returncode == 1 and "checksum" in dec.stderr
