"""The OptiVolt seed's CPU workload: squares of 5,000 values in a loop,
a line every N iterations and a sleep, for a bounded number of rounds."""
import sys
import time

rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
every = 1000
for r in range(rounds):
    acc = 0
    for i in range(5000):
        acc += i ** 2
        if i % every == 0:
            print("round %d i=%d acc=%d" % (r, i, acc))
    print("round %d done: %d" % (r, acc), flush=True)
    time.sleep(0.5)
