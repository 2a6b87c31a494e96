#!/usr/bin/env bash
# cap.sh NAME IKEPROPOSAL ESPPROPOSAL
set -u
name=$1 ike=$2 esp=$3
here=/tmp/ikcap
out=$here/$name; rm -rf $out; mkdir -p $out
/work/shared/lab/topo.sh up ik >/dev/null
for side in left right; do
  sed -e "s/proposals = aes128gcm16-prfsha256-x25519/proposals = $ike/" -e "s/esp_proposals = aes128gcm16/esp_proposals = $esp/" $here/$side.conf > $out/$side.conf
done
ip netns exec ikgl tcpdump -i ikw0 -w $out/cap.pcap -U udp port 500 or udp port 4500 >/dev/null 2>&1 &
tp=$!
sleep 1
$here/run.sh ikgl $out/gl $out/left.conf >/dev/null
$here/run.sh ikgr $out/gr $out/right.conf >/dev/null
$here/swanctl.sh $out/gl --initiate --child net > $out/initiate.txt 2>&1
sleep 1
$here/swanctl.sh $out/gl --list-sas > $out/sas.txt 2>&1
$here/stop.sh $out/gl; $here/stop.sh $out/gr
sleep 1
kill $tp
sleep 0.5
/work/shared/lab/topo.sh down ik
