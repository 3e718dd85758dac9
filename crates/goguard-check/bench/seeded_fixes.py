#!/usr/bin/env python3
"""Fixes on real code: seed bugs into the corpora as bench/realcode/seeded.py does, let
`goguard check --fix --unsafe-fixes` fix them, and check each result.

For each kind with a fix (G401, G204, G301, G304) and each chosen site: the package is
copied (its .go files and go.mod), the bug seeded, and the finding at the seeded line read
with its fix. Then `--fix --unsafe-fixes --select RULE` runs on the copy, and the edited
file must be gofmt-clean, no longer have the finding, and the package must have no more
findings of any rule than before the bug was seeded. The table also counts how often the
fix gives back the original text byte for byte (a seeded `defer` put back where it was;
`wg.Go` on Go 1.25+ modules is a different, equivalent text). The corpora's dependencies are
not downloaded, so the packages are not built: the toolchain test of every fix shape is
crates/goguard-check/tests/fixes_test.rs.

  python3 crates/goguard-check/bench/seeded_fixes.py [--goguard PATH] [--per-kind N]

Standard library only; needs the Go toolchain's gofmt.
"""

import argparse
import importlib.util
import json
import os
import random
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
KINDS = ["G401", "G204", "G301", "G304"]


def load_seeded():
    spec = importlib.util.spec_from_file_location(
        "seeded", os.path.join(ROOT, "bench", "realcode", "seeded.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def diagnostics(goguard, directory, *args):
    proc = subprocess.run([goguard, "check", "--isolated", "--format", "json", *args, directory],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    return json.loads(proc.stdout.decode("utf-8"))["diagnostics"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--goguard", default=None)
    ap.add_argument("--corpora", default=os.path.normpath(os.path.join(ROOT, "..", "shared", "corpora")))
    ap.add_argument("--per-kind", type=int, default=15)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    goguard = args.goguard or next(
        (os.path.join(ROOT, p) for p in ("target/release/goguard", "target/debug/goguard")
         if os.path.isfile(os.path.join(ROOT, p))), None)
    if not goguard:
        sys.exit("no goguard binary: build it or pass --goguard")
    goroot = subprocess.check_output(["go", "env", "GOROOT"]).decode().strip()
    gofmt = os.path.join(goroot, "bin", "gofmt")
    seeded = load_seeded()
    sites = defaultdict(list)
    for path in seeded.go_files(args.corpora):
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().split("\n")
        for rule in KINDS:
            for edited, line in seeded.SEEDERS[rule](lines):
                sites[rule].append((path, edited, line))
    rng = random.Random(args.seed)
    print("| rule | seeded, found | fix offered (safe / unsafe) | fixed, gofmt-clean, nothing new | original text back |")
    print("|---|---:|---:|---:|---:|")
    for rule in KINDS:
        chosen = sites[rule]
        rng.shuffle(chosen)
        stats = Counter()
        for path, edited, line in chosen[: args.per_kind]:
            with tempfile.TemporaryDirectory(prefix="goguard-seedfix-") as tmp:
                seeded.copy_package(path, tmp)
                for n in os.listdir(tmp):
                    os.chmod(os.path.join(tmp, n), 0o644)
                name = os.path.basename(path)
                target = os.path.join(tmp, name)
                with open(target, encoding="utf-8") as f:
                    original = f.read()
                before = Counter(d["rule"] for d in diagnostics(goguard, tmp))
                with open(target, "w", encoding="utf-8") as f:
                    f.write("\n".join(edited))
                near = lambda d: (d["rule"] == rule and os.path.basename(d["path"]) == name
                                  and abs(d["line"] - line) <= 3)
                found = [d for d in diagnostics(goguard, tmp) if near(d)]
                if not found:
                    continue
                stats["found"] += 1
                fix = found[0].get("fix")
                if not fix:
                    continue
                stats[fix["applicability"]] += 1
                subprocess.run([goguard, "check", "--isolated", "--fix", "--unsafe-fixes",
                                "--select", rule, tmp], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, check=False)
                with open(target, encoding="utf-8") as f:
                    fixed = f.read()
                fmt = subprocess.run([gofmt, "-l", target], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, check=False)
                after = diagnostics(goguard, tmp)
                counts = Counter(d["rule"] for d in after)
                problems = []
                if fmt.returncode != 0 or fmt.stdout.strip():
                    problems.append("not gofmt-clean")
                if any(near(d) for d in after):
                    problems.append("still reported")
                if any(counts[r] > before[r] for r in counts):
                    problems.append("new findings")
                if problems:
                    print("  %s %s:%d: %s" % (rule, os.path.relpath(path, args.corpora), line,
                                              ", ".join(problems)), file=sys.stderr)
                else:
                    stats["good"] += 1
                if fixed == original:
                    stats["restored"] += 1
        offered = stats["safe"] + stats["unsafe"]
        print("| %s | %d of %d | %d (%d / %d) | %d | %d |" % (
            rule, stats["found"], min(len(chosen), args.per_kind), offered, stats["safe"],
            stats["unsafe"], stats["good"], stats["restored"]))


if __name__ == "__main__":
    main()
