# SPDX-License-Identifier: Apache-2.0
"""examples/kubernetes/ validates against the Kubernetes schemas (kubernetes-validate from PyPI,
which bundles them: no cluster, no network) and keeps its security promises: hostPID, only the
capabilities the README explains (never SYS_ADMIN), no service-account token, a read-only root
file system with emptyDir volumes for what is written, and resource limits."""
import pathlib

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
KUBE = ROOT / "examples" / "kubernetes"
#: the capabilities examples/kubernetes/README.md explains, each with its reason
EXPLAINED = {"SYS_PTRACE", "PERFMON", "KILL", "CHOWN", "DAC_OVERRIDE"}
VERSIONS = ("1.27.0", "1.30.0")


def documents():
    for path in sorted(KUBE.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield path.name, doc


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_validates(version):
    try:
        import kubernetes_validate
    except ImportError:
        pytest.fail("kubernetes-validate is missing: pip install kubernetes-validate (the test extra has it)")
    names = []
    for name, doc in documents():
        kubernetes_validate.validate(doc, version, strict=True)  # raises ValidationError with the path
        names.append(f"{name}:{doc['kind']}")
    assert {"daemonset-agent.yaml:DaemonSet", "job-attach.yaml:Job", "namespace.yaml:Namespace"} <= set(names), names


def pod_specs():
    for name, doc in documents():
        if doc["kind"] in ("DaemonSet", "Job"):
            yield name, doc["spec"]["template"]["spec"]


def test_pods_keep_their_security_promises():
    specs = dict(pod_specs())
    assert set(specs) == {"daemonset-agent.yaml", "job-attach.yaml"}
    for name, spec in specs.items():
        assert spec["hostPID"] is True, name
        assert spec["automountServiceAccountToken"] is False, name
        assert not spec.get("hostNetwork") and not spec.get("hostIPC"), name
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and sc["privileged"] is False, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            added = set(sc["capabilities"]["add"])
            assert {"SYS_PTRACE", "PERFMON"} <= added <= EXPLAINED and "SYS_ADMIN" not in added, (name, added)
            assert c["resources"]["limits"]["cpu"] and c["resources"]["limits"]["memory"], name
            volumes = {v["name"]: v for v in spec["volumes"]}
            for m in c["volumeMounts"]:
                v = volumes[m["name"]]
                # everything written goes to an emptyDir; host paths only read-only
                assert "emptyDir" in v or ("hostPath" in v and m.get("readOnly")), (name, m)
            written = {m["mountPath"] for m in c["volumeMounts"] if "emptyDir" in volumes[m["name"]]}
            assert "/tmp" in written, name


def test_the_agent_runs_profkit_agent_with_parca():
    spec = dict(pod_specs())["daemonset-agent.yaml"]
    args = spec["containers"][0]["args"]
    assert args[0] == "agent"
    assert "--cgroup" in args and any(a.startswith("parca=http") for a in args)
    assert args[args.index("--export") + 1].startswith("parca=")
    out = args[args.index("-o") + 1]
    mounts = {m["mountPath"]: m["name"] for m in spec["containers"][0]["volumeMounts"]}
    assert out in mounts, (out, mounts)
    readme = (KUBE / "README.md").read_text()
    for cap in EXPLAINED:
        assert cap in readme, cap
    assert "profkit agent" in readme and "SYS_ADMIN" in readme


def test_the_job_runs_profkit_attach():
    spec = dict(pod_specs())["job-attach.yaml"]
    c = spec["containers"][0]
    assert "profkit attach --pid" in " ".join(c["args"]) and "-o /runs/" in " ".join(c["args"])
    assert "/runs" in {m["mountPath"] for m in c["volumeMounts"]}
