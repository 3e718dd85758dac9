#!/usr/bin/env python3
"""Precision of `goguard check` on real code, against the verdicts in triage.tsv.

Runs `goguard check --format json` on each code base of the corpora (etcd, grpc-go,
prometheus, syncthing) and on Go's own source (GOROOT/src, verdicts in goroot-triage.tsv), matches every finding to a verdict row of triage.tsv on
(repo, file, rule, line) -- a row whose line is off by up to 3 still matches a finding of the
same rule in the same file when both are otherwise unmatched -- and prints a markdown table
per rule, the totals at default severity and at `error`, and false findings per 20,000 lines
of Go.

  python3 bench/realcode/precision.py                       # from the project root
  python3 bench/realcode/precision.py --goguard target/debug/goguard --corpora ../shared/corpora
  python3 bench/realcode/precision.py --check               # exit 1 if a TRUE finding was lost

Standard library only.
"""

import argparse
import csv
import json
import os
import subprocess
import sys
from collections import Counter, defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
REPOS = ["etcd", "grpc-go", "prometheus", "syncthing"]
TRIAGE = os.path.join(HERE, "triage.tsv")
GOROOT_TRIAGE = os.path.join(HERE, "goroot-triage.tsv")
LINE_SLACK = 3
VERDICTS = ("TRUE", "FALSE", "DEBATABLE")


def default_goguard():
    for rel in ("target/release/goguard", "target/debug/goguard"):
        path = os.path.join(ROOT, rel)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return os.path.join(ROOT, "target/release/goguard")


def run_goguard(goguard, repo_dir, json_dir, repo):
    """The parsed JSON report for one code base (read from --json-dir when given)."""
    if json_dir:
        with open(os.path.join(json_dir, repo + ".json"), encoding="utf-8") as f:
            return json.load(f)
    proc = subprocess.run(
        [goguard, "check", "--format", "json", repo_dir],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        check=False,
    )
    # exit 1 means "findings", 0 none; 2 is a usage/input error but may still carry a report
    try:
        return json.loads(proc.stdout.decode("utf-8"))
    except ValueError:
        sys.exit(
            "goguard failed on %s (exit %d): %s"
            % (repo_dir, proc.returncode, proc.stderr.decode("utf-8", "replace")[:2000])
        )


def rel_path(path, repo_dir):
    return os.path.relpath(os.path.abspath(path), os.path.abspath(repo_dir)).replace(os.sep, "/")


def load_triage(path):
    rows = []
    with open(path, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            row["line"] = int(row["line"])
            if row["verdict"] not in VERDICTS:
                sys.exit("%s: unknown verdict %r in %r" % (path, row["verdict"], row))
            rows.append(row)
    return rows


def count_go_lines(dirs):
    total = 0
    for top in dirs:
        for dirpath, _dirs, files in os.walk(top):
            for name in files:
                if name.endswith(".go"):
                    with open(os.path.join(dirpath, name), "rb") as f:
                        total += sum(1 for _ in f)
    return total


def match(findings, rows):
    """Pairs each finding with at most one verdict row, and each row with at most one finding.

    Exact (repo, file, rule, line) first; then, among what is left, the nearest row within
    LINE_SLACK lines for the same (repo, file, rule)."""
    by_exact = defaultdict(list)
    for i, r in enumerate(rows):
        by_exact[(r["repo"], r["file"], r["rule"], r["line"])].append(i)
    used = set()
    verdict_of = [None] * len(findings)
    pending = []
    for j, f in enumerate(findings):
        cands = [i for i in by_exact.get((f["repo"], f["file"], f["rule"], f["line"]), []) if i not in used]
        if cands:
            used.add(cands[0])
            verdict_of[j] = cands[0]
        else:
            pending.append(j)
    by_file = defaultdict(list)
    for i, r in enumerate(rows):
        by_file[(r["repo"], r["file"], r["rule"])].append(i)
    for j in pending:
        f = findings[j]
        cands = [
            (abs(rows[i]["line"] - f["line"]), i)
            for i in by_file.get((f["repo"], f["file"], f["rule"]), [])
            if i not in used and abs(rows[i]["line"] - f["line"]) <= LINE_SLACK
        ]
        if cands:
            i = min(cands)[1]
            used.add(i)
            verdict_of[j] = i
    return verdict_of, used


def precision(t, fl):
    return "%.0f%%" % (100.0 * t / (t + fl)) if t + fl else "–"


def table(findings, verdict_of, rows, keep):
    stats = defaultdict(Counter)
    for j, f in enumerate(findings):
        if not keep(f):
            continue
        s = stats[f["rule"]]
        s["findings"] += 1
        if verdict_of[j] is None:
            s["unjudged"] += 1
        else:
            s["judged"] += 1
            s[rows[verdict_of[j]]["verdict"]] += 1
    return stats


def print_table(title, stats, with_rules=True):
    print("### " + title)
    print()
    print("| rule | findings | judged | TRUE | FALSE | DEBATABLE | unjudged | precision |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    total = Counter()
    for rule in sorted(stats):
        s = stats[rule]
        total.update(s)
        if with_rules:
            print(
                "| %s | %d | %d | %d | %d | %d | %d | %s |"
                % (rule, s["findings"], s["judged"], s["TRUE"], s["FALSE"], s["DEBATABLE"],
                   s["unjudged"], precision(s["TRUE"], s["FALSE"]))
            )
    print(
        "| **total** | %d | %d | %d | %d | %d | %d | %s |"
        % (total["findings"], total["judged"], total["TRUE"], total["FALSE"], total["DEBATABLE"],
           total["unjudged"], precision(total["TRUE"], total["FALSE"]))
    )
    print()
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--goguard", default=None,
                    help="goguard binary (default: target/release/goguard, else target/debug/goguard)")
    ap.add_argument("--corpora", default=os.path.normpath(os.path.join(ROOT, "..", "shared", "corpora")),
                    help="folder holding etcd/ grpc-go/ prometheus/ syncthing/ (default ../shared/corpora)")
    ap.add_argument("--triage", default=TRIAGE, help="verdicts (default bench/realcode/triage.tsv)")
    ap.add_argument("--json-dir", default=None,
                    help="read NAME.json reports saved from `goguard check --format json` instead of running goguard")
    ap.add_argument("--goroot", default=None,
                    help="Go source tree judged in goroot-triage.tsv (default: `go env GOROOT`/src)")
    ap.add_argument("--no-goroot", action="store_true", help="only the corpora")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 when a finding judged TRUE is no longer reported")
    args = ap.parse_args()

    goguard = args.goguard or default_goguard()
    if not args.json_dir and not os.path.isfile(goguard):
        sys.exit("no goguard binary at %s: build it (cargo build --release -p goguard) or pass --goguard" % goguard)

    corpora = [(repo, os.path.join(args.corpora, repo)) for repo in REPOS]
    for _, repo_dir in corpora:
        if not os.path.isdir(repo_dir):
            sys.exit("no code base at %s (pass --corpora)" % repo_dir)
    sets = [("the corpora (%s)" % ", ".join(REPOS), corpora, args.triage)]
    goroot = args.goroot or go_root()
    if goroot and not args.no_goroot:
        sets.append(("Go's own source (GOROOT/src)",
                     [("goroot", goroot)], GOROOT_TRIAGE))

    lost_any = []
    for title, repos, triage in sets:
        findings = collect(goguard, repos, args.json_dir)
        rows = load_triage(triage)
        verdict_of, used = match(findings, rows)
        lost = [r for i, r in enumerate(rows) if i not in used and r["verdict"] == "TRUE"]
        lost_any += lost
        if args.check:
            print("%s: %d findings judged TRUE, %d lost" % (title, sum(r["verdict"] == "TRUE" for r in rows), len(lost)))
            continue
        print("## %s" % title)
        print()
        print("goguard: %s" % os.path.relpath(goguard) if not args.json_dir else "reports: %s" % args.json_dir)
        print()
        total = print_table("Default severity, per rule", table(findings, verdict_of, rows, lambda f: True))
        print_table("Severity `error` only", table(findings, verdict_of, rows, lambda f: f["severity"] == "error"))
        lines = count_go_lines([d for _, d in repos])
        print("Go lines: %d. FALSE findings per 20,000 lines: %.2f (default severity)."
              % (lines, total["FALSE"] * 20000.0 / lines if lines else 0.0))
        gone = [r for i, r in enumerate(rows) if i not in used]
        gone_by = Counter(r["verdict"] for r in gone)
        print()
        print("Verdict rows no longer matched by a finding: %d (TRUE %d, FALSE %d, DEBATABLE %d)."
              % (len(gone), gone_by["TRUE"], gone_by["FALSE"], gone_by["DEBATABLE"]))
        if lost:
            print("Lost TRUE findings: " + ", ".join("%s/%s:%d %s" % (r["repo"], r["file"], r["line"], r["rule"]) for r in lost))
        print()
    if args.check:
        if lost_any:
            print("lost TRUE findings (judged TRUE, no longer reported):")
            for r in lost_any:
                print("  %s/%s:%d %s  %s" % (r["repo"], r["file"], r["line"], r["rule"], r["reason"]))
            sys.exit(1)
        print("ok: every finding judged TRUE is still reported")


def go_root():
    """GOROOT/src of the `go` on PATH, or None."""
    try:
        out = subprocess.run(["go", "env", "GOROOT"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=False)
    except OSError:
        return None
    root = out.stdout.decode().strip()
    src = os.path.join(root, "src")
    return src if root and os.path.isdir(src) else None


def collect(goguard, repos, json_dir):
    """Every default-severity finding of goguard on the (name, dir) code bases."""
    findings = []
    for repo, repo_dir in repos:
        report = run_goguard(goguard, repo_dir, json_dir, repo)
        for d in report["diagnostics"]:
            findings.append({
                "repo": repo,
                "file": rel_path(d["path"], repo_dir),
                "line": int(d["line"]),
                "rule": d["rule"],
                "severity": d["severity"],
            })
    findings.sort(key=lambda f: (f["repo"], f["file"], f["line"], f["rule"]))
    return findings


if __name__ == "__main__":
    main()
