#!/usr/bin/env python3
"""Uplift against `git merge-file` on real Backstage templates.

Creates a customized app from the first release in ../shared/corpus/ (renamed title and
organisation, added dependencies, an extra backend module, a Dockerfile line, a new plugin
folder), upgrades it to every later release with Uplift and with a per-file `git merge-file`
baseline, and prints for each: conflicting files under each tool, customizations lost (must be
0), and upstream changes missed in files the app did not touch (must be 0).

Run from the repository root after `cargo build --release`:
    python3 benches/corpus_compare.py [--uplift target/release/uplift]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNDLE = os.path.join(ROOT, "..", "shared", "corpus", "backstage-create-app-early.bundle")
VALUES = ["--template", "default-app", "--set", "name=acme", "--set", "defaultBranch=main"]

# (file, old text, new text): each customization, and a string proving it survived.
CUSTOMIZATIONS = [
    ("app-config.yaml", "title: Scaffolded Backstage App", "title: Acme Developer Portal", "title: Acme Developer Portal"),
    ("app-config.yaml", "name: My Company", "name: Acme Corp", "name: Acme Corp"),
    ("package.json", '"@backstage/e2e-test-utils"', '"@acme/eslint-config": "^2.1.0",\n    "@backstage/e2e-test-utils"', '"@acme/eslint-config": "^2.1.0"'),
    ("packages/backend/package.json", '"@backstage/plugin-catalog-backend": ', '"@backstage/plugin-catalog-backend-module-github": "^0.7.0",\n    "@backstage/plugin-catalog-backend": ', '"@backstage/plugin-catalog-backend-module-github"'),
    ("packages/backend/src/index.ts", "backend.add(import('@backstage/plugin-catalog-backend'));\n", "backend.add(import('@backstage/plugin-catalog-backend'));\nbackend.add(import('@backstage/plugin-catalog-backend-module-github'));\n", "import('@backstage/plugin-catalog-backend-module-github')"),
    ("packages/backend/Dockerfile", "WORKDIR /app\n", "WORKDIR /app\nENV TZ=UTC\n", "ENV TZ=UTC"),
]
NEW_FILES = {
    "plugins/acme-insights/package.json": '{\n  "name": "@acme/plugin-insights",\n  "version": "0.1.0"\n}\n',
    "plugins/acme-insights/src/index.ts": "export const insightsPlugin = {};\n",
}


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def render(uplift, source, release, out, env):
    r = run([uplift, "render", "--upstream", source, *VALUES, "--release", release, "--out", out, "-q"], env=env)
    if r.returncode != 0:
        sys.exit(f"render {release} failed: {r.stderr}")


def files(root):
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            with open(path, "rb") as f:
                out[rel] = f.read()
    return out


def customize(app):
    for rel, old, new, _ in CUSTOMIZATIONS:
        path = os.path.join(app, rel)
        text = open(path).read()
        if old not in text:
            sys.exit(f"customization anchor missing in {rel}: {old!r}")
        open(path, "w").write(text.replace(old, new, 1))
    for rel, text in NEW_FILES.items():
        os.makedirs(os.path.dirname(os.path.join(app, rel)), exist_ok=True)
        open(os.path.join(app, rel), "w").write(text)


def lost(result_dir):
    count = 0
    for rel, _, _, proof in CUSTOMIZATIONS:
        path = os.path.join(result_dir, rel)
        if not os.path.exists(path) or proof not in open(path, errors="replace").read():
            count += 1
    for rel, text in NEW_FILES.items():
        path = os.path.join(result_dir, rel)
        if not os.path.exists(path) or open(path).read() != text:
            count += 1
    return count


def missed(result_dir, app_before, base, theirs):
    """Files the app did not touch must equal the fresh render of the target."""
    result = files(result_dir)
    count = 0
    for rel in set(base) | set(theirs):
        if app_before.get(rel) != base.get(rel):
            continue  # the app touched it
        if result.get(rel) != theirs.get(rel):
            count += 1
    return count


def git_merge_file_baseline(app_dir, base, theirs, work):
    """Per file: take upstream where the app did not change it, else `git merge-file`."""
    conflicts = 0
    for rel in sorted(set(base) | set(theirs)):
        b, t = base.get(rel), theirs.get(rel)
        if b == t:
            continue
        path = os.path.join(app_dir, rel)
        o = open(path, "rb").read() if os.path.exists(path) else None
        if o == b:
            if t is None:
                os.remove(path)
            else:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                open(path, "wb").write(t)
            continue
        if o == t:
            continue
        if o is None or t is None:
            conflicts += 1  # modify/delete
            continue
        bf, tf = os.path.join(work, "base"), os.path.join(work, "theirs")
        open(bf, "wb").write(b or b"")
        open(tf, "wb").write(t)
        r = subprocess.run(["git", "merge-file", path, bf, tf], capture_output=True)
        if r.returncode != 0:
            conflicts += 1
    return conflicts


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--uplift", default=os.path.join(ROOT, "target", "release", "uplift"))
    args = parser.parse_args()
    if not os.path.exists(BUNDLE):
        sys.exit(f"no corpus bundle at {BUNDLE}")
    source = f"git:{BUNDLE}"
    work = tempfile.mkdtemp(prefix="uplift-corpus-")
    env = dict(os.environ, UPLIFT_CACHE_DIR=os.path.join(work, "cache"), NO_COLOR="1")
    releases = run([args.uplift, "releases", "--upstream", source, "--json"], env=env)
    versions = [r["version"] for r in json.loads(releases.stdout)["releases"]]
    first, later = versions[0], versions[1:]
    renders = {}
    for version in versions:
        out = os.path.join(work, "render", version)
        render(args.uplift, source, version, out, env)
        renders[version] = files(out)
    app = os.path.join(work, "app")
    shutil.copytree(os.path.join(work, "render", first), app)
    customize(app)
    app_before = files(app)
    print(f"Customized app from {first}; upgraded to each later release.\n")
    print("| to | conflicting files: Uplift | conflicting files: git merge-file | customizations lost: Uplift | lost: git | upstream changes missed: Uplift | missed: git |")
    print("|---|---|---|---|---|---|---|")
    for target in later:
        uplift_dir = os.path.join(work, f"uplift-{target}")
        shutil.copytree(app, uplift_dir)
        r = run([args.uplift, "apply", "--upstream", source, *VALUES, "--app", uplift_dir, "--to", target,
                 "--allow-conflicts", "--format", "json", "-q"], env=env)
        if r.returncode != 0:
            sys.exit(f"uplift apply {target} failed: {r.stderr}")
        plan = json.loads(r.stdout)
        git_dir = os.path.join(work, f"git-{target}")
        shutil.copytree(app, git_dir)
        git_conflicts = git_merge_file_baseline(git_dir, renders[first], renders[target], work)
        base, theirs = renders[first], renders[target]
        print(f"| {target} | {plan['summary']['conflict']} | {git_conflicts} | {lost(uplift_dir)} | {lost(git_dir)} "
              f"| {missed(uplift_dir, app_before, base, theirs)} | {missed(git_dir, app_before, base, theirs)} |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
