#!/bin/bash
# Issue 18, final pass: every scenario on the current code, one run each; then
# before/after pairs against 0e1fbaa (where issue 18 measured), each pair adjacent.
cd /work/main
LOG=/tmp/bench-final2.log
D=/tmp/bin-slim; B=$D/meno-load; R=bench/results/2026-12-08b
run() { name=$1; shift; echo "=== $name: $* ($(date +%T))" >> $LOG; "$@" --bin-dir $D --json $R-$name.json >> $LOG 2>&1; }
run fanout $B run --scenario fanout --targets meno,meno-split,centrifugo,baseline --rates 22,50,100 --no-stop
run fanout-grpc $B run --scenario fanout --targets meno-split --publish grpc --rates 22,50,100 --no-stop
run fanout-sat $B run --scenario fanout --targets centrifugo,meno-split --publish grpc --rates 50,100,200,400,800,1600
run rooms $B run --scenario rooms --targets meno,meno-split,centrifugo,baseline --rates 2000,5000,10000 --no-stop
run slow $B run --scenario slow --targets meno,centrifugo,baseline
run idle $B run --scenario idle --targets meno,meno-split,centrifugo,baseline --subscribers 10000
run chat $B run --scenario chat --targets meno-embedded,meno,centrifugo,baseline --rooms 100 --subscribers 10 --step 10s
run join $B run --scenario join --targets meno,meno-split,centrifugo,baseline --subscribers 2000
MENO_LOAD_CENTRIFUGO_PRESENCE=1 run join-presence $B run --scenario join --targets centrifugo --subscribers 2000
run fanout-latency-120 $B run --scenario fanout --targets centrifugo,meno-split --publish grpc --rates 120 --no-stop
run join-10k $B run --scenario join --targets meno --subscribers 10000
run idle-100k $B run --scenario idle --targets meno-split --subscribers 100000 --processes 6 --by-room
run idle-100k-spread $B run --scenario idle --targets meno-split --subscribers 100000 --processes 6
# Before (0e1fbaa) and after, adjacent.
R=bench/results/2026-12-08c-ba
for pair in "0e1 slim" "slim 0e1"; do for d in $pair; do D=/tmp/bin-$d
  run fanout-$d $B run --scenario fanout --targets meno,meno-split --rates 22,50,100 --no-stop
  run rooms-$d $B run --scenario rooms --targets meno,meno-split --rates 2000,5000 --no-stop
done; done
for d in 0e1 slim; do D=/tmp/bin-$d
  run idle-$d $B run --scenario idle --targets meno,meno-split --subscribers 10000
  run slow-$d $B run --scenario slow --targets meno
  run chat-$d $B run --scenario chat --targets meno-embedded,meno --rooms 100 --subscribers 10 --step 10s
  run join-$d $B run --scenario join --targets meno,meno-split --subscribers 2000
done
echo "done $(date +%T)" >> $LOG
