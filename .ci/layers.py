#!/usr/bin/env python3
"""The library OS's folders depend one way (docs/architecture.md): a folder
may use only folders of a lower layer. Prints each `crate::` use that points
up or sideways into a higher layer and exits 1 if there is one."""
import os, re, sys
src = os.path.join(os.path.dirname(__file__), "..", "crates/libos/src")
# Lowest first; a module may use its own layer's leaves (errno, uapi, ...) and anything below.
LAYER = {"errno": 0, "uapi": 0, "util": 0, "time": 0, "rand": 0,
         "arch": 1, "loader": 1, "mm": 2, "fs": 2, "drivers": 2, "vdso": 3,
         "task": 4, "net": 5, "fd": 6, "kernel": 7, "syscall": 8}
bad = 0
for d, _, fs in os.walk(src):
    for f in fs:
        if not f.endswith(".rs"):
            continue
        p = os.path.join(d, f)
        rel = os.path.relpath(p, src)
        top = rel.split(os.sep)[0].removesuffix(".rs")
        if top not in LAYER:
            continue
        text = re.sub(r"#\[cfg\(test\)\]\s*mod tests\s*\{.*", "", open(p).read(), flags=re.S)
        for n, line in enumerate(text.split("\n"), 1):
            for m in re.finditer(r"crate::([a-z_]+)", line):
                dst = m.group(1)
                if dst != top and dst in LAYER and LAYER[dst] >= LAYER[top] and LAYER[top] > 0:
                    print(f"{rel}:{n}: {top}/ must not use {dst}/: {line.strip()}")
                    bad += 1
print(f"libos layers: {bad} uses against the direction")
sys.exit(1 if bad else 0)
