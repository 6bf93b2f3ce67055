#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""stages.py FILE - where a postcopy fault's time goes, hop by hop.

FILE is what the stamps of stages.patch wrote (XR_PCTRACE=FILE during
tests/bench/postcopy/run.sh): lines "STAGE GFN NS", from every process
(the simulated host, both xenram), one CLOCK_MONOTONIC.  For every
vCPU fault (V0 .. V9 of one gfn) the stages in between are found in
order: those stamped with a gfn by that gfn, S3 (the source's reader
took a PAGE_REQUEST) as the last one before the page's send, D7 (the
simulated Xen took the ring's responses) as the first after the pager's
notification.  Prints the median and mean of each hop over the faults
whose every stage was found.
"""
import bisect
import collections
import statistics
import sys

ORDER = ["V0", "R1", "R2", "S3", "S4", "S5", "R6", "L0", "D5", "D6", "L1",
         "P8", "D7", "V9"]
WHAT = {
    "R1": "Xen's request on the ring -> xenram's ring thread (fault callback)",
    "R2": "-> PAGE_REQUEST written on the return path",
    "S3": "-> the source's return-path reader has it",
    "S4": "-> bits taken, the send starts (preempt channel)",
    "S5": "-> the page written",
    "R6": "-> the destination's preempt receiver has it",
    "L0": "-> xc_mem_paging_load called",
    "D5": "-> the simulated Xen serves the load (a call to the daemon)",
    "D6": "-> the page is in",
    "L1": "-> the call returned (the daemon's answer)",
    "P8": "-> response on the ring, channel notified",
    "D7": "-> the simulated Xen takes the response",
    "V9": "-> the vCPU runs again",
}


def main(path):
    by_gfn = collections.defaultdict(list)
    by_stage = collections.defaultdict(list)
    for line in open(path):
        parts = line.split()
        if len(parts) != 3:
            continue
        st, g, t = parts[0], int(parts[1], 16), int(parts[2])
        by_gfn[(st, g)].append(t)
        by_stage[st].append(t)
    for v in list(by_gfn.values()) + list(by_stage.values()):
        v.sort()
    hops = collections.defaultdict(list)
    total = []
    for (st, g), starts in by_gfn.items():
        if st != "V0":
            continue
        for t0 in starts:
            t, row = t0, []
            for s in ORDER[1:]:
                if s == "S3":
                    continue            # placed once S4 is known
                lst = by_stage[s] if s == "D7" else by_gfn.get((s, g), [])
                i = bisect.bisect_left(lst, t)
                if i == len(lst):
                    row = None
                    break
                if s == "S4":
                    s3 = by_stage["S3"]
                    j = bisect.bisect_right(s3, lst[i]) - 1
                    if j < 0 or s3[j] < t:
                        row = None
                        break
                    row.append(("S3", s3[j] - t))
                    t = s3[j]
                row.append((s, lst[i] - t))
                t = lst[i]
            if row is None or t - t0 > 50_000_000:
                continue
            for s, d in row:
                hops[s].append(d / 1e3)
            total.append((t - t0) / 1e3)
    if not total:
        print("no complete fault in", path)
        return 1
    print("%d faults with every stage; V0 -> V9 median %.1f us, mean %.1f us"
          % (len(total), statistics.median(total), statistics.mean(total)))
    for s in ORDER[1:]:
        d = hops[s]
        print("  %-3s %7.1f us median %7.1f us mean  %s"
              % (s, statistics.median(d), statistics.mean(d), WHAT[s]))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
