#!/usr/bin/python3
"""Open (verify and decrypt) tunnel-mode ESP and AH packets with scapy.

The independent oracle for isle's seal: Go tests hand it packets isle made
and compare the inner packet scapy recovers with the one they sealed.

Usage:
    /usr/bin/python3 testdata/scapy/open.py [FILE]     (JSON on stdin without FILE)

Input: one JSON object or an array of them, with the field names of
gen_vectors.py's output:
    name        free text, echoed back
    proto       "ESP" or "AH"
    enc, enc_key            ESP only: isle's name (AES_GCM_16, CHACHA20_POLY1305,
                            AES_CBC, NULL) and hex key (AEAD keys end with the salt)
    integ, integ_key        isle's name (HMAC_SHA2_256_128, ..., NONE) and hex key
    spi         integer
    esn         bool; seq_hi  the high 32 bits of the sequence number (ESN only)
    packet      hex of the whole outer IPv4/IPv6 packet, or for ESP instead
    esp         hex of the ESP header through the ICV (the bytes isle's esp.Seal makes)

Output: a JSON array on stdout, one {"name", "inner"} or {"name", "error"} per
input. Exit status 0 when every packet opened, 1 when any failed
verification or decryption, 2 on malformed input.
"""

import hashlib
import hmac
import json
import struct
import sys

from scapy.compat import raw
from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6
from scapy.layers.ipsec import AH, ESP, IPSecIntegrityError, SecurityAssociation

ENC = {
    "AES_GCM_16": "AES-GCM",
    "CHACHA20_POLY1305": "CHACHA20-POLY1305",
    "AES_CBC": "AES-CBC",
    "NULL": "NULL",
}
INTEG = {
    "NONE": (None, 0, None),
    "HMAC_SHA1_96": ("HMAC-SHA1-96", 12, hashlib.sha1),
    "HMAC_SHA2_256_128": ("SHA2-256-128", 16, hashlib.sha256),
    "HMAC_SHA2_384_192": ("SHA2-384-192", 24, hashlib.sha384),
    "HMAC_SHA2_512_256": ("SHA2-512-256", 32, hashlib.sha512),
}


class Malformed(Exception):
    pass


def outer_packet(req):
    if "packet" in req:
        b = bytes.fromhex(req["packet"])
        if not b:
            raise Malformed("empty packet")
        return IP(b) if b[0] >> 4 == 4 else IPv6(b)
    if req.get("proto") == "ESP" and "esp" in req:
        # A placeholder outer header: ESP's ICV does not cover it.
        return IP(src="192.0.2.1", dst="198.51.100.2") / ESP(bytes.fromhex(req["esp"]))
    raise Malformed("need packet (or esp for ESP)")


def open_one(req):
    try:
        integ_scapy, icv_len, hashfn = INTEG[req.get("integ", "NONE")]
    except KeyError:
        raise Malformed("unknown integ %r" % req.get("integ"))
    integ_key = bytes.fromhex(req.get("integ_key", ""))
    spi = int(req["spi"])
    esn = bool(req.get("esn", False))
    seq_hi = int(req.get("seq_hi", 0))
    pkt = outer_packet(req)

    if req["proto"] == "AH":
        if not pkt.haslayer(AH):
            raise IPSecIntegrityError("no AH header")
        sa = SecurityAssociation(AH, spi=spi, auth_algo=integ_scapy, auth_key=integ_key,
                                 tunnel_header=pkt.__class__(), esn_en=esn, esn=seq_hi)
        return raw(sa.decrypt(pkt))

    if req["proto"] != "ESP":
        raise Malformed("unknown proto %r" % req["proto"])
    try:
        enc_scapy = ENC[req["enc"]]
    except KeyError:
        raise Malformed("unknown enc %r" % req.get("enc"))
    if not pkt.haslayer(ESP):
        raise IPSecIntegrityError("no ESP header")
    enc_key = bytes.fromhex(req.get("enc_key", ""))
    if esn and integ_scapy is not None:
        # scapy 2.5 leaves the ESN high bits out of a separate ESP ICV
        # (RFC 4303 §2.2.1 puts them in), so check that ICV here.
        body = raw(pkt[ESP])
        if len(body) < 8 + icv_len:
            raise IPSecIntegrityError("ESP shorter than its ICV")
        want = hmac.new(integ_key, body[:-icv_len] + struct.pack("!I", seq_hi), hashfn).digest()[:icv_len]
        if not hmac.compare_digest(want, body[-icv_len:]):
            raise IPSecIntegrityError("ICV mismatch (ESN)")
        pkt[ESP].data = pkt[ESP].data[:-icv_len]
        integ_scapy = None
    sa = SecurityAssociation(ESP, spi=spi, crypt_algo=enc_scapy, crypt_key=enc_key or None,
                             auth_algo=integ_scapy, auth_key=integ_key if integ_scapy else None,
                             tunnel_header=pkt.__class__(), esn_en=esn, esn=seq_hi)
    return raw(sa.decrypt(pkt))


def main():
    src = open(sys.argv[1]) if len(sys.argv) > 1 else sys.stdin
    try:
        doc = json.load(src)
    except ValueError as e:
        print("open.py: bad JSON: %s" % e, file=sys.stderr)
        return 2
    reqs = doc if isinstance(doc, list) else [doc]
    results, failed = [], False
    for req in reqs:
        name = req.get("name", "")
        try:
            results.append({"name": name, "inner": open_one(req).hex()})
        except Malformed as e:
            print("open.py: %s: %s" % (name, e), file=sys.stderr)
            return 2
        except (IPSecIntegrityError, TypeError, ValueError, IndexError, struct.error) as e:
            # TypeError is scapy's SPI mismatch; the rest are packets too
            # short or malformed to decrypt.
            failed = True
            results.append({"name": name, "error": "%s: %s" % (type(e).__name__, e)})
    json.dump(results, sys.stdout)
    sys.stdout.write("\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
