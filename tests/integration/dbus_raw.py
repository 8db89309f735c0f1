"""A deliberately minimal D-Bus client that writes messages byte by byte, so tests can send
what well-behaved clients (busctl, sd-bus) refuse to: invalid UTF-8, oversized
arguments, lying signatures, garbage. Only what the hostile-input tests need."""

import os
import socket
import struct

METHOD_CALL, METHOD_RETURN, ERROR, SIGNAL = 1, 2, 3, 4
FIELD_PATH, FIELD_INTERFACE, FIELD_MEMBER, FIELD_ERROR_NAME = 1, 2, 3, 4
FIELD_REPLY_SERIAL, FIELD_DESTINATION, FIELD_SENDER, FIELD_SIGNATURE = 5, 6, 7, 8


def _pad(buf, align):
    return buf + b"\0" * (-len(buf) % align)


def _string(buf, raw):
    """Appends a STRING/OBJECT_PATH: uint32 length, bytes, NUL (raw bytes, unchecked)."""
    buf = _pad(buf, 4)
    return buf + struct.pack("<I", len(raw)) + raw + b"\0"


def _signature(buf, sig):
    return buf + bytes([len(sig)]) + sig + b"\0"


def _field(buf, code, sig, value):
    buf = _pad(buf, 8)
    buf += bytes([code])
    buf = _signature(buf, sig)
    if sig in (b"s", b"o"):
        return _string(buf, value)
    if sig == b"g":
        return _signature(buf, value)
    if sig == b"u":
        return _pad(buf, 4) + struct.pack("<I", value)
    raise ValueError(sig)


def method_call(serial, member, signature=b"", body=b"", path=b"/org/liveswap1",
                interface=b"org.liveswap1.Supervisor", destination=None):
    fields = b""
    fields = _field(fields, FIELD_PATH, b"o", path)
    if interface:
        fields = _field(fields, FIELD_INTERFACE, b"s", interface)
    fields = _field(fields, FIELD_MEMBER, b"s", member)
    if destination:
        fields = _field(fields, FIELD_DESTINATION, b"s", destination)
    if signature:
        fields = _field(fields, FIELD_SIGNATURE, b"g", signature)
    head = struct.pack("<cBBBII", b"l", METHOD_CALL, 0, 1, len(body), serial)
    head += struct.pack("<I", len(fields)) + fields
    return _pad(head, 8) + body


def string_body(*raws):
    """The body of STRING arguments with RAWS as their bytes (not validated)."""
    body = b""
    for raw in raws:
        body = _string(body, raw)
    return body


class Connection:
    """One authenticated connection to a peer-to-peer D-Bus socket."""

    def __init__(self, path, timeout=30.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        uid = str(os.getuid()).encode().hex().encode()
        self.sock.sendall(b"\0AUTH EXTERNAL " + uid + b"\r\n")
        line = self._line()
        if not line.startswith(b"OK "):
            raise AssertionError("authentication refused: %r" % line)
        self.sock.sendall(b"BEGIN\r\n")
        self.serial = 0

    def _line(self):
        data = b""
        while not data.endswith(b"\r\n"):
            chunk = self.sock.recv(1)
            if not chunk:
                raise ConnectionError("closed during authentication")
            data += chunk
        return data

    def _exactly(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("connection closed")
            data += chunk
        return data

    def send_raw(self, data):
        self.sock.sendall(data)

    def call(self, member, signature=b"", body=b"", **kw):
        """Sends a method call; returns (message type, error name or None)."""
        self.serial += 1
        self.send_raw(method_call(self.serial, member, signature, body, **kw))
        return self.read_reply(self.serial)

    def read_message(self):
        """The next message: (type, {header field code: value}, body, size in bytes)."""
        fixed = self._exactly(16)
        endian, mtype, _, _, body_len, _, fields_len = struct.unpack("<cBBBIII", fixed)
        if endian != b"l":  # not assert: python3 -O would drop the check and misparse
            raise AssertionError("the supervisor answered big-endian")
        rest = self._exactly(fields_len + (-(16 + fields_len) % 8) + body_len)
        fields = rest[:fields_len]
        values = {}
        i = 0
        while i < len(fields):
            i += -i % 8
            code = fields[i]
            sig_len = fields[i + 1]
            sig = fields[i + 2:i + 2 + sig_len]
            i += 3 + sig_len
            if sig in (b"s", b"o"):
                i += -(i + 16) % 4
                (n,) = struct.unpack_from("<I", fields, i)
                values[code] = fields[i + 4:i + 4 + n].decode(errors="replace")
                i += 5 + n
            elif sig == b"u":
                i += -(i + 16) % 4
                (values[code],) = struct.unpack_from("<I", fields, i)
                i += 4
            elif sig == b"g":
                values[code] = fields[i + 1:i + 1 + fields[i]]
                i += 2 + fields[i]
            else:
                raise AssertionError("unexpected header field signature %r" % sig)
        return mtype, values, rest[len(rest) - body_len:] if body_len else b"", 16 + len(rest)

    def read_reply(self, serial):
        while True:
            mtype, fields, _, _ = self.read_message()
            if mtype in (METHOD_RETURN, ERROR) and fields.get(FIELD_REPLY_SERIAL) == serial:
                return mtype, fields.get(FIELD_ERROR_NAME)

    def close(self):
        self.sock.close()
