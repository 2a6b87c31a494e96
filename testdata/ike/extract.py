#!/usr/bin/python3
"""extract.py CAPDIR OUTDIR: turn one strongSwan capture (made by capture.sh)
into golden inputs for ike tests:
  messages.txt  one IKE message per line: "src sport dst dport hex" (UDP
                payload, the 4-byte non-ESP marker of port 4500 removed)
  keys.txt      "name: hex" for every key dump of the initiator's charon log
                (ike = 4, chd = 4); repeated names get "#2", "#3", ...
Run with Debian's python3 (scapy)."""
import re, sys
from scapy.all import rdpcap, UDP, IP

cap, out = sys.argv[1], sys.argv[2]
with open(out + "/messages.txt", "w") as f:
    for p in rdpcap(cap + "/cap.pcap"):
        if UDP not in p:
            continue
        data = bytes(p[UDP].payload)
        if p[UDP].dport == 4500 or p[UDP].sport == 4500:
            if data[:4] != b"\0\0\0\0":
                continue  # ESP, not IKE
            data = data[4:]
        f.write("%s %d %s %d %s\n" % (p[IP].src, p[UDP].sport, p[IP].dst, p[UDP].dport, data.hex()))

head = re.compile(r"^\S+ \d+\[(IKE|CHD)\] (.+?) => (\d+) bytes @")
row = re.compile(r"^\S+ \d+\[(IKE|CHD)\]\s+\d+: ((?:[0-9A-F]{2} )+)")
seen, keys, cur = {}, [], None
for line in open(cap + "/gl/charon.log"):
    m = head.match(line)
    if m:
        name = m.group(2)
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name += "#%d" % seen[name]
        cur = [name, int(m.group(3)), ""]
        keys.append(cur)
        continue
    m = row.match(line)
    if m and cur is not None:
        cur[2] += m.group(2).replace(" ", "").lower()
with open(out + "/keys.txt", "w") as f:
    for name, n, hexs in keys:
        assert len(hexs) == 2 * n, (name, n, len(hexs))
        f.write("%s: %s\n" % (name, hexs))
