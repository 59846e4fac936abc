"""Reading compiled HLO text in tests: which custom calls a program runs on every call."""

from __future__ import annotations

import re


def unconditional_calls(hlo: str, target: str = "getrf") -> int:
    """How often ``target`` (default: LAPACK's LU factorisation) occurs in the computations a
    compiled program reaches from its entry without entering a conditional's branch: the
    calls it makes every time it runs, loop bodies included."""
    bodies = {m.group(2): m.group(3) for m in re.finditer(
        r"\n(ENTRY )?%?([\w.-]+) [^\n]*\{\n(.*?)\n\}", hlo, re.S)}
    entry = re.search(r"\nENTRY %?([\w.-]+)", hlo).group(1)
    seen: set[str] = set()

    def reach(name):
        if name in bodies and name not in seen:
            seen.add(name)
            for callee in re.findall(r"(?:calls|to_apply|body|condition)=\{?%([\w.-]+)", bodies[name]):
                reach(callee)

    reach(entry)
    return sum(bodies[name].count(target) for name in seen)
