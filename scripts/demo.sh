#!/usr/bin/env bash
# Mounts a demo brick with some content, makes a few changes through the
# mount and shows what replfs recorded. Leaves the mount up for you to try.
set -euo pipefail
bin=$(realpath "$1"); demo=$2
mkdir -p "$demo/brick" "$demo/mnt" "$demo/mirror"
if grep -q " $demo/mnt " /proc/self/mountinfo; then
	echo "demo already mounted at $demo/mnt (make demo-stop to unmount)"; exit 0
fi
[ -e "$demo/brick/README.txt" ] || echo "this file existed before the first mount" > "$demo/brick/README.txt"
"$bin" mount "$demo/brick" "$demo/mnt" -o rollover=500ms,mirror="$(realpath "$demo/mirror")"
echo "mounted $demo/brick at $demo/mnt, replicating to $demo/mirror"
cd "$demo/mnt"
rm -rf projects && mkdir -p projects/demo
echo "hello from replfs" > projects/demo/hello.txt
ln projects/demo/hello.txt projects/demo/hello-link.txt
mv projects/demo projects/renamed
chmod 600 projects/renamed/hello.txt
cd - >/dev/null
sleep 1
echo; echo "== journal (replfs journal dump $demo/brick) =="
"$bin" journal dump "$demo/brick" | tail -n 20
echo; echo "== replfs inspect $demo/mnt/projects/renamed/hello.txt =="
"$bin" inspect "$demo/mnt/projects/renamed/hello.txt"
"$bin" checkpoint "$demo/mnt"
"$bin" status "$demo/mnt" --wait-checkpoint --timeout 30s
echo; echo "== the mirror ($demo/mirror) =="
(cd "$demo/mirror" && find . -path ./.replfs -prune -o -print | sort)
echo; echo "The mount stays up: work in $demo/mnt, then: make demo-stop"
