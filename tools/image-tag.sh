#!/bin/sh
# The tag for images built from this tree: the commit, marked -dirty when tracked files differ.
commit=$(git -C "$(dirname "$0")/.." rev-parse --short=12 HEAD 2>/dev/null) || { echo dev; exit 0; }
if [ -n "$(git -C "$(dirname "$0")/.." status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  echo "$commit-dirty"
else
  echo "$commit"
fi
