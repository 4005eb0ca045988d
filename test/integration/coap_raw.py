"""CoAP messages built and read by hand (RFC 7252 3), for tests that play a misbehaving or
unknown peer from a raw UDP socket. Written apart from the gateway's codec."""
TYPES = {"CON": 0, "NON": 1, "ACK": 2, "RST": 3}
METHODS = {"GET": 1, "POST": 2, "PUT": 3, "DELETE": 4, "FETCH": 5, "PATCH": 6, "IPATCH": 7}
LOCATION_PATH, URI_PATH, URI_QUERY = 8, 11, 15


def _option(delta, value):
    def nibble(n):
        if n < 13:
            return n, b""
        if n < 269:
            return 13, bytes([n - 13])
        return 14, (n - 269).to_bytes(2, "big")
    d, dext = nibble(delta)
    ln, lext = nibble(len(value))
    return bytes([d << 4 | ln]) + dext + lext + value


def coap(type_, code, mid, token=b"", path=(), query=(), payload=b"", location=()):
    """code: a method name, 0 for an empty message, or an int."""
    code = METHODS.get(code, code) if isinstance(code, str) else code
    out = bytes([0x40 | TYPES[type_] << 4 | len(token), code]) + mid.to_bytes(2, "big") + token
    last = 0
    for number, values in ((LOCATION_PATH, location), (URI_PATH, path), (URI_QUERY, query)):
        for v in values:
            out += _option(number - last, v.encode())
            last = number
    if payload:
        out += b"\xff" + payload
    return out


def parse(data):
    """The fields tests look at: type, code ("2.05"), mid, token, payload (bytes)."""
    tkl = data[0] & 0x0F
    type_ = [k for k, v in TYPES.items() if v == (data[0] >> 4) & 3][0]
    code = f"{data[1] >> 5}.{data[1] & 0x1F:02d}"
    payload = b""
    i = 4 + tkl
    while i < len(data):
        if data[i] == 0xFF:
            payload = data[i + 1:]
            break
        delta, length = data[i] >> 4, data[i] & 0x0F
        i += 1
        for n in (delta, length):
            if n == 13:
                i += 1
            elif n == 14:
                i += 2
        length = length if length < 13 else (data[i - 1] + 13 if length == 13 else
                                             int.from_bytes(data[i - 2:i], "big") + 269)
        i += length
    return {"type": type_, "code": code, "mid": int.from_bytes(data[2:4], "big"),
            "token": data[4:4 + tkl], "payload": payload}
