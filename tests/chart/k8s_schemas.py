#!/usr/bin/env python3
"""Unpacks Kubernetes JSON schemas for kubeconform from the PyPI wheel of
`kubernetes-validate`, which ships them for every Kubernetes minor version.

    k8s_schemas.py WHEEL OUT_DIR VERSION...      (VERSION like 1.30.0)

The wheel's "vX.Y.Z-local-strict" schemas refer to a shared
"_definitions.json" through an absolute `$id` base (https://kubernetes.io/api/)
that kubeconform would try to fetch. This drops each `$id` and makes those
references relative, so they resolve to the file beside the schema, offline:

    OUT_DIR/vX.Y.Z-local-strict/<kind>-<group>-<version>.json
    OUT_DIR/vX.Y.Z-local-strict/_definitions.json

kubeconform then reads them with
    -schema-location 'OUT_DIR/{{ .NormalizedKubernetesVersion }}-local{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json'
"""

import json
import os
import sys
import zipfile

PREFIX = "kubernetes_validate/kubernetes-json-schema/"
ABSOLUTE_DEFS = "/api/_definitions.json"


def relativize(node):
    if isinstance(node, dict):
        node.pop("$id", None)
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(ABSOLUTE_DEFS):
            node["$ref"] = ref[len("/api/"):]
        for value in node.values():
            relativize(value)
    elif isinstance(node, list):
        for value in node:
            relativize(value)


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    wheel, out_dir, versions = sys.argv[1], sys.argv[2], sys.argv[3:]
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        for version in versions:
            folder = f"{PREFIX}v{version}-local-strict/"
            members = [n for n in names if n.startswith(folder) and n.endswith(".json")]
            if not members:
                available = sorted({n[len(PREFIX):].split("/")[0] for n in names if n.startswith(PREFIX)})
                sys.exit(f"no schemas for Kubernetes {version} in {wheel}; it has: {' '.join(available)}")
            target = os.path.join(out_dir, f"v{version}-local-strict")
            os.makedirs(target, exist_ok=True)
            for name in members:
                document = json.loads(archive.read(name))
                relativize(document)
                with open(os.path.join(target, os.path.basename(name)), "w") as f:
                    json.dump(document, f)
            print(f"  {len(members)} schemas for Kubernetes {version}")


if __name__ == "__main__":
    main()
