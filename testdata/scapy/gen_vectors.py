#!/usr/bin/python3
"""Known-answer ESP and AH tunnel-mode packets made by scapy, for isle's tests.

Regenerate (from the repository root, with Debian's python3-scapy):

    /usr/bin/python3 testdata/scapy/gen_vectors.py [OUTDIR]

It rewrites testdata/scapy/esp_vectors.json and testdata/scapy/ah_vectors.json
(or writes them into OUTDIR: ah's TestScapyVectorsCurrent does that and
compares, so the checked-in files are always what today's scapy makes).
The output is deterministic: keys, SPIs, IVs and payloads are derived from
each vector's name with SHAKE-256, so a rerun with the same scapy produces
byte-identical files and `git diff` shows any change in scapy's behaviour.

AH, the CBC/NULL ICVs and AEAD encryption are scapy's own code
(scapy.layers.ipsec.SecurityAssociation), independent of isle. One gap is
filled here instead: scapy 2.5 leaves the high-order ESN bits out of the
ICV of ESP with a separate integrity algorithm (AuthAlgo.sign is called
without esn for ESP), although RFC 4303 §2.2.1 includes them. For those
vectors the ICV is recomputed with Python's hmac over SPI | seq | IV |
ciphertext | seq_hi, and the vector says so in "icv_by".

Algorithm names in the JSON are isle's (sa.EncAlg / sa.IntegAlg String()),
with the IANA transform IDs next to them.

The outer header of the AH vectors is the one isle's ah.Seal builds, so
isle must reproduce those packets byte for byte:
  IPv4: TOS copied from the inner packet (DSCP and ECN, RFC 6040 normal
        mode), ID = low 16 bits of the sequence number, DF copied from an
        IPv4 inner packet (clear for IPv6 inner), TTL 64, no options.
  IPv6: traffic class copied from the inner packet, flow label 0,
        hop limit 64, no extension headers.
Vectors with "seal_reproducible": false carry outer IPv4 options or IPv6
extension headers that isle never sends; they test ah.Open's handling of
mutable and immutable options against scapy's.
"""

import hashlib
import hmac
import json
import os
import struct
import sys

from scapy import __version__ as scapy_version
from scapy.compat import raw
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_Router_Alert, IPOption_RR
from scapy.layers.inet6 import (
    HBHOptUnknown,
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrHopByHop,
    PadN,
)
from scapy.layers.ipsec import AH, ESP, SecurityAssociation
from scapy.packet import Raw

HERE = os.path.dirname(os.path.abspath(__file__))

OUTER = {
    4: ("192.0.2.1", "198.51.100.2"),
    6: ("2001:db8:1::1", "2001:db8:2::2"),
}
INNER = {
    4: ("10.1.0.1", "10.2.0.7"),
    6: ("fd00:1::1", "fd00:2::7"),
}

# isle name, IANA ID, scapy name, key bytes (cipher key + salt for AEAD)
ENC = {
    "AES_GCM_16-128": ("AES_GCM_16", 20, 128, "AES-GCM", 16 + 4),
    "AES_GCM_16-256": ("AES_GCM_16", 20, 256, "AES-GCM", 32 + 4),
    "CHACHA20_POLY1305": ("CHACHA20_POLY1305", 28, 256, "CHACHA20-POLY1305", 32 + 4),
    "AES_CBC-128": ("AES_CBC", 12, 128, "AES-CBC", 16),
    "AES_CBC-256": ("AES_CBC", 12, 256, "AES-CBC", 32),
    "NULL": ("NULL", 11, 0, "NULL", 0),
}
# isle name, IANA ID, scapy name, key bytes, ICV bytes, hash
INTEG = {
    "NONE": ("NONE", 0, None, 0, 0, None),
    "HMAC_SHA1_96": ("HMAC_SHA1_96", 2, "HMAC-SHA1-96", 20, 12, hashlib.sha1),
    "HMAC_SHA2_256_128": ("HMAC_SHA2_256_128", 12, "SHA2-256-128", 32, 16, hashlib.sha256),
    "HMAC_SHA2_384_192": ("HMAC_SHA2_384_192", 13, "SHA2-384-192", 48, 24, hashlib.sha384),
    "HMAC_SHA2_512_256": ("HMAC_SHA2_512_256", 14, "SHA2-512-256", 64, 32, hashlib.sha512),
}

ESP_SUITES = [
    ("AES_GCM_16-128", "NONE"),
    ("AES_GCM_16-256", "NONE"),
    ("CHACHA20_POLY1305", "NONE"),
    ("AES_CBC-128", "HMAC_SHA2_256_128"),
    ("AES_CBC-256", "HMAC_SHA2_256_128"),
    ("AES_CBC-128", "HMAC_SHA2_384_192"),
    ("AES_CBC-256", "HMAC_SHA2_384_192"),
    ("AES_CBC-128", "HMAC_SHA2_512_256"),
    ("AES_CBC-256", "HMAC_SHA2_512_256"),
    ("AES_CBC-128", "HMAC_SHA1_96"),
    ("AES_CBC-256", "HMAC_SHA1_96"),
    ("NULL", "HMAC_SHA2_256_128"),
]
AH_SUITES = ["HMAC_SHA1_96", "HMAC_SHA2_256_128", "HMAC_SHA2_384_192", "HMAC_SHA2_512_256"]

# (seq_hi, seq_lo) pairs; without ESN seq_hi is always 0.
SEQS_32 = [(0, 1), (0, 2), (0, 0x7FFFFFFF), (0, 0xFFFFFFFF), (0, 0x01020304)]
SEQS_ESN = [(1, 0), (1, 5), (0xDEADBEEF, 0xFFFFFFF0), (0x7FFFFFFF, 0x80000000), (2, 0x01020304)]


def det(label, n):
    """n deterministic pseudo-random bytes named by label."""
    return hashlib.shake_256(label.encode()).digest(n)


def inner_packet(version, idx, label):
    """A varied inner packet: ICMP echo, UDP or TCP with a length that walks
    through the CBC padding lengths, and DSCP/ECN and DF set on some."""
    size = (idx * 7) % 61 + (0 if idx % 5 else 300)
    data = det(label + "/payload", size)
    tos = [0x00, 0xB8, 0x02, 0x03, 0x28][idx % 5]  # none, EF, ECT(0), CE, AF11
    src, dst = INNER[version]
    kind = idx % 3
    if version == 4:
        flags = "DF" if idx % 2 else 0
        ip = IP(src=src, dst=dst, tos=tos, id=0x1000 + idx, flags=flags, ttl=63)
        if kind == 0:
            pkt = ip / ICMP(type=8, id=0x4242, seq=idx) / Raw(data)
        elif kind == 1:
            pkt = ip / UDP(sport=40000 + idx, dport=53) / Raw(data)
        else:
            pkt = ip / TCP(sport=40000 + idx, dport=443, seq=idx * 1000, flags="PA") / Raw(data)
    else:
        ip = IPv6(src=src, dst=dst, tc=tos, fl=0x12345 + idx, hlim=63)
        if kind == 0:
            pkt = ip / ICMPv6EchoRequest(id=0x4242, seq=idx, data=data)
        elif kind == 1:
            pkt = ip / UDP(sport=40000 + idx, dport=53) / Raw(data)
        else:
            pkt = ip / TCP(sport=40000 + idx, dport=443, seq=idx * 1000, flags="PA") / Raw(data)
    # Build once so every checksum and length is fixed in the bytes.
    return pkt.__class__(raw(pkt))


def tunnel_header(outer, inner, seq_lo):
    """The outer header isle's ah.Seal builds (see the module comment)."""
    src, dst = OUTER[outer]
    tos = inner.tos if inner.version == 4 else inner.tc
    if outer == 4:
        df = inner.version == 4 and "DF" in inner.flags
        return IP(src=src, dst=dst, tos=tos, id=seq_lo & 0xFFFF, flags="DF" if df else 0, ttl=64)
    return IPv6(src=src, dst=dst, tc=tos, fl=0, hlim=64)


def esp_vectors():
    out = []
    idx = 0
    for enc_name, integ_name in ESP_SUITES:
        enc = ENC[enc_name]
        integ = INTEG[integ_name]
        for outer in (4, 6):
            for inner_v in (4, 6):
                for esn in (False, True):
                    seq_hi, seq_lo = (SEQS_ESN if esn else SEQS_32)[idx % 5]
                    name = "esp-%s-%s-v%din%d-%s-%d" % (
                        enc_name.lower(), integ_name.lower(), inner_v, outer,
                        "esn" if esn else "noesn", idx)
                    out.append(make_esp(name, idx, enc, integ, outer, inner_v, esn, seq_hi, seq_lo))
                    idx += 1
    return out


def make_esp(name, idx, enc, integ, outer, inner_v, esn, seq_hi, seq_lo):
    enc_isle, enc_id, enc_bits, enc_scapy, enc_key_len = enc
    integ_isle, integ_id, integ_scapy, integ_key_len, icv_len, hashfn = integ
    spi = struct.unpack("!I", det(name + "/spi", 4))[0] | 0x100
    enc_key = det(name + "/enc", enc_key_len)
    integ_key = det(name + "/integ", integ_key_len)
    iv_len = {"AES_CBC": 16, "NULL": 0}.get(enc_isle, 8)
    iv = det(name + "/iv", iv_len)
    inner = inner_packet(inner_v, idx, name)
    icv_by = "scapy"
    # scapy omits ESN from a separate ICV, so encrypt without integrity and
    # append the RFC 4303 ICV ourselves in that case.
    scapy_integ = integ_scapy
    if esn and integ_scapy is not None:
        scapy_integ = None
        icv_by = "python-hmac (scapy 2.5 leaves ESN out of the ESP ICV)"
    sa = SecurityAssociation(
        ESP, spi=spi, seq_num=seq_lo,
        crypt_algo=enc_scapy, crypt_key=enc_key or None,
        auth_algo=scapy_integ, auth_key=integ_key if scapy_integ else None,
        tunnel_header=tunnel_header(outer, inner, seq_lo),
        esn_en=esn, esn=seq_hi)
    pkt = sa.encrypt(inner, iv=iv if iv_len else None)
    wire = bytearray(raw(pkt))
    if icv_by != "scapy":
        esp_off = 20 if outer == 4 else 40
        body = bytes(wire[esp_off:])
        icv = hmac.new(integ_key, body + struct.pack("!I", seq_hi), hashfn).digest()[:icv_len]
        wire += icv
        if outer == 4:
            wire = fix_ipv4_len(wire)
        else:
            struct.pack_into("!H", wire, 4, len(wire) - 40)
    pkt_bytes = bytes(wire)
    esp_off = 20 if outer == 4 else 40
    # Self-check: scapy must open what it made (ESN ICVs checked by hmac above).
    check = SecurityAssociation(
        ESP, spi=spi, crypt_algo=enc_scapy, crypt_key=enc_key or None,
        auth_algo=scapy_integ, auth_key=integ_key if scapy_integ else None,
        tunnel_header=tunnel_header(outer, inner, seq_lo), esn_en=esn, esn=seq_hi)
    outer_pkt = (IP if outer == 4 else IPv6)(pkt_bytes)
    if icv_by != "scapy":
        outer_pkt[ESP].data = outer_pkt[ESP].data[:-icv_len]
    got = check.decrypt(outer_pkt)
    assert raw(got) == raw(inner), name
    return {
        "name": name,
        "proto": "ESP",
        "enc": enc_isle, "enc_id": enc_id, "enc_key_bits": enc_bits,
        "enc_key": enc_key.hex(),
        "integ": integ_isle, "integ_id": integ_id, "integ_key": integ_key.hex(),
        "spi": spi,
        "esn": esn, "seq_hi": seq_hi, "seq_lo": seq_lo, "seq": (seq_hi << 32) | seq_lo,
        "outer_version": outer, "outer_src": OUTER[outer][0], "outer_dst": OUTER[outer][1],
        "iv": iv.hex(),
        "inner": raw(inner).hex(),
        "packet": pkt_bytes.hex(),
        "esp": pkt_bytes[esp_off:].hex(),
        "icv_by": icv_by,
    }


def fix_ipv4_len(wire):
    struct.pack_into("!H", wire, 2, len(wire))
    struct.pack_into("!H", wire, 10, 0)
    struct.pack_into("!H", wire, 10, inet_checksum(bytes(wire[:(wire[0] & 15) * 4])))
    return wire


def inet_checksum(b):
    s = 0
    for i in range(0, len(b), 2):
        s += (b[i] << 8) | b[i + 1]
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ah_vectors():
    out = []
    idx = 0
    for integ_name in AH_SUITES:
        integ = INTEG[integ_name]
        for outer in (4, 6):
            for inner_v in (4, 6):
                for esn in (False, True):
                    seq_hi, seq_lo = (SEQS_ESN if esn else SEQS_32)[idx % 5]
                    name = "ah-%s-v%din%d-%s-%d" % (
                        integ_name.lower(), inner_v, outer, "esn" if esn else "noesn", idx)
                    inner = inner_packet(inner_v, idx, name)
                    hdr = tunnel_header(outer, inner, seq_lo)
                    out.append(make_ah(name, integ, hdr, inner, esn, seq_hi, seq_lo, True))
                    idx += 1
    # Outer headers isle never builds, for ah.Open's mutable-field handling.
    extra = [
        ("ipv4-opt-router-alert", 4, lambda i: IP(src=OUTER[4][0], dst=OUTER[4][1], ttl=9,
                                                  options=[IPOption_Router_Alert()])),
        ("ipv4-opt-record-route", 4, lambda i: IP(src=OUTER[4][0], dst=OUTER[4][1], ttl=9,
                                                  options=[IPOption_RR(routers=["203.0.113.9"])])),
        ("ipv6-hbh-mutable", 6, lambda i: IPv6(src=OUTER[6][0], dst=OUTER[6][1], hlim=9) /
            IPv6ExtHdrHopByHop(options=[HBHOptUnknown(otype=0x3E, optdata=b"\xAA\xBB\xCC\xDD"),
                                        HBHOptUnknown(otype=0x1E, optdata=b"\x11\x22")])),
        ("ipv6-dst-immutable", 6, lambda i: IPv6(src=OUTER[6][0], dst=OUTER[6][1], hlim=9) /
            IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=0x1E, optdata=b"\x01\x02\x03\x04"),
                                       PadN(optdata=b"\x00\x00")])),
    ]
    for name_suffix, outer, mk in extra:
        for integ_name in ("HMAC_SHA1_96", "HMAC_SHA2_256_128"):
            name = "ah-%s-%s-%d" % (integ_name.lower(), name_suffix, idx)
            inner = inner_packet(4, idx, name)
            out.append(make_ah(name, INTEG[integ_name], mk(inner), inner, False, 0, 1000 + idx, False))
            idx += 1
    return out


def make_ah(name, integ, hdr, inner, esn, seq_hi, seq_lo, reproducible):
    integ_isle, integ_id, integ_scapy, integ_key_len, icv_len, _ = integ
    spi = struct.unpack("!I", det(name + "/spi", 4))[0] | 0x100
    integ_key = det(name + "/integ", integ_key_len)
    sa = SecurityAssociation(AH, spi=spi, seq_num=seq_lo, auth_algo=integ_scapy, auth_key=integ_key,
                             tunnel_header=hdr, esn_en=esn, esn=seq_hi)
    pkt = sa.encrypt(inner)
    pkt_bytes = raw(pkt)
    check = SecurityAssociation(AH, spi=spi, auth_algo=integ_scapy, auth_key=integ_key,
                                tunnel_header=hdr, esn_en=esn, esn=seq_hi)
    got = check.decrypt(pkt.__class__(pkt_bytes))
    assert raw(got) == raw(inner), name
    return {
        "name": name,
        "proto": "AH",
        "integ": integ_isle, "integ_id": integ_id, "integ_key": integ_key.hex(),
        "spi": spi,
        "esn": esn, "seq_hi": seq_hi, "seq_lo": seq_lo, "seq": (seq_hi << 32) | seq_lo,
        "outer_version": hdr.version,
        "outer_src": hdr.src, "outer_dst": hdr.dst,
        "inner": raw(inner).hex(),
        "packet": pkt_bytes.hex(),
        "seal_reproducible": reproducible,
        "icv_by": "scapy",
    }


def write(outdir, fname, vectors):
    doc = {
        "comment": "generated by testdata/scapy/gen_vectors.py; do not edit",
        "scapy_version": scapy_version,
        "vectors": vectors,
    }
    with open(os.path.join(outdir, fname), "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")
    print("%s: %d vectors" % (fname, len(vectors)), file=sys.stderr)


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else HERE
    write(outdir, "esp_vectors.json", esp_vectors())
    write(outdir, "ah_vectors.json", ah_vectors())


if __name__ == "__main__":
    main()
