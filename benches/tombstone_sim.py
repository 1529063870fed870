#!/usr/bin/env python3
"""Simulates one shard's slot array under the Exchange write mix, to compare the
rules by which a removal frees its slot (docs/DESIGN.md, "The table").

The array of src/table/array.rs, reduced to its slots: linear probing from a
uniformly random home, a probe stopping at an unused slot, an insert reusing the
first tombstone of its probe. The mix is write_probe's Exchange at 1 thread seen
from one shard: 2,048 slots, 1,667 keys, 75% prefilled, then 40% insert, 40%
remove, 20% lookups (a get or an update: a probe that writes no slot). It prints,
for each rule, the slots a probe visits on average, the share of the slots live
and holding tombstones at the end, and the share of removals that hash a key.

Rules for a removal inside a run (a removal whose next slot is unused frees its
slot under every rule, and the tombstones right before it):

  next-unused   the rule until 2026-12-02: a tombstone, always
  bits-2        the slot is freed unless an entry after it, up to the run's end,
                was displaced past it; a displacement of 3 or more reads as
                "3 or more" (two bits in the word: a cell aligned to 8), and
                keeps the tombstone where that cannot tell
  bits-3        the same with three bits ("7 or more": a cell aligned to 16)
  bits-2+hash   two bits, and where they cannot tell, the entry's hash; the
                look stops after 16 slots: Array::probed_through since
                2026-12-02
  exact         exact displacements, the whole run

    python3 benches/tombstone_sim.py            # a few seconds
    python3 benches/tombstone_sim.py --seeds 3  # three seeds each
"""

import random
import sys

CAPACITY = 2048
KEYS = 1667
OPERATIONS = 400_000
RULES = {"next-unused": 0, "bits-2": 3, "bits-3": 7, "bits-2+hash": 3, "exact": None}
RUN_SCAN = 16


def run(rule, seed):
    saturated = RULES[rule]
    rnd = random.Random(seed)
    home = [rnd.randrange(CAPACITY) for _ in range(KEYS)]
    slots = [None] * CAPACITY  # None: unused; "T": tombstone; else the key
    counts = {"probes": 0, "steps": 0, "removals": 0, "hashes": 0}

    def probe(key):
        counts["probes"] += 1
        i, removed = home[key], None
        while True:
            counts["steps"] += 1
            word = slots[i]
            if word is None:
                return False, removed if removed is not None else i
            if word == "T":
                if removed is None:
                    removed = i
            elif word == key:
                return True, i
            i = (i + 1) % CAPACITY

    def probed_through(i):
        if rule == "next-unused":
            return slots[(i + 1) % CAPACITY] is not None
        j = (i + 1) % CAPACITY
        while slots[j] is not None:
            word = slots[j]
            distance = (j - i) % CAPACITY
            if rule == "bits-2+hash" and distance > RUN_SCAN:
                return True
            if word != "T":
                displacement = (j - home[word]) % CAPACITY
                if saturated is not None and displacement >= saturated:
                    if distance <= saturated:
                        return True  # "3 or more" reaches slot i
                    if rule != "bits-2+hash":
                        return True  # the word cannot tell: keep the tombstone
                    counts["hashes"] += 1  # the hash tells: exact below
                if displacement >= distance:
                    return True
            j = (j + 1) % CAPACITY
        return False

    def remove(i):
        counts["removals"] += 1
        if probed_through(i):
            slots[i] = "T"
            return
        slots[i] = None
        j = (i - 1) % CAPACITY
        while slots[j] == "T":
            slots[j] = None
            j = (j - 1) % CAPACITY

    for key in range(KEYS):
        if rnd.random() < 0.75:
            _, i = probe(key)
            slots[i] = key
    counts["probes"] = counts["steps"] = 0
    for _ in range(OPERATIONS):
        key, pick = rnd.randrange(KEYS), rnd.random()
        found, i = probe(key)
        if pick < 0.4 and not found:
            slots[i] = key
        elif 0.4 <= pick < 0.8 and found:
            remove(i)
    live = sum(1 for w in slots if w is not None and w != "T")
    tombstones = sum(1 for w in slots if w == "T")
    hashes = counts["hashes"] / counts["removals"]
    return counts["steps"] / counts["probes"], live / CAPACITY, tombstones / CAPACITY, hashes


def main():
    seeds = int(sys.argv[sys.argv.index("--seeds") + 1]) if "--seeds" in sys.argv else 1
    print("rule          seed  slots per probe  live   tombstones  removals that hash")
    for rule in RULES:
        for seed in range(1, seeds + 1):
            steps, live, tombstones, hashes = run(rule, seed)
            print(
                f"{rule:<12}  {seed:>4}  {steps:>15.2f}  {live:.3f}  {tombstones:.3f}"
                f"       {hashes:.3f}"
            )


if __name__ == "__main__":
    main()
