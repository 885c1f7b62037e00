#!/bin/sh
# The tag for images built from this tree: the commit, and for a tree with changes -dirty plus a
# hash of those changes (so two checkouts of one commit with different edits never share a tag).
case ${1:-} in -h|--help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p;}' "$0"; exit 0 ;; esac  # the header above is the usage
root="$(dirname "$0")/.."
commit=$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null) || { echo dev; exit 0; }
if [ -n "$(git -C "$root" status --porcelain 2>/dev/null | grep -v '^?? build/')" ]; then
  changes=$( { git -C "$root" diff HEAD; git -C "$root" ls-files --others --exclude-standard -z | (cd "$root" && xargs -0 -r sha1sum); } | sha1sum | cut -c1-8)
  echo "$commit-dirty-$changes"
else
  echo "$commit"
fi
