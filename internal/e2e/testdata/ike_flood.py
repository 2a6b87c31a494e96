#!/usr/bin/python3
"""Flood a gateway's IKE ports, bounded in count and time.

ike_flood.py TARGET INITS_FILE SECONDS
  INITS_FILE: one well-formed IKE_SA_INIT request per line (hex), each sent
  once from a spoofed source address in 203.0.113.10-250 (off the WAN
  subnet, routed back through the other gateway as the internet would be) to port 500;
  between them garbage: random bytes to port 500, non-ESP-marker garbage
  and random "ESP" to port 4500. Stops after all are sent or SECONDS.
Prints the number of datagrams sent.
"""
import os
import random
import sys
import time

from scapy.all import IP, UDP, Raw, conf, L3RawSocket  # noqa: E402

conf.verb = 0
target, inits_file, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
inits = [bytes.fromhex(l.strip()) for l in open(inits_file) if l.strip()]
rnd = random.Random(7)
sock = L3RawSocket()
deadline = time.time() + seconds
sent = 0
for init in inits:
    if time.time() > deadline:
        break
    src = "203.0.113.%d" % rnd.randint(10, 250)
    pkts = [
        IP(src=src, dst=target) / UDP(sport=500, dport=500) / Raw(init),
        IP(src=src, dst=target) / UDP(sport=rnd.randint(1024, 65535), dport=500) / Raw(os.urandom(rnd.randint(1, 300))),
        IP(src=src, dst=target) / UDP(sport=4500, dport=4500) / Raw(b"\0\0\0\0" + os.urandom(rnd.randint(28, 300))),
        IP(src=src, dst=target) / UDP(sport=4500, dport=4500) / Raw(os.urandom(rnd.randint(8, 300))),
    ]
    for p in pkts:
        sock.send(p)
        sent += 1
print(sent)
