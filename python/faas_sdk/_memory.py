"""Memory of sandbox processes from /proc/<pid>/smaps_rollup: what each one costs on its own
(USS: private pages) and its fair share of what it shares copy-on-write (PSS)."""

from __future__ import annotations

from ._engine import core


def process_memory(pid: int) -> dict:
    """{"rss", "pss", "uss"} in bytes; zeros if the process is gone."""
    fields = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                name, _, rest = line.partition(":")
                parts = rest.split()
                if parts and parts[-1] == "kB":
                    fields[name] = int(parts[0]) * 1024
    except OSError:
        return {"rss": 0, "pss": 0, "uss": 0}
    uss = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return {"rss": fields.get("Rss", 0), "pss": fields.get("Pss", 0), "uss": uss}


def engine_memory() -> dict:
    """Per kind of process (sandbox, branch, template): count, total USS and PSS, and the
    largest USS."""
    summary = {kind: {"count": 0, "uss": 0, "pss": 0, "max_uss": 0} for kind in ("sandbox", "branch", "template")}
    for kind, _, pid in core.live_processes():
        m = process_memory(pid)
        entry = summary[kind]
        entry["count"] += 1
        entry["uss"] += m["uss"]
        entry["pss"] += m["pss"]
        entry["max_uss"] = max(entry["max_uss"], m["uss"])
    return summary
