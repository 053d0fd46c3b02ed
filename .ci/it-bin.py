#!/usr/bin/env python3
"""Prints the path of a package's `it` test binary from `cargo test --no-run --message-format=json`
on stdin: `cargo test --workspace --all-targets --no-run --message-format=json | it-bin.py px-node`.

The IPFS matrix (Makefile, test-kubo/test-jsipfs) runs the binaries `cargo test --workspace` built:
`cargo test -p <package>` would resolve that package's own feature set and build the dependency
graph a second time.
"""
import json
import sys

package = sys.argv[1]
found = []
for line in sys.stdin:
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if msg.get("reason") != "compiler-artifact" or not msg.get("executable"):
        continue
    target = msg.get("target", {})
    manifest = msg.get("manifest_path", "")
    name = msg.get("package_id", "")
    # package_id is "path+file:///...#px-node@0.1.0" (or "px-node 0.1.0 (...)" on older cargo)
    if target.get("name") == "it" and "test" in target.get("kind", []) and (
        f"#{package}@" in name or name.startswith(f"{package} ")
    ):
        found.append((manifest, msg["executable"]))
if len(found) != 1:
    sys.exit(f"it-bin.py: expected one `it` test binary of {package}, found {len(found)}")
manifest, exe = found[0]
print(manifest.rsplit("/", 1)[0], exe)
