"""scripts/faults: runs the fault scenarios (fault_scenarios.py) and prints their figures."""
import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fault_scenarios as fs  # noqa: E402
from lwm2m_peers import PeerSet  # noqa: E402


def run(name, scenario, *args):
    with tempfile.TemporaryDirectory(prefix=f"gw-faults-{name}-") as tmp:
        peers = PeerSet(tmp)
        try:
            figures, _ = scenario(peers, *args)
        finally:
            peers.stop_all()
    return figures


def table(rows):
    head = ("fault", "sent", "acked", "delivered", "dup", "lost", "requests", "answered",
            "re-reg", "recovery")
    cells = [head] + [(f.name, f.sent, f.acked, f.delivered, f.duplicated, f.lost, f.requests,
                       f.answered, f.registrations, f.recovery) for f in rows]
    widths = [max(len(str(c[i])) for c in cells) for i in range(len(head))]
    for i, c in enumerate(cells):
        print("  ".join(str(v).ljust(widths[j]) if j == 0 else str(v).rjust(widths[j])
                        for j, v in enumerate(c)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    notes = [f"{f.name}: {f.notes}" for f in rows if f.notes]
    if notes:
        print()
        print("\n".join(notes))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--only", nargs="*",
                    default=["sigkill", "unplug", "broker", "outage", "abuse", "writes"])
    args = ap.parse_args()
    rows = []
    if "sigkill" in args.only:
        rows += run("sigkill", fs.sigkill, args.kills)
    if "unplug" in args.only:
        for seconds in (3, 10):
            rows += run("unplug", fs.modem_unplug, seconds)
    if "broker" in args.only:
        rows += run("broker", fs.broker_restart)
    if "outage" in args.only:
        for mode in ("drop", "refuse"):
            rows += run("outage", fs.upstream_outage, mode, 5)
    if "abuse" in args.only:
        for scenario in (fs.flood_malformed_nidd, fs.flood_malformed_sms, fs.mqtt_malformed_flood,
                         fs.http_abuse, fs.table_exhaustion, fs.impersonation):
            rows += run("abuse", scenario)
    if "writes" in args.only:
        rows += run("writes", fs.writes_per_message)
    table(rows)


if __name__ == "__main__":
    main()
