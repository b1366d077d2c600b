#!/usr/bin/env python3
"""What an idle broker with many partitions costs (issue 19): broker CPU seconds while no
client is connected, after a clean restart and after a SIGKILL restart.

  perf/idle_cost.py BIN DATA_DIR [PARTITIONS]

A DATA_DIR that does not exist yet is filled first with PARTITIONS partitions (topics of 10,
as perf/scale.py creates them; default 100,000) and kept, so builds can be compared on the
same data. Then, on BIN: start, wait 5 s, CPU over 10 s (idle); SIGKILL, restart, CPU in each
of the next four 5 s windows. Needs confluent-kafka (the test venv: .venv/bin/python).
"""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scale import Broker, create_partitions  # noqa: E402

IDLE_SETTLE_S = 5
IDLE_WINDOW_S = 10
AFTER_KILL_WINDOWS = 4
AFTER_KILL_WINDOW_S = 5


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    binary, data = sys.argv[1], sys.argv[2]
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 100_000
    fresh = not os.path.exists(data)
    broker = Broker(binary, data, os.path.join(os.path.dirname(os.path.abspath(data)), "idle_cost.log"))
    broker.start()
    if fresh:
        create_partitions(broker, count)
        broker.stop(signal.SIGTERM)
        broker.start()
    time.sleep(IDLE_SETTLE_S)
    before = broker.cpu_seconds()
    time.sleep(IDLE_WINDOW_S)
    print(f"idle: {broker.cpu_seconds() - before:.2f} CPU-s in {IDLE_WINDOW_S} s, "
          f"RSS {broker.rss_mib():.0f} MiB", flush=True)
    broker.stop(signal.SIGKILL)
    print(f"restart after SIGKILL: {broker.start():.1f} s to ready", flush=True)
    for i in range(AFTER_KILL_WINDOWS):
        before = broker.cpu_seconds()
        time.sleep(AFTER_KILL_WINDOW_S)
        start = i * AFTER_KILL_WINDOW_S
        print(f"{start}-{start + AFTER_KILL_WINDOW_S} s after ready: "
              f"{broker.cpu_seconds() - before:.2f} CPU-s", flush=True)
    broker.stop(signal.SIGTERM)


if __name__ == "__main__":
    main()
