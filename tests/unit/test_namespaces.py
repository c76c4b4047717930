# SPDX-License-Identifier: Apache-2.0
"""profkit.namespaces: the container runtime and id read from real-world cgroup paths, and the
namespace facts of a process in profkit's own namespaces (this test's own)."""
import os

import pytest

from profkit.errors import TargetNotFound
from profkit.namespaces import container_from_cgroup, namespaces_of, parse_cgroup

ID = "4f1c2a7d9e8b" + "0" * 52


@pytest.mark.parametrize("path,runtime,pod", [
    (f"/system.slice/docker-{ID}.scope", "docker", ""),
    (f"/docker/{ID}", "docker", ""),
    (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0b5e6f2a_1c3d_4e5f_8a9b_0c1d2e3f4a5b.slice/"
     f"cri-containerd-{ID}.scope", "containerd", "0b5e6f2a-1c3d-4e5f-8a9b-0c1d2e3f4a5b"),
    (f"/kubepods.slice/kubepods-pod0b5e6f2a_1c3d_4e5f_8a9b_0c1d2e3f4a5b.slice/crio-{ID}.scope", "cri-o",
     "0b5e6f2a-1c3d-4e5f-8a9b-0c1d2e3f4a5b"),
    (f"/kubepods/besteffort/pod0b5e6f2a-1c3d-4e5f-8a9b-0c1d2e3f4a5b/{ID}", "kubernetes (cgroupfs driver)",
     "0b5e6f2a-1c3d-4e5f-8a9b-0c1d2e3f4a5b"),
    (f"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope/container", "podman", ""),
    # a cgroup namespace of its own shows other pods relative to it
    (f"/../../kubepods-besteffort-pod0b5e6f2a_1c3d_4e5f_8a9b_0c1d2e3f4a5b.slice/cri-containerd-{ID}.scope",
     "containerd", "0b5e6f2a-1c3d-4e5f-8a9b-0c1d2e3f4a5b"),
])
def test_runtime_and_id_from_the_cgroup_path(path, runtime, pod):
    c = container_from_cgroup(path)
    assert (c.runtime, c.id, c.pod) == (runtime, ID, pod)


def test_no_container():
    c = container_from_cgroup("/user.slice/user-1000.slice/session-3.scope")
    assert (c.runtime, c.id, c.kubernetes) == ("", "", False)


def test_cgroup_v2_line_wins_over_v1():
    text = f"12:pids:/docker/{ID}\n1:name=systemd:/docker/{ID}\n0::/system.slice/docker-{ID}.scope\n"
    assert parse_cgroup(text) == f"/system.slice/docker-{ID}.scope"
    assert parse_cgroup(f"4:memory:/docker/{ID}\n3:cpu:/\n") == f"/docker/{ID}"


def test_own_namespaces_are_the_same():
    ns = namespaces_of(os.getpid())
    assert ns.nspid == os.getpid() or ns.nspids[0] == os.getpid()
    assert not ns.isolated and ns.differing() == [] and ns.same.get("mnt") is True


def test_no_such_process():
    with pytest.raises(TargetNotFound):
        namespaces_of(2 ** 22 + 12345)
