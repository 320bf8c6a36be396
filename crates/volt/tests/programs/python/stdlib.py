"""Standard-library work whose output is the same on every run: json, re,
hashlib, datetime, threading, file I/O under /tmp, time.sleep."""
import datetime
import hashlib
import json
import os
import re
import sys
import threading
import time

doc = {"name": "optivolt", "sizes": [1, 2, 3], "nested": {"ok": True, "pi": 3.25}}
text = json.dumps(doc, sort_keys=True)
print("json:", text, json.loads(text) == doc)

words = re.findall(r"[a-z]+(?=\d)", "abc1 de2 f g3 hij")
print("re:", words, re.sub(r"(\w)(\d)", r"\2\1", "a1 b2"))

print("sha256:", hashlib.sha256(b"unikernel" * 1000).hexdigest())
print("md5:", hashlib.md5(b"").hexdigest())

d = datetime.datetime(2026, 12, 1, 19, 52, 0) + datetime.timedelta(days=45, hours=5)
print("datetime:", d.isoformat(), d.strftime("%A %j"), datetime.date(2024, 2, 29).weekday())

total = [0] * 4
def work(i):
    total[i] = sum(k * k for k in range(20000 * (i + 1)))
threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("threads:", total)

lock = threading.Lock()
count = 0
def bump():
    global count
    for _ in range(2000):
        with lock:
            count += 1
ts = [threading.Thread(target=bump) for _ in range(3)]
[t.start() for t in ts]
[t.join() for t in ts]
print("lock:", count)

path = "/tmp/volt-python-%d.txt" % os.getpid()
with open(path, "w") as f:
    for i in range(100):
        f.write("line %d\n" % i)
with open(path) as f:
    lines = f.readlines()
os.remove(path)
print("file:", len(lines), lines[-1].strip(), os.path.exists(path))

t0 = time.monotonic()
time.sleep(0.05)
print("slept >= 50 ms:", time.monotonic() - t0 >= 0.05)
print("argv:", sys.argv[1:])
sys.exit(3)
