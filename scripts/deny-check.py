#!/usr/bin/env python3
"""Enforce deny.toml on the locked dependency graph (`cargo metadata`):
every package's licence expression must be satisfiable with the allowed
SPDX identifiers, packages come from one registry or the workspace (no git),
and crates present in several versions are listed (multiple-versions =
"warn") or refused ("deny"). Exits 1 on a violation."""

from __future__ import annotations

import collections
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path


def allowed(expr: str, allow: set[str]) -> bool:
    """Evaluate an SPDX licence expression (OR, AND, WITH, parentheses;
    the old `A/B` form means `A OR B`)."""
    tokens = re.findall(r"\(|\)|[^\s()]+", expr.replace("/", " OR "))
    pos = 0

    def peek():
        return tokens[pos] if pos < len(tokens) else None

    def take():
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def primary() -> bool:
        t = take()
        if t == "(":
            v = disjunction()
            if take() != ")":
                raise ValueError(f"unbalanced: {expr}")
            return v
        ok = t.rstrip("+") in allow or t in allow
        if peek() == "WITH":
            take()
            take()  # the exception only narrows what X demands
        return ok

    def conjunction() -> bool:
        v = primary()
        while peek() == "AND":
            take()
            v = primary() and v
        return v

    def disjunction() -> bool:
        v = conjunction()
        while peek() == "OR":
            take()
            v = conjunction() or v
        return v

    result = disjunction()
    if pos != len(tokens):
        raise ValueError(f"unparsed: {expr}")
    return result


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    policy = tomllib.loads((root / "deny.toml").read_text())
    allow = set(policy["licenses"]["allow"])
    meta = json.loads(subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked"],
        cwd=root, check=True, capture_output=True, text=True).stdout)
    # `cargo metadata` lists every package of the lock file, including
    # optional dependencies that no enabled feature builds (it counts weak
    # `dep?/feature` links as edges). `cargo tree` resolves features the
    # way a build does: only what it lists is checked.
    built = subprocess.run(
        ["cargo", "tree", "--workspace", "--locked", "--target", "all",
         "-e", "normal,build,dev", "--prefix", "none", "-f", "{p}"],
        cwd=root, check=True, capture_output=True, text=True).stdout
    used = {tuple(line.split()[:2]) for line in built.splitlines() if line.strip()}
    skipped = [p for p in meta["packages"]
               if (p["name"], f"v{p['version']}") not in used]
    if skipped:
        print("deny-check: not built with the enabled features: "
              + ", ".join(f"{p['name']} {p['version']}" for p in skipped))
    meta["packages"] = [p for p in meta["packages"]
                        if (p["name"], f"v{p['version']}") in used]
    problems: list[str] = []
    registries: set[str] = set()
    versions: dict[str, set[str]] = collections.defaultdict(set)
    for p in meta["packages"]:
        name = f"{p['name']} {p['version']}"
        versions[p["name"]].add(p["version"])
        lic = p.get("license")
        if not lic:
            problems.append(f"{name}: no licence expression")
        else:
            try:
                if not allowed(lic, allow):
                    problems.append(f"{name}: licence {lic!r} not allowed")
            except (ValueError, IndexError) as e:
                problems.append(f"{name}: unreadable licence {lic!r} ({e})")
        source = p.get("source")
        if source is None:
            continue
        if source.startswith("registry+") or source.startswith("sparse+"):
            registries.add(source)
        else:
            problems.append(f"{name}: source {source.split('#')[0]} not allowed (git)")
    if len(registries) > 1:
        problems.append(f"packages from {len(registries)} registries; one is allowed")
    dupes = sorted(n for n, v in versions.items() if len(v) > 1)
    if dupes:
        line = ", ".join(f"{n} ({' '.join(sorted(versions[n]))})" for n in dupes)
        if policy.get("bans", {}).get("multiple-versions") == "deny":
            problems.append(f"several versions of: {line}")
        else:
            print(f"deny-check: warning: several versions of {line}")
    for msg in problems:
        print(f"deny-check: {msg}", file=sys.stderr)
    print(f"deny-check: {len(meta['packages'])} packages, "
          f"{'ok' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
