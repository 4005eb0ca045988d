#!/usr/bin/python3
"""SMS Secured Packets for LwM2M, the device (UICC application) side, in Python.

An implementation of the Command Packet of 3GPP TS 31.115 clause 4 / ETSI TS 102 225 5.1.1 as
LwM2M Transport 1.2.1 5.3.2.1.3 profiles it (AES-CBC ciphering, AES-CMAC checksum, TAR B2 02 03),
written from the specifications with python3-cryptography and sharing no code with the C codec in
sms/secured_packet.c: the two check each other (test/integration/test_secured_packet_interop.py,
test/unit/secured_packet_vectors.txt).

    secured_packet.py vectors                 print the interop vectors file
    secured_packet.py encode PARAMS KEYS CNTR DATA    (hex arguments; CNTR decimal)
    secured_packet.py decode PARAMS KEYS PACKET

PARAMS: the 7 octets of "SMS Binding Key Parameters" (KIc, KID, SPI, TAR); KEYS: "SMS Binding
Secret Keys", the KIc key then the KID key.
"""
import struct
import sys
from dataclasses import dataclass

from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

LWM2M_TAR = bytes.fromhex("B20203")  # LwM2M 5.3.2.1.3, ETSI TS 101 220 Annex D
COAP_TAG = 0x05                      # LwM2M 5.3.2.1.3: "the Tag (TBD: e.g. 0x05)"
CC_OCTETS = 8                        # leftmost 64 bits of the AES-CMAC
AES_BLOCK = 16

# SPI first octet (ETSI TS 102 225, coding of the SPI)
SPI_CHECKSUM_BITS = 0b00000011   # 00 none, 01 RC, 10 CC, 11 DS
SPI_CC = 0b00000010
SPI_CIPHERING = 0b00000100
SPI_COUNTER_BITS = 0b00011000
COUNTER_NONE, COUNTER_AVAILABLE, COUNTER_HIGHER, COUNTER_PLUS_ONE = 0, 1, 2, 3

IEI_CONCAT_8, IEI_CONCAT_16, IEI_COMMAND_PACKET = 0x00, 0x08, 0x70
TP_PID_USIM_DATA_DOWNLOAD = 0x7F
TP_DCS_8BIT_CLASS2 = 0xF6


class SecuredPacketError(ValueError):
    """A packet or a key set that must be refused; .reason is a short keyword."""

    def __init__(self, reason, detail=""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class KeySet:
    kic: int
    kid: int
    spi: bytes
    tar: bytes
    kic_key: bytes
    kid_key: bytes

    @property
    def ciphering(self):
        return bool(self.spi[0] & SPI_CIPHERING)

    @property
    def counter_mode(self):
        return (self.spi[0] & SPI_COUNTER_BITS) >> 3

    def __repr__(self):  # keys never end up in a log or a traceback
        return f"KeySet(kic={self.kic:#04x}, kid={self.kid:#04x}, spi={self.spi.hex()})"


def _single_des(octet):
    algorithm, mode = octet & 0b11, (octet >> 2) & 0b11
    return algorithm == 0b01 and mode in (0b00, 0b11)  # DES CBC, DES ECB


def check_keys(ks):
    if _single_des(ks.kic) or _single_des(ks.kid):
        raise SecuredPacketError("des", "single DES is not allowed (LwM2M 5.3.2.1.3)")
    if ks.spi[0] & SPI_CHECKSUM_BITS != SPI_CC:
        raise SecuredPacketError("spi-integrity", "SPI must ask for a cryptographic checksum")
    if ks.kid & 0x0F != 0x02 or (ks.ciphering and ks.kic & 0x0F != 0x02):
        raise SecuredPacketError("algorithm", "KIc must be AES-CBC and KID AES-CMAC")
    if len(ks.kid_key) not in (16, 24, 32) or (ks.ciphering and len(ks.kic_key) not in (16, 24, 32)):
        raise SecuredPacketError("key-length")
    if ks.tar != LWM2M_TAR:
        raise SecuredPacketError("tar", ks.tar.hex())
    return ks


def parse_keys(params, secret):
    """LwM2M Transport 5.3: key parameters in the order KIc, KID, SPI, TAR; secret keys KIc, KID."""
    if len(params) != 7:
        raise SecuredPacketError("params-length", str(len(params)))
    if len(secret) not in (32, 48, 64):
        raise SecuredPacketError("key-length", str(len(secret)))
    n = len(secret) // 2
    return check_keys(KeySet(kic=params[0], kid=params[1], spi=bytes(params[2:4]),
                             tar=bytes(params[4:7]), kic_key=bytes(secret[:n]),
                             kid_key=bytes(secret[n:])))


def _cmac8(key, message):
    mac = cmac.CMAC(algorithms.AES(key))
    mac.update(message)
    return mac.finalize()[:CC_OCTETS]


def _cbc(key, data, decrypt=False):
    cipher = Cipher(algorithms.AES(key), modes.CBC(bytes(AES_BLOCK)))  # 102 225: zero IV
    op = cipher.decryptor() if decrypt else cipher.encryptor()
    return op.update(data) + op.finalize()


def encode_command(ks, counter, secured_data):
    """The Command Packet from CPL to the end (the CPI travels as UDH IE 0x70)."""
    check_keys(ks)
    if not 0 <= counter < 1 << 40:
        raise SecuredPacketError("counter-range")
    padding = 0
    if ks.ciphering:
        padding = -(5 + 1 + CC_OCTETS + len(secured_data)) % AES_BLOCK
    chl = 2 + 1 + 1 + 3 + 5 + 1 + CC_OCTETS          # SPI .. PCNTR, and the CC
    body = secured_data + bytes(padding)
    cpl = 1 + chl + len(body)                        # CHL onwards (CHI is null in SMS)
    if cpl > 0xFFFF:
        raise SecuredPacketError("too-long")
    clear = struct.pack(">HB2sBB3s", cpl, chl, ks.spi, ks.kic, ks.kid, ks.tar)
    counters = counter.to_bytes(5, "big") + bytes([padding])
    cc = _cmac8(ks.kid_key, clear + counters + body)  # CPL .. PCNTR, data, padding
    tail = counters + cc + body
    if ks.ciphering:
        tail = _cbc(ks.kic_key, tail)
    return clear + tail


def decode_command(ks, packet):
    """Returns (secured data, counter) or raises SecuredPacketError."""
    check_keys(ks)
    packet = bytes(packet)
    if len(packet) < 10:
        raise SecuredPacketError("too-short")
    cpl, chl, spi, kic, kid, tar = struct.unpack(">HB2sBB3s", packet[:10])
    if cpl != len(packet) - 2:
        raise SecuredPacketError("cpl", f"{cpl} for {len(packet)} octets")
    if chl != 21:
        raise SecuredPacketError("chl", str(chl))
    if _single_des(kic) or _single_des(kid):
        raise SecuredPacketError("des")
    if spi[0] & 0x1F != ks.spi[0] & 0x1F:
        raise SecuredPacketError("spi-mismatch", spi.hex())
    if (kic, kid) != (ks.kic, ks.kid):
        raise SecuredPacketError("keyid-mismatch")
    if tar != ks.tar:
        raise SecuredPacketError("tar", tar.hex())
    tail = packet[10:]
    if len(tail) < 14:
        raise SecuredPacketError("too-short")
    if ks.ciphering:
        if len(tail) % AES_BLOCK:
            raise SecuredPacketError("block-length")
        tail = _cbc(ks.kic_key, tail, decrypt=True)
    counters, cc, body = tail[:6], tail[6:14], tail[14:]
    expected = _cmac8(ks.kid_key, packet[:10] + counters + body)
    if not _constant_time_equal(cc, expected):
        raise SecuredPacketError("checksum")
    padding = counters[5]
    if padding > len(body) or (padding >= AES_BLOCK if ks.ciphering else padding != 0):
        raise SecuredPacketError("padding", str(padding))
    return body[:len(body) - padding], int.from_bytes(counters[:5], "big")


def _constant_time_equal(a, b):
    diff = len(a) ^ len(b)
    for x, y in zip(a, b):
        diff |= x ^ y
    return diff == 0


def counter_acceptable(spi, last, received):
    """ETSI TS 102 225 SPI b5b4: replay checking of the receiving entity."""
    if received >= 1 << 40:
        return False
    mode = (spi[0] & SPI_COUNTER_BITS) >> 3
    if mode == COUNTER_HIGHER:
        return received > last
    if mode == COUNTER_PLUS_ONE:
        return received == last + 1
    return True


def tlv_wrap(value, tag=COAP_TAG):
    n = len(value)
    if n < 0x80:
        length = bytes([n])
    elif n < 0x100:
        length = bytes([0x81, n])
    elif n < 0x10000:
        length = bytes([0x82]) + n.to_bytes(2, "big")
    else:
        raise SecuredPacketError("too-long")
    return bytes([tag]) + length + bytes(value)


def tlv_unwrap(tlv, tag=COAP_TAG):
    if not tlv or tlv[0] != tag:
        raise SecuredPacketError("tlv-tag")
    if len(tlv) >= 2 and tlv[1] < 0x80:
        start, n = 2, tlv[1]
    elif len(tlv) >= 3 and tlv[1] == 0x81:
        start, n = 3, tlv[2]
    elif len(tlv) >= 4 and tlv[1] == 0x82:
        start, n = 4, int.from_bytes(tlv[2:4], "big")
    else:
        raise SecuredPacketError("tlv-length")
    if start + n != len(tlv):
        raise SecuredPacketError("tlv-length")
    return bytes(tlv[start:])


def sms_user_data(packet, ref=0, ref16=False):
    """TP-UD octets (UDH included) of each SMS carrying packet: UDH 02 70 00 for one SMS; when
    concatenated the CPI only in the first part (3GPP 31.115 4, 23.040 9.2.3.24.1)."""
    if len(packet) <= 140 - 3:
        return [bytes([2, IEI_COMMAND_PACKET, 0]) + packet]
    concat_len = 4 if ref16 else 3

    def concat(total, seq):
        ref_octets = ref.to_bytes(2, "big") if ref16 else bytes([ref & 0xFF])
        return bytes([IEI_CONCAT_16 if ref16 else IEI_CONCAT_8, concat_len]) + ref_octets + \
            bytes([total, seq])

    first_room = 140 - (1 + 2 + 2 + concat_len)
    next_room = 140 - (1 + 2 + concat_len)
    chunks = [packet[:first_room]]
    chunks += [packet[i:i + next_room] for i in range(first_room, len(packet), next_room)]
    if len(chunks) > 255:
        raise SecuredPacketError("too-many-parts")
    out = []
    for i, chunk in enumerate(chunks):
        ies = (bytes([IEI_COMMAND_PACKET, 0]) if i == 0 else b"") + concat(len(chunks), i + 1)
        out.append(bytes([len(ies)]) + ies + chunk)
    return out


def packet_from_user_data(parts):
    """Joins the TP-UD of received parts (in any order) back into the Command Packet."""
    pieces, saw_cpi = {}, False
    for ud in parts:
        udh_end = 1 + ud[0]
        pos, seq = 1, 1
        while pos < udh_end:
            iei, n = ud[pos], ud[pos + 1]
            value = ud[pos + 2:pos + 2 + n]
            if iei == IEI_COMMAND_PACKET and n == 0:
                saw_cpi = True
            elif iei == IEI_CONCAT_8:
                seq = value[2]
            elif iei == IEI_CONCAT_16:
                seq = value[3]
            pos += 2 + n
        pieces[seq] = ud[udh_end:]
    if not saw_cpi:
        raise SecuredPacketError("no-cpi")
    return b"".join(pieces[k] for k in sorted(pieces))


# ---- interop vectors (test/unit/secured_packet_vectors.txt) ----

def _key(seed, n):
    return bytes((seed + 29 * i) & 0xFF for i in range(n))


def _data(seed, n):
    return bytes((seed * 7 + i * 13 + (i >> 3)) & 0xFF for i in range(n))


COAP_GET = bytes.fromhex("4001ABCD" "B3727064")  # CON GET, MID ABCD, Uri-Path "rpd"

VECTOR_CASES = [
    # name, KIc, KID, SPI, key length, counter, data
    ("aes128_cipher_higher_empty", 0x12, 0x12, "1600", 16, 1, b""),
    ("aes128_cipher_higher_1", 0x12, 0x12, "1600", 16, 2, _data(1, 1)),
    ("aes128_cipher_higher_2_no_pad", 0x12, 0x12, "1600", 16, 3, _data(2, 2)),
    ("aes128_cipher_higher_3", 0x12, 0x12, "1600", 16, 0x0102030405, _data(3, 3)),
    ("aes128_cipher_higher_18_no_pad", 0x12, 0x12, "1600", 16, 77, _data(4, 18)),
    ("aes128_cipher_higher_coap_tlv", 0x12, 0x12, "1600", 16, 5, tlv_wrap(COAP_GET)),
    ("aes128_cipher_plus_one_por", 0x32, 0x42, "1E21", 16, 0xFFFFFFFFFF, _data(5, 40)),
    ("aes128_cipher_single_sms_max", 0x12, 0x12, "1600", 16, 9, _data(6, 98)),
    ("aes192_cipher_higher_concat", 0x22, 0x22, "1600", 24, 1000, _data(7, 200)),
    ("aes256_cipher_higher_long_tlv", 0xF2, 0xF2, "1600", 32, 123456789, tlv_wrap(_data(8, 300))),
    ("aes128_clear_counter_available", 0x12, 0x12, "0A00", 16, 42, _data(9, 17)),
    ("aes256_clear_no_counter_empty", 0x00, 0x12, "0200", 32, 0, b""),
    ("aes128_reserved_spi_bits_set", 0x12, 0x12, "F601", 16, 6, _data(10, 5)),
]


def vector_lines():
    yield "# SMS Secured Packet interop vectors, written by scripts/secured_packet.py vectors."
    yield "# name params(KIc KID SPI TAR) secret(KIc key, KID key) counter(hex) data packet; - = empty"
    for i, (name, kic, kid, spi, key_len, counter, data) in enumerate(VECTOR_CASES):
        params = bytes([kic, kid]) + bytes.fromhex(spi) + LWM2M_TAR
        secret = _key(0x10 + i, key_len) + _key(0x80 + i, key_len)
        ks = parse_keys(params, secret)
        packet = encode_command(ks, counter, data)
        assert decode_command(ks, packet) == (data, counter)
        yield " ".join([name, params.hex(), secret.hex(), f"{counter:x}", data.hex() or "-",
                        packet.hex()])


def main(argv):
    if len(argv) == 2 and argv[1] == "vectors":
        for line in vector_lines():
            print(line)
        return 0
    if len(argv) == 6 and argv[1] == "encode":
        ks = parse_keys(bytes.fromhex(argv[2]), bytes.fromhex(argv[3]))
        print(encode_command(ks, int(argv[4]), bytes.fromhex(argv[5])).hex().upper())
        return 0
    if len(argv) == 5 and argv[1] == "decode":
        ks = parse_keys(bytes.fromhex(argv[2]), bytes.fromhex(argv[3]))
        try:
            data, counter = decode_command(ks, bytes.fromhex(argv[4]))
        except SecuredPacketError as e:
            print(f"refused: {e}", file=sys.stderr)
            return 1
        print(f"counter {counter} data {data.hex().upper()}")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
