"""Renders every overlay of deploy/kubernetes with `kubectl kustomize` (offline) and checks each
manifest against the Kubernetes schemas of the version given (kubernetes-validate, strict: no
unknown fields) or, for a custom resource, against the openAPIV3Schema of its
CustomResourceDefinition in deploy/kubernetes/schemas/ (jsonschema). A kind with no schema is
an error, not a warning. Prints the rendered overlays as one JSON object (overlay -> manifests)
on stdout for the caller's own checks; exits 1 on the first overlay that does not validate.

    python3 scripts/validate_kubernetes.py [KUBERNETES_VERSION]     (default 1.32.0)
"""

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parent.parent / "deploy" / "kubernetes"


def crd_schemas():
    """(apiVersion, kind) -> the openAPIV3Schema of each vendored CustomResourceDefinition."""
    schemas = {}
    for path in sorted((ROOT / "schemas").glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schemas[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return schemas


def main():
    version = sys.argv[1] if len(sys.argv) > 1 else "1.32.0"
    custom = crd_schemas()
    rendered = {}
    failures = []
    for overlay in sorted(path for path in (ROOT / "overlays").iterdir() if path.is_dir()):
        out = subprocess.run(["kubectl", "kustomize", str(overlay)], capture_output=True, text=True)
        if out.returncode != 0:
            failures.append(f"{overlay.name}: kubectl kustomize: {out.stderr.strip()}")
            continue
        manifests = [doc for doc in yaml.safe_load_all(out.stdout) if doc]
        rendered[overlay.name] = manifests
        for manifest in manifests:
            name = f"{overlay.name}: {manifest.get('kind')}/{manifest.get('metadata', {}).get('name')}"
            key = (manifest.get("apiVersion"), manifest.get("kind"))
            try:
                if key in custom:
                    jsonschema.validate(manifest, custom[key])
                else:
                    kubernetes_validate.validate(manifest, version, strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                failures.append(f"{name}: no schema for {key[0]} {key[1]} in Kubernetes {version}")
            except jsonschema.ValidationError as err:
                where = "/".join(str(part) for part in err.absolute_path)
                failures.append(f"{name}: {where}: {err.message}")
    if failures:
        print("\n".join(failures), file=sys.stderr)
        sys.exit(1)
    json.dump(rendered, sys.stdout)


if __name__ == "__main__":
    main()
