"""SMS PDU codec of the virtual modem (scripts/vmodem), standard library only.

Written independently of the gateway's C codec so that the two check each other.
  3GPP TS 23.040  SMS-DELIVER / SMS-SUBMIT TPDUs (9.2.2.1, 9.2.2.2), addresses (9.1.2.5),
                  SCTS (9.2.3.11), VP (9.2.3.12), UDH and concatenation IEs (9.2.3.24.1, .8)
  3GPP TS 23.038  data coding scheme (4), GSM 7-bit default alphabet and packing (6.1.2, 6.2.1)
  3GPP TS 24.011  RP service-centre address as prefixed in PDU mode (8.2.5.1)
  3GPP TS 27.005  PDU mode framing: <pdu> = SCA + TPDU, <length> = TPDU octets (3.1, 4.3)
"""
import datetime

# TS 23.038 6.2.1: GSM 7-bit default alphabet, indexed by septet value.
GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
assert len(GSM7_BASIC) == 128
# TS 23.038 6.2.1.1: extension table, reached through escape septet 0x1B.
GSM7_EXT = {0x0A: "\f", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\", 0x3C: "[", 0x3D: "~",
            0x3E: "]", 0x40: "|", 0x65: "€"}
_GSM7_REV = {c: i for i, c in enumerate(GSM7_BASIC) if i != 0x1B}
_GSM7_EXT_REV = {c: i for i, c in GSM7_EXT.items()}

# TS 23.040 9.2.3.1: TP-MTI values (MS side view).
MTI_DELIVER = 0
MTI_SUBMIT = 1

# TS 23.040 9.2.3.24: UDH information element identifiers used here.
IEI_CONCAT_8 = 0x00
IEI_CONCAT_16 = 0x08

TOA_INTERNATIONAL = 0x91   # TON international, NPI ISDN/E.164
TOA_UNKNOWN = 0x81         # TON unknown, NPI ISDN/E.164
TOA_ALPHANUMERIC = 0xD0    # TON alphanumeric (TS 23.038 7-bit), NPI unknown

DCS_GSM7 = 0x00
DCS_8BIT = 0x04
DCS_UCS2 = 0x08

MAX_UD = 140               # TS 23.040 9.2.3.16: at most 140 octets of user data
CONCAT_PART = 134          # 140 - 6 octets of UDH (UDHL + 8-bit-ref concatenation IE)


class PduError(ValueError):
    """The PDU is malformed; the message says where."""


# ---------------------------------------------------------------------------------------------
# Semi-octets and addresses
# ---------------------------------------------------------------------------------------------
_SEMI = "0123456789*#abc"


def encode_semi_octets(digits):
    """TS 23.040 9.1.2.3: digits as swapped nibbles, odd count padded with 0xF."""
    nibbles = []
    for ch in digits:
        idx = _SEMI.find(ch.lower() if ch.isalpha() else ch)
        if idx < 0:
            raise PduError(f"'{ch}' is not a semi-octet digit")
        nibbles.append(idx)
    if len(nibbles) % 2:
        nibbles.append(0xF)
    return bytes(nibbles[i] | (nibbles[i + 1] << 4) for i in range(0, len(nibbles), 2))


def decode_semi_octets(data, ndigits=None):
    out = []
    for b in data:
        for n in (b & 0x0F, b >> 4):
            if n == 0xF:
                continue
            out.append(_SEMI[n] if n < len(_SEMI) else "?")
    if ndigits is not None:
        out = out[:ndigits]
    return "".join(out)


def encode_address(number, toa=None):
    """TS 23.040 9.1.2.5 TP-OA/TP-DA: length in useful semi-octets, type, digits.
    A leading '+' selects the international type."""
    if number.startswith("+"):
        number = number[1:]
        toa = TOA_INTERNATIONAL
    if toa is None:
        toa = TOA_INTERNATIONAL
    if (toa & 0x70) == 0x50:  # alphanumeric: the length counts semi-octets of packed septets
        septets = gsm7_encode(number)
        packed = gsm7_pack(septets)
        nsemi = (len(septets) * 7 + 3) // 4
        return bytes([nsemi, toa]) + packed
    return bytes([len(number), toa]) + encode_semi_octets(number)


def decode_address(buf, pos):
    """Returns (number, toa, next_pos). International numbers come back without '+'."""
    if pos + 2 > len(buf):
        raise PduError("address truncated")
    nsemi, toa = buf[pos], buf[pos + 1]
    nbytes = (nsemi + 1) // 2
    end = pos + 2 + nbytes
    if end > len(buf) or nsemi > 20:
        raise PduError("address length out of range")
    raw = buf[pos + 2:end]
    if (toa & 0x70) == 0x50:
        nsept = nsemi * 4 // 7
        number = gsm7_decode(gsm7_unpack(raw, nsept))
    else:
        number = decode_semi_octets(raw, nsemi)
    return number, toa, end


def encode_sca(number):
    """TS 24.011 8.2.5.1 as used by TS 27.005 PDU mode: length in octets including the type.
    An empty number gives 00 (use the SMSC address set with +CSCA)."""
    if not number:
        return b"\x00"
    toa = TOA_UNKNOWN
    if number.startswith("+"):
        number, toa = number[1:], TOA_INTERNATIONAL
    digits = encode_semi_octets(number)
    return bytes([len(digits) + 1, toa]) + digits


def decode_sca(buf):
    """Returns (number or '', next_pos); '+' is prefixed for the international type."""
    if not buf:
        raise PduError("empty PDU")
    n = buf[0]
    if n == 0:
        return "", 1
    if n > 11 or 1 + n > len(buf):
        raise PduError("SCA length out of range")
    toa = buf[1]
    number = decode_semi_octets(buf[2:1 + n])
    if toa == TOA_INTERNATIONAL:
        number = "+" + number
    return number, 1 + n


# ---------------------------------------------------------------------------------------------
# GSM 7-bit alphabet and packing (TS 23.038)
# ---------------------------------------------------------------------------------------------
def gsm7_encode(text):
    """Text to septet values; characters outside the alphabet become '?'."""
    out = []
    for ch in text:
        if ch in _GSM7_REV:
            out.append(_GSM7_REV[ch])
        elif ch in _GSM7_EXT_REV:
            out += [0x1B, _GSM7_EXT_REV[ch]]
        else:
            out.append(_GSM7_REV["?"])
    return out


def gsm7_decode(septets):
    out, esc = [], False
    for s in septets:
        if esc:
            out.append(GSM7_EXT.get(s, GSM7_BASIC[s] if s != 0x1B else " "))
            esc = False
        elif s == 0x1B:
            esc = True
        else:
            out.append(GSM7_BASIC[s])
    return "".join(out)


def gsm7_pack(septets, fill_bits=0):
    """TS 23.038 6.1.2.1.1: septets packed LSB first, after `fill_bits` zero bits (UDH)."""
    acc, nbits, out = 0, fill_bits, bytearray()
    for s in septets:
        acc |= (s & 0x7F) << nbits
        nbits += 7
        while nbits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8
    if nbits:
        out.append(acc & 0xFF)
    return bytes(out)


def gsm7_unpack(data, count, skip_bits=0):
    out = []
    for i in range(count):
        bit = skip_bits + i * 7
        byte, shift = divmod(bit, 8)
        if byte >= len(data):
            raise PduError("7-bit user data truncated")
        v = data[byte] >> shift
        if shift > 1:
            v |= (data[byte + 1] << (8 - shift)) if byte + 1 < len(data) else 0
        out.append(v & 0x7F)
    return out


# ---------------------------------------------------------------------------------------------
# Data coding scheme (TS 23.038 4)
# ---------------------------------------------------------------------------------------------
def dcs_alphabet(dcs):
    """Returns 'gsm7', '8bit' or 'ucs2'."""
    group = dcs >> 4
    if group <= 0x7:  # 00xx general data coding, 01xx automatic deletion
        if dcs & 0x20:
            return "8bit"  # compressed: not supported, handed on as octets
        return {0: "gsm7", 1: "8bit", 2: "ucs2", 3: "8bit"}[(dcs >> 2) & 3]
    if group in (0xC, 0xD):
        return "gsm7"
    if group == 0xE:
        return "ucs2"
    if group == 0xF:
        return "8bit" if dcs & 0x04 else "gsm7"
    return "gsm7"  # reserved groups: TS 23.038 says treat as GSM 7-bit default


# ---------------------------------------------------------------------------------------------
# User data header (TS 23.040 9.2.3.24)
# ---------------------------------------------------------------------------------------------
def parse_udh(udh):
    """Returns a list of (iei, data) information elements."""
    ies, i = [], 0
    while i < len(udh):
        if i + 2 > len(udh):
            raise PduError("UDH information element truncated")
        iei, ln = udh[i], udh[i + 1]
        if i + 2 + ln > len(udh):
            raise PduError("UDH information element overruns the header")
        ies.append((iei, bytes(udh[i + 2:i + 2 + ln])))
        i += 2 + ln
    return ies


def concat_info(udh):
    """TS 23.040 9.2.3.24.1 / 9.2.3.24.8: returns (ref, total, seq, ref_bits) or None.
    IEs with total 0 or seq outside 1..total are ignored as the spec asks."""
    if not udh:
        return None
    for iei, data in parse_udh(udh):
        if iei == IEI_CONCAT_8 and len(data) == 3:
            ref, total, seq, bits = data[0], data[1], data[2], 8
        elif iei == IEI_CONCAT_16 and len(data) == 4:
            ref, total, seq, bits = (data[0] << 8) | data[1], data[2], data[3], 16
        else:
            continue
        if total == 0 or seq == 0 or seq > total:
            continue
        return ref, total, seq, bits
    return None


def concat_udh(ref, total, seq, ref_bits=8):
    if ref_bits == 16:
        return bytes([0x06, IEI_CONCAT_16, 4, (ref >> 8) & 0xFF, ref & 0xFF, total, seq])
    return bytes([0x05, IEI_CONCAT_8, 3, ref & 0xFF, total, seq])


def split_concatenated(payload, ref, part_size=CONCAT_PART, ref_bits=8):
    """8-bit payload to [(udh_with_udhl or b'', chunk)]: one SMS when it fits in 140 octets."""
    if len(payload) <= MAX_UD:
        return [(b"", bytes(payload))]
    chunks = [payload[i:i + part_size] for i in range(0, len(payload), part_size)]
    if len(chunks) > 255:
        raise PduError("payload needs more than 255 parts")
    return [(concat_udh(ref, len(chunks), i + 1, ref_bits), bytes(c))
            for i, c in enumerate(chunks)]


# ---------------------------------------------------------------------------------------------
# Service centre time stamp (TS 23.040 9.2.3.11)
# ---------------------------------------------------------------------------------------------
def encode_scts(when=None):
    """`when` is an aware datetime (UTC if None); the zone is in quarter hours."""
    if when is None:
        when = datetime.datetime.now(datetime.timezone.utc)
    off = when.utcoffset() or datetime.timedelta(0)
    quarters = int(off.total_seconds() // 900)
    fields = [when.year % 100, when.month, when.day, when.hour, when.minute, when.second]
    out = bytes(((v % 10) << 4) | (v // 10) for v in fields)
    q = abs(quarters)
    tz = ((q % 10) << 4) | (q // 10)
    if quarters < 0:
        tz |= 0x08  # sign bit is bit 3 of the first (low) semi-octet
    return out + bytes([tz])


def decode_scts(raw):
    if len(raw) != 7:
        raise PduError("SCTS needs 7 octets")
    vals = [(b & 0x0F) * 10 + (b >> 4) for b in raw[:6]]
    tzb = raw[6]
    q = (tzb & 0x07) * 10 + (tzb >> 4)
    if tzb & 0x08:
        q = -q
    return {"year": 2000 + vals[0], "month": vals[1], "day": vals[2], "hour": vals[3],
            "minute": vals[4], "second": vals[5], "tz_quarters": q}


# ---------------------------------------------------------------------------------------------
# User data (TS 23.040 9.2.3.16, 9.2.3.24)
# ---------------------------------------------------------------------------------------------
def _encode_ud(payload, udh, alphabet):
    """Returns (udl, ud_octets). udh includes its UDHL octet, or is b''."""
    if alphabet == "gsm7":
        septets = gsm7_encode(payload) if isinstance(payload, str) else list(payload)
        hdr_bits = len(udh) * 8
        fill = (7 - hdr_bits % 7) % 7 if udh else 0
        udl = (hdr_bits + fill) // 7 + len(septets)
        if udl > 160:
            raise PduError("more than 160 septets")
        return udl, bytes(udh) + gsm7_pack(septets, fill)
    body = payload.encode("utf-16-be") if isinstance(payload, str) else bytes(payload)
    ud = bytes(udh) + body
    if len(ud) > MAX_UD:
        raise PduError("user data longer than 140 octets")
    return len(ud), ud


def _decode_ud(buf, pos, udl, udhi, alphabet):
    """Returns (udh_without_udhl, payload) where payload is bytes (8bit, ucs2) or septet list."""
    if alphabet == "gsm7":
        if udl > 160:
            raise PduError("UDL over 160 septets")
        nbytes = (udl * 7 + 7) // 8
        raw = buf[pos:pos + nbytes]
        if len(raw) < nbytes:
            raise PduError("user data shorter than UDL")
        udh, skip = b"", 0
        if udhi:
            if not raw:
                raise PduError("UDHI set but no UDH")
            udhl = raw[0]
            if 1 + udhl > len(raw):
                raise PduError("UDH longer than user data")
            udh = bytes(raw[1:1 + udhl])
            hdr_bits = (1 + udhl) * 8
            skip = hdr_bits + (7 - hdr_bits % 7) % 7
        count = udl - skip // 7
        if count < 0:
            raise PduError("UDH longer than user data")
        if pos + nbytes != len(buf):
            raise PduError("octets after the user data")
        return udh, gsm7_unpack(raw, count, skip)
    if udl > MAX_UD:
        raise PduError("UDL over 140 octets")
    raw = buf[pos:pos + udl]
    if len(raw) < udl:
        raise PduError("user data shorter than UDL")
    if pos + udl != len(buf):
        raise PduError("octets after the user data")
    udh = b""
    if udhi:
        if not raw:
            raise PduError("UDHI set but no UDH")
        udhl = raw[0]
        if 1 + udhl > len(raw):
            raise PduError("UDH longer than user data")
        udh, raw = bytes(raw[1:1 + udhl]), raw[1 + udhl:]
    return udh, bytes(raw)


def _payload_bytes(payload, alphabet):
    """Reassembly-friendly bytes: septets become UTF-8 text; 8-bit and UCS2 stay octets."""
    if alphabet == "gsm7":
        return gsm7_decode(payload).encode("utf-8")
    return bytes(payload)


# ---------------------------------------------------------------------------------------------
# TPDUs
# ---------------------------------------------------------------------------------------------
def encode_deliver(oa, payload, udh=b"", dcs=DCS_8BIT, scts=None, pid=0, more=False):
    """TS 23.040 9.2.2.1 SMS-DELIVER. `oa` digits (international type unless it starts with a
    letter, then alphanumeric). Returns the TPDU."""
    alphabet = dcs_alphabet(dcs)
    udl, ud = _encode_ud(payload, udh, alphabet)
    first = MTI_DELIVER | (0 if more else 0x04) | (0x40 if udh else 0)  # TP-MMS, TP-UDHI
    if oa and not oa.lstrip("+")[:1].isdigit():
        addr = encode_address(oa, TOA_ALPHANUMERIC)
    else:
        addr = encode_address(oa.lstrip("+"), TOA_INTERNATIONAL)
    return (bytes([first]) + addr + bytes([pid, dcs]) + encode_scts(scts) + bytes([udl]) + ud)


def encode_submit(da, payload, udh=b"", dcs=DCS_8BIT, mr=0, pid=0, vp=None, toa=None):
    """TS 23.040 9.2.2.2 SMS-SUBMIT. vp: None (absent) or a relative VP octet."""
    alphabet = dcs_alphabet(dcs)
    udl, ud = _encode_ud(payload, udh, alphabet)
    first = MTI_SUBMIT | (0x10 if vp is not None else 0) | (0x40 if udh else 0)
    out = bytes([first, mr & 0xFF]) + encode_address(da, toa) + bytes([pid, dcs])
    if vp is not None:
        out += bytes([vp])
    return out + bytes([udl]) + ud


def decode_tpdu(tpdu, direction):
    """Decodes an SMS-DELIVER ('deliver', SC to MS) or SMS-SUBMIT ('submit', MS to SC) TPDU.
    Returns a dict: mti, number, toa, pid, dcs, alphabet, udh (without UDHL), payload
    (bytes; GSM 7-bit comes back as UTF-8 text, UCS2 as UTF-16BE octets), concat, and for
    SUBMIT: mr, vpf, srr; for DELIVER: scts."""
    buf = bytes(tpdu)
    if not buf:
        raise PduError("empty TPDU")
    first = buf[0]
    mti = first & 0x03
    udhi = bool(first & 0x40)
    out = {"mti": mti, "udhi": udhi}
    pos = 1
    if direction == "submit":
        if mti != MTI_SUBMIT:
            raise PduError(f"TP-MTI {mti} is not SMS-SUBMIT")
        if len(buf) < 2:
            raise PduError("TP-MR missing")
        out["mr"] = buf[1]
        out["srr"] = bool(first & 0x20)
        out["vpf"] = (first >> 3) & 3
        pos = 2
    elif direction == "deliver":
        if mti != MTI_DELIVER:
            raise PduError(f"TP-MTI {mti} is not SMS-DELIVER")
    else:
        raise ValueError(direction)
    number, toa, pos = decode_address(buf, pos)
    out["number"], out["toa"] = number, toa
    if pos + 2 > len(buf):
        raise PduError("TP-PID/TP-DCS missing")
    out["pid"], out["dcs"] = buf[pos], buf[pos + 1]
    pos += 2
    if direction == "deliver":
        if pos + 7 > len(buf):
            raise PduError("TP-SCTS truncated")
        out["scts"] = decode_scts(buf[pos:pos + 7])
        pos += 7
    else:
        # TS 23.040 9.2.3.3: 00 absent, 10 relative (1 octet), 01 enhanced / 11 absolute (7)
        pos += {0: 0, 2: 1, 1: 7, 3: 7}[out["vpf"]]
    if pos >= len(buf):
        raise PduError("TP-UDL missing")
    udl = buf[pos]
    pos += 1
    alphabet = dcs_alphabet(out["dcs"])
    out["alphabet"] = alphabet
    out["udl"] = udl
    udh, payload = _decode_ud(buf, pos, udl, udhi, alphabet)
    out["udh"] = udh
    out["payload"] = _payload_bytes(payload, alphabet)
    out["concat"] = concat_info(udh) if udhi else None
    return out


def split_pdu_mode(hexstr):
    """TS 27.005 PDU mode: '<SCA><TPDU>' hex to (sca, tpdu_bytes)."""
    try:
        raw = bytes.fromhex(hexstr)
    except ValueError as e:
        raise PduError(f"not hex: {e}") from None
    sca, pos = decode_sca(raw)
    return sca, raw[pos:]
