#!/usr/bin/env python3
"""Benchmark: `uplift plan` on real templates against `git merge-tree --write-tree`.

The real upgrade: the customized app of `benches/corpus_compare.py` (rendered from the first
release of ../shared/corpus/, then customized), planned to the last release from a `git:` source
of the bundle. Beside it, `git merge-tree --write-tree` on the same three trees (base render, the
app, target render) committed into a scratch repository. The same again with the app grown to
20,000 files. Then `uplift releases` on the `git:` source, and `plan --stepwise` over every release
the corpus has against one plan.

Every measurement is a whole process; the commands alternate run by run (so load on a shared
machine hits all of them alike); the medians of wall time and of CPU time (user + system of the
child, from rusage) are printed with their ratios.

Run from the repository root after `cargo build --release`:
    python3 benches/plan_corpus.py [--uplift target/release/uplift] [--runs 15]
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from corpus_compare import BUNDLE, ROOT, VALUES, customize, render  # noqa: E402

LARGE_APP_FILES = 20_000


def timed(cmd, env, cwd=None):
    """(wall seconds, CPU seconds, completed process) of one whole process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc


def alternate(commands, runs, env):
    """Runs each named command `runs` times, alternating; returns name -> (wall, cpu) medians."""
    samples = {name: ([], []) for name, _, _ in commands}
    for _ in range(runs):
        for name, cmd, cwd in commands:
            wall, cpu, proc = timed(cmd, env, cwd)
            if proc.returncode not in (0, 1):
                sys.exit(f"{name} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}")
            samples[name][0].append(wall)
            samples[name][1].append(cpu)
    return {name: (statistics.median(w), statistics.median(c)) for name, (w, c) in samples.items()}


def git(repo, *args):
    subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", *args],
                   cwd=repo, check=True, stdout=subprocess.DEVNULL)


def commit_tree(repo, branch, tree_dir, start=None):
    """Commits the content of `tree_dir` as the whole tree of `branch`."""
    git(repo, "checkout", "-q", "-B", branch, *([start] if start else []))
    git(repo, "rm", "-rq", "--ignore-unmatch", ".")
    subprocess.run(["cp", "-a", f"{tree_dir}/.", repo], check=True)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", branch, "--allow-empty")


def merge_tree_repo(repo, base, app, theirs):
    os.makedirs(repo)
    git(repo, "init", "-q", "-b", "base")
    commit_tree(repo, "base", base)
    commit_tree(repo, "ours", app, "base")
    commit_tree(repo, "theirs", theirs, "base")
    return ["git", "merge-tree", "--write-tree", "ours", "theirs"]


def grow(app, total):
    """Adds the app's own files until it holds `total` files."""
    count = sum(len(names) for _, _, names in os.walk(app))
    for index in range(total - count):
        folder = os.path.join(app, "packages", "own", f"dir{index % 200}")
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"file{index}.ts"), "w") as f:
            f.write(f"export const own{index} = {index};\n")


def ms(seconds):
    return f"{seconds * 1000:9.1f} ms"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--uplift", default=os.path.join(ROOT, "target", "release", "uplift"))
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    if not os.path.exists(BUNDLE):
        sys.exit(f"no corpus bundle at {BUNDLE}")
    uplift = os.path.abspath(args.uplift)
    source = f"git:{BUNDLE}"
    work = tempfile.mkdtemp(prefix="uplift-plan-bench-")
    env = dict(os.environ, UPLIFT_CACHE_DIR=os.path.join(work, "cache"), NO_COLOR="1")
    env.pop("RUST_LOG", None)
    try:
        releases = subprocess.run([uplift, "releases", "--upstream", source, "--json"], env=env,
                                  capture_output=True, text=True, check=True)
        versions = [r["version"] for r in json.loads(releases.stdout)["releases"]]
        first, last = versions[0], versions[-1]
        base, theirs = os.path.join(work, "base"), os.path.join(work, "theirs")
        render(uplift, source, first, base, env)
        render(uplift, source, last, theirs, env)
        small, large = os.path.join(work, "app"), os.path.join(work, "app-large")
        shutil.copytree(base, small)
        customize(small)
        shutil.copytree(small, large)
        grow(large, LARGE_APP_FILES)
        sizes = {app: sum(len(n) for _, _, n in os.walk(app)) for app in (small, large)}

        def plan(app, *extra):
            return [uplift, "plan", "--upstream", source, *VALUES, "--app", app, "--to", last,
                    "--format", "json", *extra]

        git_small = merge_tree_repo(os.path.join(work, "git-small"), base, small, theirs)
        git_large = merge_tree_repo(os.path.join(work, "git-large"), base, large, theirs)
        commands = [
            ("plan", plan(small), None),
            ("merge-tree", git_small, os.path.join(work, "git-small")),
            ("plan, 20k", plan(large), None),
            ("merge-tree, 20k", git_large, os.path.join(work, "git-large")),
            ("releases", [uplift, "releases", "--upstream", source], None),
            ("plan --stepwise", plan(small, "--stepwise"), None),
        ]
        result = alternate(commands, args.runs, env)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"plan on real templates: {first} -> {last} ({len(versions)} releases), git: source of the "
          f"bundle; apps of {sizes[small]} and {sizes[large]} files; medians of {args.runs} "
          "alternating runs, whole processes\n")
    print(f"  {'':<18} {'wall':>12} {'cpu':>12}")
    for name, _, _ in commands:
        wall, cpu = result[name]
        print(f"  {name:<18} {ms(wall)} {ms(cpu)}")

    def ratio(a, b, aim):
        (wa, ca), (wb, cb) = result[a], result[b]
        print(f"  {a + ' / ' + b:<34} wall {wa / wb:6.2f}x   cpu {ca / cb:6.2f}x   (aim <= {aim})")

    print("\nratios")
    ratio("plan", "merge-tree", "1.5")
    ratio("plan, 20k", "merge-tree, 20k", "1.5")
    ratio("plan, 20k", "plan", "1.5")
    ratio("plan --stepwise", "plan", "3")
    wall, cpu = result["releases"]
    print(f"  {'releases (git: source)':<34} wall {wall * 1000:6.1f} ms cpu {cpu * 1000:6.1f} ms (aim <= 10 ms)")


if __name__ == "__main__":
    main()
