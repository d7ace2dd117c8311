#!/usr/bin/env bash
# Installs the uplift binary for the GitHub Action (action.yml), and is the one place that logic
# lives. Two subcommands:
#
#   install-uplift.sh resolve   which repository, ref and commit the action is, and which release
#                               tag (vX.Y.Z) sits on that commit; written as `key=value` lines to
#                               $GITHUB_OUTPUT (or stdout). The cache is keyed by the commit.
#   install-uplift.sh install   downloads the release asset for this machine, checks its SHA-256
#                               against the published `.sha256`, and unpacks `uplift` into
#                               $UPLIFT_INSTALL_DIR; builds from the action's source only when the
#                               release has no asset for this machine (or there is no release).
#
# Settings (environment):
#   UPLIFT_ACTION_PATH     the action's folder (default: $GITHUB_ACTION_PATH, else this repo)
#   UPLIFT_REPOSITORY      owner/name of the action (default: read from the action's path,
#                          `_actions/OWNER/NAME/REF`, since `github.action_repository` is empty
#                          inside composite actions; else $GITHUB_REPOSITORY)
#   UPLIFT_REF             the ref the workflow used (default: from the path, else git HEAD)
#   UPLIFT_TAG             the release tag to download (default: from `resolve`)
#   UPLIFT_INSTALL_DIR     where `uplift` goes (default: ~/.uplift-action/bin)
#   UPLIFT_DOWNLOAD_BASE   release download URL base (default:
#                          https://github.com/OWNER/NAME/releases/download)
#   UPLIFT_GIT_REMOTE      where `resolve` lists tags (default: https://github.com/OWNER/NAME)
#   UPLIFT_UNAME_S/_M      stand-ins for `uname -s` / `uname -m` (tests)
#   UPLIFT_BUILD_COMMAND   the source build (default: cargo install --locked --path ACTION
#                          --root INSTALL_DIR/..); run without any UPLIFT_SECRET_* variable
set -euo pipefail

die() {
  echo "install-uplift: error: $*" >&2
  exit 1
}

action_path=${UPLIFT_ACTION_PATH:-${GITHUB_ACTION_PATH:-$(cd "$(dirname "$0")/.." && pwd)}}
install_dir=${UPLIFT_INSTALL_DIR:-$HOME/.uplift-action/bin}

# The Rust target of this machine; anything else is a clear error, not a wrong binary.
target_triple() {
  local os arch
  os=${UPLIFT_UNAME_S:-$(uname -s)}
  arch=${UPLIFT_UNAME_M:-$(uname -m)}
  case "$os/$arch" in
    Linux/x86_64 | Linux/amd64) echo x86_64-unknown-linux-musl ;;
    Linux/aarch64 | Linux/arm64) echo aarch64-unknown-linux-musl ;;
    Darwin/arm64 | Darwin/aarch64) echo aarch64-apple-darwin ;;
    *) die "no uplift build for $os/$arch (released: Linux x86_64 and aarch64, macOS arm64); build it with: cargo install --locked --path $action_path" ;;
  esac
}

sha256_of() {
  if command -v sha256sum >/dev/null; then
    sha256sum "$1" | cut -d' ' -f1
  else
    shasum -a 256 "$1" | cut -d' ' -f1
  fi
}

# owner/name and ref from `…/_actions/OWNER/NAME/REF` (how the runner lays out actions).
from_action_path() {
  local path=$1 rest
  case "$path" in
    */_actions/*/*/*) ;;
    *) return 1 ;;
  esac
  rest=${path##*/_actions/}
  local owner=${rest%%/*}
  rest=${rest#*/}
  local name=${rest%%/*}
  local ref=${rest#*/}
  ref=${ref%%/*}
  [ -n "$owner" ] && [ -n "$name" ] && [ -n "$ref" ] || return 1
  echo "$owner/$name $ref"
}

resolve() {
  local repository=${UPLIFT_REPOSITORY:-} ref=${UPLIFT_REF:-} parsed commit="" tag=""
  if [ -z "$repository" ] || [ -z "$ref" ]; then
    if parsed=$(from_action_path "$action_path"); then
      repository=${repository:-${parsed%% *}}
      ref=${ref:-${parsed#* }}
    else
      # A local action (`uses: ./`): this repository at its checked-out commit.
      repository=${repository:-${GITHUB_REPOSITORY:-}}
      ref=${ref:-$(git -C "$action_path" rev-parse HEAD 2>/dev/null || true)}
    fi
  fi
  [ -n "$repository" ] || die "cannot tell which repository the action is; set UPLIFT_REPOSITORY"
  local remote=${UPLIFT_GIT_REMOTE:-https://github.com/$repository}
  # The commit the ref names now (a moving tag like v1 resolves to its current commit), and
  # the release tag vX.Y.Z on that commit, if any.
  local refs
  refs=$(git ls-remote "$remote" 2>/dev/null || true)
  if [[ $ref =~ ^[0-9a-f]{40}$ ]]; then
    commit=$ref
  else
    commit=$(awk -v r="$ref" '$2 == "refs/tags/" r "^{}" { print $1; exit }' <<<"$refs")
    [ -n "$commit" ] || commit=$(awk -v r="$ref" '$2 == "refs/tags/" r || $2 == "refs/heads/" r { print $1; exit }' <<<"$refs")
  fi
  if [ -n "$commit" ]; then
    tag=$(awk -v c="$commit" '$1 == c && $2 ~ /^refs\/tags\/v[0-9]+\.[0-9]+\.[0-9]+(\^\{\})?$/ { t = $2; sub(/^refs\/tags\//, "", t); sub(/\^\{\}$/, "", t); print t; exit }' <<<"$refs")
  else
    # No answer from the remote: key the cache by the action's content instead.
    commit=content-$(cd "$action_path" && find Cargo.lock Cargo.toml crates -type f -name '*' 2>/dev/null | LC_ALL=C sort | xargs cat | (sha256sum 2>/dev/null || shasum -a 256) | cut -c1-40)
  fi
  local out=${GITHUB_OUTPUT:-/dev/stdout}
  {
    echo "repository=$repository"
    echo "ref=$ref"
    echo "commit=$commit"
    echo "tag=$tag"
    echo "target=$(target_triple)"
  } >>"$out"
}

build_from_source() {
  echo "install-uplift: building uplift from the action's source (this takes minutes)" >&2
  # The workflow's secrets are for the pipeline, not for build scripts of dependencies.
  local name
  for name in $(compgen -e); do
    case "$name" in UPLIFT_SECRET_*) unset "$name" ;; esac
  done
  mkdir -p "$install_dir"
  if [ -n "${UPLIFT_BUILD_COMMAND:-}" ]; then
    bash -c "$UPLIFT_BUILD_COMMAND"
  else
    cargo install --locked --path "$action_path" --root "$(dirname "$install_dir")"
  fi
}

install() {
  local target tag repository base asset tmp code
  target=$(target_triple)
  tag=${UPLIFT_TAG:-}
  repository=${UPLIFT_REPOSITORY:-}
  if [ -z "$tag" ]; then
    build_from_source
    return
  fi
  # `version: 0.2.0` means the tag v0.2.0.
  case "$tag" in [0-9]*) tag=v$tag ;; esac
  [ -n "$repository" ] || [ -n "${UPLIFT_DOWNLOAD_BASE:-}" ] || die "UPLIFT_REPOSITORY or UPLIFT_DOWNLOAD_BASE is needed to download $tag"
  base=${UPLIFT_DOWNLOAD_BASE:-https://github.com/$repository/releases/download}
  asset="uplift-$target.tar.gz"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  code=$(curl -sSL --retry 3 -o "$tmp/$asset" -w '%{http_code}' "$base/$tag/$asset" || true)
  if [ "$code" = 404 ]; then
    echo "install-uplift: release $tag has no $asset" >&2
    build_from_source
    return
  fi
  [ "$code" = 200 ] || die "download of $base/$tag/$asset failed (HTTP $code)"
  code=$(curl -sSL --retry 3 -o "$tmp/$asset.sha256" -w '%{http_code}' "$base/$tag/$asset.sha256" || true)
  [ "$code" = 200 ] || die "release $tag has $asset but no $asset.sha256 (HTTP $code): refusing an unchecked binary"
  local expected actual
  expected=$(cut -d' ' -f1 <"$tmp/$asset.sha256" | tr -d '[:space:]')
  actual=$(sha256_of "$tmp/$asset")
  [ -n "$expected" ] && [ "$expected" = "$actual" ] ||
    die "checksum mismatch for $asset of $tag: expected ${expected:-nothing}, got $actual; not installed"
  mkdir -p "$install_dir"
  tar -xzf "$tmp/$asset" -C "$tmp" uplift || die "$asset holds no uplift binary"
  mv "$tmp/uplift" "$install_dir/uplift"
  chmod +x "$install_dir/uplift"
  echo "install-uplift: uplift $tag ($target) installed in $install_dir, SHA-256 $actual" >&2
}

case "${1:-}" in
  resolve) resolve ;;
  install) install ;;
  *) die "usage: install-uplift.sh resolve|install" ;;
esac
