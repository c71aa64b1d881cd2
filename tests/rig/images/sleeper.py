"""What the look-alike worker and worker_beat run: a few start-up lines, then sleep.

PID 1 ignores SIGTERM unless it installs a handler, so handle it and exit at once.
"""

import signal
import sys
import time

ROLE = sys.argv[1] if len(sys.argv) > 1 else "worker"
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
if ROLE == "worker":
    print("celery@worker v5.5.2 (immunity)", flush=True)
    print("[tasks] . schedule.clean_embedding_cache_task", flush=True)
    print("celery@worker ready.", flush=True)
else:
    print("celery beat v5.5.2 (immunity) is starting.", flush=True)
    print("beat: Starting...", flush=True)
while True:
    time.sleep(3600)
