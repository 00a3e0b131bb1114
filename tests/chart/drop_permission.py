"""A helm post-renderer that takes one verb away from the chart's ClusterRoles (for fault tests).

Usage: helm install ... --post-renderer python --post-renderer-args drop_permission.py
--post-renderer-args GROUP --post-renderer-args RESOURCE --post-renderer-args VERB
Reads the rendered manifests on stdin, writes them to stdout; fails if nothing was removed.
"""

from __future__ import annotations

import sys

import yaml


def main(group: str, resource: str, verb: str) -> int:
    documents = [d for d in yaml.safe_load_all(sys.stdin) if d]
    removed = 0
    for document in documents:
        for rule in document.get("rules", []) if document["kind"] == "ClusterRole" else []:
            if (
                group in rule["apiGroups"]
                and resource in rule["resources"]
                and verb in rule["verbs"]
            ):
                rule["verbs"] = [v for v in rule["verbs"] if v != verb]
                removed += 1
    if not removed:
        print(f"the chart grants no {verb} on {group}/{resource} to remove", file=sys.stderr)
        return 1
    sys.stdout.write(yaml.safe_dump_all(documents))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
