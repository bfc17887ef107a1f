"""IP addresses: IPv4 outside version-like contexts, IPv6 in every written form, each
candidate checked by the `ipaddress` module."""

from __future__ import annotations

import ipaddress
import re

from watchkeeper.agent.sidecar.redaction.text import Finding, Text, mentions, word_char

# ASCII boundaries: Chinese and Japanese text puts an address right after a word
_IPV4 = re.compile(r"(?<![A-Za-z0-9_.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}"
                   r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![A-Za-z0-9_-]|\.\d)")
_VERSION_WORDS = ("version", "release", "ver ", "ver.", "build", "rev ", "tag ", "firmware",
                  "python", "node", "oid", "snmp", "mib", "upgrade", "update", "patch", "kernel",
                  "driver", "sdk", "==", ">=", "<=", "~=", "bump", "install")


def ipv4(text: Text) -> list[Finding]:
    s = text.text
    return [Finding(m.start(), m.end(), "ip", m.group())
            for start, end, _ in text.clusters(4) if text.shape.count(b".", start, end) >= 3
            for m in _IPV4.finditer(s, start, min(len(s), end + 2))
            if not mentions(text.before(m.start(), 16), _VERSION_WORDS)]


_IPV6_PAIR = re.compile(r":[0-9A-Fa-f]{0,4}:")  # starts with a literal: the engine skips to ':'
_HEX_LEFT = re.compile(r"[0-9A-Fa-f:]*\Z")
# to the right: hex groups, maybe ending in an IPv4 address (::ffff:192.0.2.1, 64:ff9b::1.2.3.4)
_IPV6_RIGHT = re.compile(r"[0-9A-Fa-f:]*:(?:\d{1,3}\.){3}\d{1,3}(?![\d.])|[0-9A-Fa-f:]*")


def ipv6(text: Text) -> list[Finding]:
    s = text.text
    found: list[Finding] = []
    if ":" not in s:
        return found
    pos = 0
    while (pair := _IPV6_PAIR.search(s, pos)) is not None:
        left = _HEX_LEFT.search(s, max(0, pair.start() - 40), pair.start())
        start = left.start() if left else pair.start()
        right = _IPV6_RIGHT.match(s, pair.start())
        end = right.end() if right else pair.end()
        pos = max(end, pair.end())
        # "IPv6:2001:db8::1": the hex before the first colon may belong to a word
        address = _address(s, start, end) or _address(s, pair.start() + 1, end)
        if address is not None:
            found.append(address)
    return found


def _address(s: str, start: int, end: int) -> Finding | None:
    candidate = s[start:end].rstrip(":") if not s[start:end].endswith("::") else s[start:end]
    end = start + len(candidate)
    if (start and (word_char(s[start - 1]) or s[start - 1] == ".")) or (
            end < len(s) and word_char(s[end])):
        return None
    groups = [g for g in candidate.split(":") if g]
    # not a time (12:30:45) or a MAC address (7 groups are needed without "::"), nor a slice
    # (x[::2]); "::1" (loopback) and "fe80::" are addresses
    if "::" not in candidate and len(groups) != 8 and not (
            "." in candidate and len(groups) == 7):
        return None
    if candidate != "::1" and not any(len(g) >= 2 for g in groups):
        return None
    try:
        address = ipaddress.IPv6Address(candidate)
    except ValueError:
        return None
    zone = _ZONE.match(s, end)  # fe80::1%eth0
    return Finding(start, zone.end() if zone else end, "ip", address.compressed)


_ZONE = re.compile(r"%[A-Za-z0-9_.-]+")
