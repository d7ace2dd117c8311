#!/usr/bin/env python3
"""Replay a Backstage app's own upgrades with Uplift and with `git merge-file`.

For every commit of REPO that changed `backstage.json`'s version (the app's upgrades), the app
before the commit is merged with the template change between the two releases, by Uplift
(`uplift apply`) and by a per-file `git merge-file` baseline (upstream's file where the app kept
the old one, else a three-way merge). For each tool it counts:
- conflicts: files left conflicting (Uplift: its plan; git: a non-zero `git merge-file` exit,
  or a file one side deleted and the other changed);
- clean but wrong: files reported clean that fail Uplift's checks (valid JSON/YAML, and for
  TypeScript/JavaScript: parses, no name imported or plugin registered twice that neither side
  had twice, imports as the set merge gives; `crates/merge/examples/check_merged.rs`);
- differs: files upstream changed where the result is not what the maintainers committed,
  each with a reason.

Templates come from the `@backstage/create-app` bundle (`--bundle`, default the shared corpus,
releases 1.41.0 to 1.46.0): an app release maps to the newest template release of the same
minor version not above it; upgrades outside the bundle's range are listed as skipped.

Without REPO (`--synthetic`, what CI runs: no network) the script makes a repository from the
bundle itself: a customized app created from the first release, upgraded by its "maintainers"
to each later release by rendering it fresh and re-applying the customizations.

Run from the repository root, after `cargo build -p uplift` and
`cargo build -p uplift-merge --example check_merged`:
    python3 benches/replay.py PATH_TO_APP_REPO [--verbose]
    python3 benches/replay.py --synthetic
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNDLE = os.path.join(ROOT, "..", "shared", "corpus", "backstage-create-app-early.bundle")
LOCKFILES = {"yarn.lock", "package-lock.json", "pnpm-lock.yaml"}


def run(cmd, check=True, **kw):
    r = subprocess.run(cmd, capture_output=True, **kw)
    if check and r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr.decode(errors='replace')}")
    return r


def git(repo, *args, check=True):
    return run(["git", "-C", repo, *args], check=check)


def version_key(v):
    m = re.match(r"^v?(\d+)\.(\d+)\.(\d+)(-.*)?$", v.strip())
    if not m:
        return None
    major, minor, patch, pre = m.groups()
    return (int(major), int(minor), int(patch), 0 if pre else 1)


def files(root):
    out = {}
    for dirpath, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in names:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                out[os.path.relpath(path, root)] = ("link", os.readlink(path).encode())
                continue
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


def content(entry):
    return entry[1] if isinstance(entry, tuple) else entry


def export(repo, commit, out):
    os.makedirs(out)
    archive = git(repo, "archive", "--format=tar", commit).stdout
    run(["tar", "-x", "-C", out], input=archive)


def marker_version(repo, commit):
    r = git(repo, "show", f"{commit}:backstage.json", check=False)
    if r.returncode != 0:
        return None
    try:
        return json.loads(r.stdout).get("version")
    except (ValueError, AttributeError):
        return None


def upgrades(repo):
    """(commit before, commit after, old release, new release) per upgrade between two stable
    releases: apps often pass through pre-releases (`1.42.0-next.1`), so an upgrade spans from
    the parent of the first commit that left a stable release to the commit that reached the
    next one (the maintainers' adaptations on the way included)."""
    log = git(repo, "log", "--reverse", "--format=%H %P", "--", "backstage.json").stdout.decode()
    out, start = [], None
    for line in log.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue  # the commit that created the file
        commit, parent = parts[0], parts[1]
        old, new = marker_version(repo, parent), marker_version(repo, commit)
        if not old or not new or old == new:
            continue
        if start is None and is_stable(old):
            start = (parent, old)
        if start is not None and is_stable(new):
            out.append((start[0], commit, start[1], new))
            start = None
    return out


def is_stable(version):
    key = version_key(version)
    return key is not None and key[3] == 1


def template_release(version, releases):
    """The newest bundle release of the same minor not above `version`."""
    key = version_key(version)
    if key is None or key[3] == 0:
        return None  # pre-releases have no create-app template in the bundle
    same_minor = [r for r in releases if version_key(r)[:2] == key[:2]]
    below = [r for r in same_minor if version_key(r) <= key]
    return max(below, key=version_key) if below else None


def git_merge_file(app_dir, base, theirs, work):
    """Per file: upstream's where the app kept the old one, else `git merge-file`.
    Returns {path: "clean" | "conflict"} for the files both sides changed."""
    outcome = {}
    for rel in sorted(set(base) | set(theirs)):
        b, t = base.get(rel), theirs.get(rel)
        if b == t:
            continue
        path = os.path.join(app_dir, rel)
        o = open(path, "rb").read() if os.path.isfile(path) else None
        if o == content(b) if b is not None else o is None:
            if t is None:
                if os.path.exists(path):
                    os.remove(path)
            else:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                open(path, "wb").write(content(t))
            continue
        if t is not None and o == content(t):
            continue
        if o is None or t is None:
            outcome[rel] = "conflict"
            continue
        bf, tf = os.path.join(work, "merge-base"), os.path.join(work, "merge-theirs")
        open(bf, "wb").write(content(b) if b is not None else b"")
        open(tf, "wb").write(content(t))
        r = run(["git", "merge-file", path, bf, tf], check=False)
        outcome[rel] = "clean" if r.returncode == 0 else "conflict"
    return outcome


def check_files(checker, work, paths, base, ours, result):
    """Uplift's checks over each merged file: {path: reason} for those that fail."""
    if not paths:
        return {}
    root = tempfile.mkdtemp(dir=work, prefix="check-")
    for side, tree in (("base", base[0]), ("theirs", base[1]), ("ours", ours), ("merged", result)):
        for rel in paths:
            data = tree.get(rel)
            if data is None:
                continue
            path = os.path.join(root, side, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            open(path, "wb").write(content(data))
    r = run([checker, root], input="\n".join(paths).encode())
    failed = {}
    for line in r.stdout.decode().splitlines():
        path, _, reason = line.partition("\t")
        if reason != "ok":
            failed[path] = reason
    return failed


def json_differences(result, committed):
    """Dotted paths of the leaves where two JSON documents differ (None if one does not parse)."""
    try:
        a, b = json.loads(result), json.loads(committed)
    except (ValueError, TypeError):
        return None
    out = []

    def walk(x, y, path):
        if isinstance(x, dict) and isinstance(y, dict):
            for key in set(x) | set(y):
                walk(x.get(key), y.get(key), path + [key])
        elif x != y:
            out.append(path)

    walk(a, b, [])
    return out


def difference_reason(rel, result, committed, before, theirs):
    if os.path.basename(rel) == "backstage.json":
        return "the release: the bundle has no template for the app's patch release"
    if committed is not None and result is not None and rel.endswith(".json"):
        paths = json_differences(content(result), content(committed))
        template = {}
        try:
            template = json.loads(content(theirs.get(rel, b"{}")))
        except ValueError:
            pass
        pins = ("dependencies", "devDependencies", "peerDependencies", "resolutions")
        if paths and all(len(p) == 2 and p[0] in pins for p in paths):
            listed = [p for p in paths if p[1] in template.get(p[0], {})]
            if not listed:
                return "dependency versions the template does not set (the maintainers' own bumps, e.g. Renovate)"
            return f"dependency versions: {len(listed)} the template sets, bumped further by the maintainers; {len(paths) - len(listed)} it does not set"
        if paths:
            shown = sorted(".".join(p) for p in paths if not (len(p) == 2 and p[0] in pins))
            return f"the maintainers' own values for {', '.join(shown[:3])}" + (
                f" (and {len(paths) - 3} more)" if len(paths) > 3 else "") + " (and dependency pins)" * any(
                len(p) == 2 and p[0] in pins for p in paths)
    if committed is not None and result is not None:
        squeeze = lambda b: [l for l in content(b).splitlines() if l.strip()]
        if squeeze(result) == squeeze(committed):
            return "layout only (blank lines)"
    if committed == before.get(rel):
        return "the maintainers kept the app's file (upstream's change not taken in this commit)"
    if committed == theirs.get(rel):
        return "the maintainers took upstream's file as it is"
    if committed is None:
        return "the maintainers deleted the file"
    return "the maintainers edited the file their own way"


def replay(args, repo, work, releases, source, env):
    rows, skipped, details = [], [], []
    values = ["--template", args.template, "--set", f"name={args.name}",
              "--set", f"defaultBranch={args.default_branch}"]
    renders = {}

    def render(release):
        if release not in renders:
            out = os.path.join(work, "render", release)
            run([args.uplift, "render", "--upstream", source, *values, "--release", release,
                 "--out", out, "-q"], env=env)
            renders[release] = files(out)
        return renders[release]

    for parent, commit, old, new in upgrades(repo):
        base_release, target_release = template_release(old, releases), template_release(new, releases)
        label = f"{old} → {new} ({commit[:7]})"
        if base_release is None or target_release is None:
            skipped.append(f"{label}: outside the bundle's releases")
            continue
        if version_key(base_release) >= version_key(target_release):
            skipped.append(f"{label}: same template ({base_release})")
            continue
        base, theirs = render(base_release), render(target_release)
        step = os.path.join(work, commit[:12])
        app = os.path.join(step, "app")
        export(repo, parent, app)
        before = files(app)
        committed_dir = os.path.join(step, "committed")
        export(repo, commit, committed_dir)
        committed = files(committed_dir)
        changed = sorted(rel for rel in set(base) | set(theirs) if base.get(rel) != theirs.get(rel))

        # Uplift
        uplift_dir = os.path.join(step, "uplift")
        shutil.copytree(app, uplift_dir, symlinks=True)
        r = run([args.uplift, "apply", "--upstream", source, *values, "--app", uplift_dir,
                 "--from", base_release, "--to", target_release, "--allow-conflicts", "--allow-dirty",
                 "--format", "json", "-q"], env=env)
        plan = json.loads(r.stdout)
        uplift_result = files(uplift_dir)
        uplift_conflicts = {f["path"] for f in plan["files"] if f["action"] == "conflict"}
        uplift_merged = [f["path"] for f in plan["files"] if f["action"] == "merge"]

        # git merge-file
        git_dir = os.path.join(step, "git")
        shutil.copytree(app, git_dir, symlinks=True)
        git_outcome = git_merge_file(git_dir, base, theirs, step)
        git_result = files(git_dir)
        git_conflicts = {p for p, o in git_outcome.items() if o == "conflict"}
        git_merged = [p for p, o in git_outcome.items() if o == "clean"]

        wrong_uplift = check_files(args.checker, step, uplift_merged, (base, theirs), before, uplift_result)
        wrong_git = check_files(args.checker, step, git_merged, (base, theirs), before, git_result)

        def differs(result, conflicts):
            out = {}
            for rel in changed:
                if os.path.basename(rel) in LOCKFILES:
                    continue
                if result.get(rel) != committed.get(rel) and rel not in conflicts:
                    out[rel] = difference_reason(rel, result.get(rel), committed.get(rel), before, theirs)
            return out

        diff_uplift, diff_git = differs(uplift_result, uplift_conflicts), differs(git_result, git_conflicts)
        rows.append((label, base_release, target_release, len(uplift_conflicts), len(git_conflicts),
                     len(wrong_uplift), len(wrong_git), len(diff_uplift), len(diff_git)))
        details.append((label, uplift_conflicts, git_conflicts, wrong_uplift, wrong_git, diff_uplift, diff_git,
                        {f["path"]: f.get("reason") for f in plan["files"]}))
    return rows, skipped, details


def synthetic_repo(args, work, releases, source, env):
    """A git repository of a customized app upgraded release by release by its maintainers."""
    repo = os.path.join(work, "synthetic")
    os.makedirs(repo)
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "replay@example.invalid")
    git(repo, "config", "user.name", "replay")
    values = ["--template", args.template, "--set", f"name={args.name}",
              "--set", f"defaultBranch={args.default_branch}"]
    customizations = [
        ("app-config.yaml", "title: Scaffolded Backstage App", "title: Acme Developer Portal"),
        ("packages/backend/src/index.ts", "backend.add(import('@backstage/plugin-proxy-backend'));\n",
         "backend.add(import('@backstage/plugin-proxy-backend'));\nbackend.add(import('@acme/plugin-insights-backend'));\n"),
        ("packages/app/src/App.tsx", "import { apis } from './apis';\n",
         "import { apis } from './apis';\nimport { AcmeInsightsPage } from '@acme/plugin-insights';\n"),
    ]
    for release in releases:
        out = os.path.join(work, "synthetic-render")
        shutil.rmtree(out, ignore_errors=True)
        run([args.uplift, "render", "--upstream", source, *values, "--release", release, "--out", out, "-q"], env=env)
        for entry in os.listdir(repo):
            if entry != ".git":
                path = os.path.join(repo, entry)
                shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.remove(path)
        shutil.copytree(out, repo, dirs_exist_ok=True, symlinks=True)
        for rel, old, new in customizations:
            path = os.path.join(repo, rel)
            text = open(path).read()
            if old in text:
                open(path, "w").write(text.replace(old, new, 1))
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"upgrade to {release}")
    return repo


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repo", nargs="?", help="a git repository of a Backstage app")
    parser.add_argument("--synthetic", action="store_true", help="replay a repository made from the bundle")
    parser.add_argument("--bundle", default=BUNDLE)
    parser.add_argument("--uplift", default=os.path.join(ROOT, "target", "debug", "uplift"))
    parser.add_argument("--checker", default=os.path.join(ROOT, "target", "debug", "examples", "check_merged"))
    parser.add_argument("--template", default="default-app")
    parser.add_argument("--name", default="backstage", help="the template's {{name}} value")
    parser.add_argument("--default-branch", default="master")
    parser.add_argument("--verbose", action="store_true", help="list every file counted")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (printed) to inspect results")
    args = parser.parse_args()
    if not args.repo and not args.synthetic:
        parser.error("give a repository, or --synthetic")
    for tool in (args.uplift, args.checker):
        if not os.path.exists(tool):
            sys.exit(f"{tool} is missing: cargo build -p uplift && cargo build -p uplift-merge --example check_merged")
    source = f"git:{os.path.abspath(args.bundle)}"
    work = tempfile.mkdtemp(prefix="uplift-replay-")
    env = dict(os.environ, UPLIFT_CACHE_DIR=os.path.join(work, "cache"), NO_COLOR="1")
    r = run([args.uplift, "releases", "--upstream", source, "--json"], env=env)
    releases = [rel["version"] for rel in json.loads(r.stdout)["releases"]]
    repo = synthetic_repo(args, work, releases, source, env) if args.synthetic else os.path.abspath(args.repo)
    rows, skipped, details = replay(args, repo, work, releases, source, env)
    print(f"Replayed {len(rows)} upgrade(s) of {args.repo or 'the synthetic app'} (templates {releases[0]}–{releases[-1]}).\n")
    print("| upgrade | templates | conflicts: Uplift | conflicts: git merge-file | clean but wrong: Uplift "
          "| clean but wrong: git | differs from the maintainers: Uplift | differs: git |")
    print("|---|---|---|---|---|---|---|---|")
    for label, b, t, *counts in rows:
        print(f"| {label} | {b} → {t} | " + " | ".join(str(c) for c in counts) + " |")
    totals = [sum(row[i] for row in rows) for i in range(3, 9)]
    print("| **total** | | " + " | ".join(f"**{c}**" for c in totals) + " |")
    if skipped:
        print("\nNot replayed:")
        for line in skipped:
            print(f"- {line}")
    if args.verbose:
        for label, uc, gc, wu, wg, du, dg, reasons in details:
            print(f"\n{label}")
            for path in sorted(uc):
                print(f"  conflict (Uplift): {path}: {reasons.get(path)}")
            for path in sorted(gc):
                print(f"  conflict (git): {path}")
            for path, reason in sorted(wu.items()):
                print(f"  clean but wrong (Uplift): {path}: {reason}")
            for path, reason in sorted(wg.items()):
                print(f"  clean but wrong (git): {path}: {reason}")
            for path, reason in sorted(du.items()):
                print(f"  differs (Uplift): {path}: {reason}")
            for path, reason in sorted(dg.items()):
                print(f"  differs (git): {path}: {reason}")
    if args.keep:
        print(f"\nwork folder kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    failed = args.synthetic and (totals[0] or totals[2] or totals[4])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
