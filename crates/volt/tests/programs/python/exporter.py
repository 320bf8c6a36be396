"""A Prometheus exporter (prometheus_client) beside the seed workload: it sets
two metrics, then serves /metrics on argv[1] until killed."""
import sys, time
from prometheus_client import Counter, Gauge, start_http_server
port = int(sys.argv[1]) if len(sys.argv) > 1 else 9100
squares = Gauge("optivolt_squares_sum", "Sum of the squares of 0..4999")
rounds = Counter("optivolt_rounds", "Rounds of the workload done")
start_http_server(port)
for r in range(3):
    squares.set(sum(i ** 2 for i in range(5000)))
    rounds.inc()
print("exporting on", port, flush=True)
while True:
    time.sleep(3600)
