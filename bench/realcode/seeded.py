#!/usr/bin/env python3
"""Recall of `goguard check` on real code: seed known bugs into the corpora and count how many
goguard finds.

Precision (precision.py) says how often a finding is right; it cannot say what goguard misses.
This script takes real functions from the corpora, makes one small edit that introduces a bug
of a known kind (the edit is the bug, so the bug is certain), and checks that goguard reports
the rule for it at the edited place. Each kind:

  G401  `mu.Lock(); defer mu.Unlock()` with a `return` after it: the defer removed
  G403  `mu.Lock()`: taken a second time on the next line
  G204  `ctx, cancel := context.With...(); defer cancel()`: the defer removed, cancel unused
  G301  `wg.Add(1)` right before `go func() {`: moved into the goroutine
  G402  a pointer-receiver method that locks `recv.mu`: the receiver made a value
  G101  `defer close(ch)` in a goroutine of a function that ranges over ch: the close removed
  G304  `go func() { defer wg.Done(); ... return ... }()`: the Done moved to the end

For each site the package's directory is copied (its .go files and the module's go.mod), the
edit made in the copy, and `goguard check --select RULE --format json` run on it; a site counts
as found when the edited file has a finding of RULE within 3 lines of the edit that the
unedited package does not have.

  python3 bench/realcode/seeded.py [--goguard PATH] [--per-kind N] [--seed S] [--misses]

Standard library only.
"""

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
REPOS = ["etcd", "grpc-go", "prometheus", "syncthing"]
SLACK = 3


def go_files(corpora):
    for repo in REPOS:
        for dirpath, dirs, files in os.walk(os.path.join(corpora, repo)):
            dirs[:] = [d for d in dirs if d not in ("vendor", "testdata") and not d.startswith(".")]
            for name in files:
                if name.endswith(".go"):
                    yield os.path.join(dirpath, name)


def is_generated(lines):
    """A `// Code generated ... DO NOT EDIT.` line before the package clause (go/ast.IsGenerated)."""
    for line in lines:
        line = line.rstrip("\r")
        if line.startswith("package "):
            return False
        if line.startswith("// Code generated ") and line.endswith(" DO NOT EDIT."):
            return True
    return False


def function_end(lines, start):
    """Index of the line closing the top-level function that contains line `start`."""
    for i in range(start, len(lines)):
        if lines[i] == "}":
            return i
    return len(lines) - 1


def indent_of(line):
    return line[: len(line) - len(line.lstrip())]


# Each seeder takes the file's lines and returns a list of (edited lines, line of the bug
# (1-based, in the edited file)).

def seed_g401(lines):
    out = []
    for i in range(len(lines) - 1):
        m = re.match(r"^(\s*)([\w.]+)\.(R?Lock)\(\)$", lines[i])
        if not m:
            continue
        ind, mu, lock = m.groups()
        unlock = "RUnlock" if lock == "RLock" else "Unlock"
        if lines[i + 1].strip() != "defer %s.%s()" % (mu, unlock):
            continue
        end = function_end(lines, i)
        body = lines[i + 2 : end]
        # a return after the lock, at the same or deeper indentation, and no other unlock
        if not any(l.strip().startswith("return") for l in body):
            continue
        if any("%s.%s()" % (mu, unlock) in l for l in body):
            continue
        if any(l.strip().startswith("func") or "func(" in l for l in body):
            continue  # closures may take the lock over: keep the seed certain
        edited = lines[: i + 1] + lines[i + 2 :]
        out.append((edited, i + 1))
    return out


def seed_g403(lines):
    out = []
    for i in range(len(lines) - 1):
        m = re.match(r"^(\s*)([\w.]+)\.Lock\(\)$", lines[i])
        if not m:
            continue
        edited = lines[: i + 1] + [lines[i]] + lines[i + 1 :]
        out.append((edited, i + 2))
    return out


def seed_g204(lines):
    out = []
    for i in range(len(lines) - 1):
        m = re.match(r"^\s*\w+, (\w+) :?= context\.With(Cancel|Timeout|Deadline)\(", lines[i])
        if not m:
            continue
        cancel = m.group(1)
        if lines[i + 1].strip() != "defer %s()" % cancel:
            continue
        end = function_end(lines, i)
        if any(re.search(r"\b%s\b" % cancel, l) for l in lines[i + 2 : end]):
            continue
        edited = lines[: i + 1] + lines[i + 2 :]
        out.append((edited, i + 1))
    return out


def seed_g301(lines):
    out = []
    for i in range(len(lines) - 1):
        m = re.match(r"^(\s*)([\w.]+)\.Add\(1\)$", lines[i])
        if not m:
            continue
        ind, wg = m.groups()
        if lines[i + 1] != ind + "go func() {":
            continue
        edited = lines[:i] + [lines[i + 1], ind + "\t" + wg + ".Add(1)"] + lines[i + 2 :]
        out.append((edited, i + 2))
    return out


def seed_g402(lines):
    out = []
    for i, line in enumerate(lines):
        m = re.match(r"^func \((\w+) \*(\w+)\) (\w+)\(", line)
        if not m:
            continue
        recv, ty, _ = m.groups()
        end = function_end(lines, i)
        body = "\n".join(lines[i + 1 : end])
        # the method locks a mutex field of its receiver
        if not re.search(r"\b%s\.\w+\.R?Lock\(\)" % re.escape(recv), body):
            continue
        edited = lines[:i] + [line.replace("(%s *%s)" % (recv, ty), "(%s %s)" % (recv, ty), 1)] + lines[i + 1 :]
        out.append((edited, i + 1))
    return out


def seed_g101(lines):
    out = []
    for i, line in enumerate(lines):
        m = re.match(r"^\s*defer close\((\w+)\)$", line)
        if not m:
            continue
        ch = m.group(1)
        # inside a goroutine (a `go func` above it in the same function) and ranged over
        start = i
        while start > 0 and not lines[start].startswith("func "):
            start -= 1
        end = function_end(lines, i)
        fn = lines[start:end]
        if not any("go func" in l for l in lines[start:i]):
            continue
        ranged = [k for k, l in enumerate(fn) if re.search(r"range %s\s*\{" % ch, l)]
        if not ranged:
            continue
        if any(re.search(r"close\(%s\)" % ch, l) for l in lines[start:end] if l is not line):
            continue
        if sum(1 for l in fn if "close(%s)" % ch in l) != 1:
            continue
        edited = lines[:i] + lines[i + 1 :]
        # the finding is at the range
        out.append((edited, start + ranged[0] + (1 if start + ranged[0] < i else 0)))
    return out


def seed_g304(lines):
    out = []
    for i in range(len(lines) - 1):
        m = re.match(r"^(\s*)go func\(.*\) \{$", lines[i])
        if not m:
            continue
        ind = m.group(1)
        d = re.match(r"^\s*defer ([\w.]+)\.Done\(\)$", lines[i + 1])
        if not d:
            continue
        wg = d.group(1)
        end = next((k for k in range(i + 2, len(lines)) if lines[k].startswith(ind + "}(")), None)
        if end is None:
            continue
        body = lines[i + 2 : end]
        # a return of the goroutine itself (not of a nested literal) that the Done must cover,
        # and not only after the test has failed (that path is not reported by design)
        fails = re.compile(r"\b\w+\.(Error|Errorf|Fatal|Fatalf|Fail|FailNow)\(")
        if not any(l.startswith(ind + "\t") and l.strip().startswith("return")
                   and not fails.search(body[k - 1] if k else "")
                   for k, l in enumerate(body)):
            continue
        if any("func(" in l for l in body) or any("%s.Done()" % wg in l for l in body):
            continue
        edited = lines[: i + 1] + body + [ind + "\t" + wg + ".Done()"] + lines[end:]
        out.append((edited, i + 1 + len(body) + 1))
    return out


SEEDERS = {
    "G401": seed_g401,
    "G403": seed_g403,
    "G204": seed_g204,
    "G301": seed_g301,
    "G402": seed_g402,
    "G101": seed_g101,
    "G304": seed_g304,
}

WHAT = {
    "G401": "`defer mu.Unlock()` removed, a return follows",
    "G403": "`mu.Lock()` taken twice",
    "G204": "`defer cancel()` removed",
    "G301": "`wg.Add(1)` moved into the goroutine",
    "G402": "a locking method's pointer receiver made a value",
    "G101": "the producer's `defer close(ch)` removed",
    "G304": "a goroutine's `defer wg.Done()` moved to its end, past a return",
}


def go_mod_for(path):
    d = os.path.dirname(path)
    while True:
        cand = os.path.join(d, "go.mod")
        if os.path.isfile(cand):
            return cand
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent


def findings(goguard, directory, rule):
    proc = subprocess.run(
        [goguard, "check", "--select", rule, "--format", "json", directory],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    try:
        report = json.loads(proc.stdout.decode("utf-8"))
    except ValueError:
        sys.exit("goguard failed on %s: %s" % (directory, proc.stderr.decode()[:500]))
    return [(os.path.basename(d["path"]), int(d["line"])) for d in report["diagnostics"]]


def copy_package(src_file, dest):
    """Copies the .go files of src_file's directory and its module's go.mod into dest."""
    src_dir = os.path.dirname(src_file)
    for name in os.listdir(src_dir):
        if name.endswith(".go"):
            shutil.copy(os.path.join(src_dir, name), dest)
    mod = go_mod_for(src_file)
    if mod:
        shutil.copy(mod, dest)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--goguard", default=None)
    ap.add_argument("--corpora", default=os.path.normpath(os.path.join(ROOT, "..", "shared", "corpora")))
    ap.add_argument("--per-kind", type=int, default=30, help="sites per kind (default 30)")
    ap.add_argument("--seed", type=int, default=1, help="random seed for picking sites")
    ap.add_argument("--misses", action="store_true", help="list the sites goguard missed")
    args = ap.parse_args()
    goguard = args.goguard
    if not goguard:
        for rel in ("target/release/goguard", "target/debug/goguard"):
            if os.path.isfile(os.path.join(ROOT, rel)):
                goguard = os.path.join(ROOT, rel)
                break
    if not goguard:
        sys.exit("no goguard binary: build it (cargo build --release -p goguard) or pass --goguard")

    sites = defaultdict(list)
    for path in go_files(args.corpora):
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().split("\n")
        if is_generated(lines):
            continue  # nobody edits a generated file by hand, and goguard does not report there
        for rule, seeder in SEEDERS.items():
            for edited, line in seeder(lines):
                sites[rule].append((path, edited, line))

    rng = random.Random(args.seed)
    print("goguard: %s" % os.path.relpath(goguard, ROOT))
    print()
    print("| rule | seeded bug | sites found | seeded | found | recall |")
    print("|---|---|---:|---:|---:|---:|")
    misses = []
    total_seeded = total_found = 0
    for rule in SEEDERS:
        chosen = sites[rule]
        rng.shuffle(chosen)
        chosen = chosen[: args.per_kind]
        found = 0
        for path, edited, line in chosen:
            with tempfile.TemporaryDirectory(prefix="goguard-seed-") as tmp:
                copy_package(path, tmp)
                name = os.path.basename(path)
                before = set(findings(goguard, tmp, rule))
                with open(os.path.join(tmp, name), "w", encoding="utf-8") as f:
                    f.write("\n".join(edited))
                after = set(findings(goguard, tmp, rule)) - before
            if any(f == name and abs(l - line) <= SLACK for f, l in after):
                found += 1
            else:
                misses.append((rule, os.path.relpath(path, args.corpora), line))
        total_seeded += len(chosen)
        total_found += found
        recall = "%d%%" % round(100.0 * found / len(chosen)) if chosen else "–"
        print("| %s | %s | %d | %d | %d | %s |" % (rule, WHAT[rule], len(sites[rule]), len(chosen), found, recall))
    print("| **total** | | | %d | %d | %d%% |" % (total_seeded, total_found,
                                              round(100.0 * total_found / max(total_seeded, 1))))
    if args.misses and misses:
        print()
        print("Missed (rule, file, line of the seeded bug in the edited file):")
        for rule, path, line in misses:
            print("  %s %s:%d" % (rule, path, line))


if __name__ == "__main__":
    main()
