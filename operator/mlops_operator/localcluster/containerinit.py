"""Start one container from its image's rootfs: run by the node agent as
`ip netns exec <pod netns> python -I -m mlops_operator.localcluster.containerinit <launch.json>`.

In a private mount and UTS namespace: the rootfs bound onto itself; /proc, a minimal /dev (null, zero, full,
random, urandom, tty, an /dev/shm tmpfs), /sys read-only, the pod's resolv.conf and hosts, the node's data
mounts and the container's volumes; the root made read-only when the container asks; then chroot, the
working dir, the hostname, no_new_privs, the groups and user, and exec. The process keeps the pid the agent
started, so signals, exit codes and logs are the agent's usual ones. Standard library only (ctypes).
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

CLONE_NEWNS, CLONE_NEWUTS = 0x00020000, 0x04000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PR_SET_NO_NEW_PRIVS = 38
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    """mount(2)."""
    encode = lambda value: value.encode() if value is not None else None  # noqa: E731
    _check(_libc.mount(encode(source), encode(target), encode(fstype), flags, encode(data)), f"mount {target}")


def bind(source: str, target: str, *, readonly: bool = False, recursive: bool = False) -> None:
    """A bind mount, remounted read-only when asked (a bind ignores MS_RDONLY on its first call)."""
    mount(source, target, None, MS_BIND | (MS_REC if recursive else 0))
    if readonly:
        mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | (MS_REC if recursive else 0))


def in_root(root: Path, inside: str) -> Path:
    """`inside` resolved within the rootfs, symlinks followed as the container would see them (an image's
    /var/run -> /run, or a hostile `ln -s /etc x`, never leads out to the host's tree)."""
    parts = [p for p in inside.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            resolved = resolved[:-1]
            continue
        candidate = root.joinpath(*resolved, part)
        if candidate.is_symlink():
            hops += 1
            if hops > 40:
                raise OSError(f"too many levels of symbolic links in {inside}")
            link = os.readlink(candidate)
            parts = [p for p in link.split("/") if p not in ("", ".")] + parts
            if link.startswith("/"):
                resolved = []
            continue
        resolved.append(part)
    return root.joinpath(*resolved)


def mountpoint(root: Path, inside: str, *, like: str) -> str:
    """Create the path a mount goes on inside the rootfs: a directory, or a file when `like` is a file."""
    target = in_root(root, inside)
    if os.path.isdir(like) or not os.path.exists(like):
        target.mkdir(parents=True, exist_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch(exist_ok=True)
    return str(target)


def primary_gid(root: Path, uid: int) -> int:
    """The user's group in the image's /etc/passwd, else 0 (as runc)."""
    try:
        for line in (root / "etc" / "passwd").read_text().splitlines():
            fields = line.split(":")
            if len(fields) > 3 and fields[2] == str(uid):
                return int(fields[3])
    except (OSError, ValueError):
        pass
    return 0


def prepare(spec: dict[str, Any]) -> None:
    """All mounts, then read-only root, chroot and working dir."""
    root = Path(spec["rootfs"])
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWUTS), "unshare")
    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing below propagates back to the host
    bind(str(root), str(root))
    mount("proc", mountpoint(root, "/proc", like="/proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    dev = mountpoint(root, "/dev", like="/dev")
    mount("tmpfs", dev, "tmpfs", MS_NOSUID, "mode=755,size=64k")
    for name in DEVICES:
        if os.path.exists(f"/dev/{name}"):
            Path(dev, name).touch()
            bind(f"/dev/{name}", f"{dev}/{name}")
    Path(dev, "shm").mkdir()
    mount("shm", f"{dev}/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=256m")
    for link, to in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1")):
        os.symlink(to, f"{dev}/{link}")
    os.symlink("/proc/self/fd/2", f"{dev}/stderr")
    bind("/sys", mountpoint(root, "/sys", like="/sys"), readonly=True, recursive=True)
    # `ip netns exec` has bound the pod's resolv.conf on /etc/resolv.conf; hosts and hostname are the pod's.
    etc = {
        "resolv.conf": "/etc/resolv.conf",
        "hosts": f"{spec['etc_dir']}/hosts",
        "hostname": f"{spec['etc_dir']}/hostname",
    }
    for name, source in etc.items():
        if os.path.isfile(source):
            bind(source, mountpoint(root, f"/etc/{name}", like=source), readonly=True)
    for item in spec["mounts"]:
        source, target = item["source"], item["target"]
        if not os.path.exists(source):
            os.makedirs(source)
        bind(source, mountpoint(root, target, like=source), readonly=item["readonly"], recursive=True)
    workdir = in_root(root, spec["working_dir"])
    if not workdir.exists():
        workdir.mkdir(parents=True)  # as runc: a missing working dir is created
    if spec["readonly_root"]:
        mount(None, str(root), None, MS_BIND | MS_REMOUNT | MS_RDONLY)
    os.chroot(root)
    os.chdir(spec["working_dir"])


def become(spec: dict[str, Any]) -> None:
    """Hostname, no_new_privs, groups, gid, uid: after this the process has no privileges to give away."""
    socket.sethostname(spec["hostname"])
    if spec["no_new_privileges"]:
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    gid = spec["gid"] if spec["gid"] >= 0 else primary_gid(Path("/"), spec["uid"])
    os.setgroups(sorted(set(spec["groups"])))
    os.setgid(gid)
    os.setuid(spec["uid"])


def main(argv: list[str]) -> int:
    """Prepare and exec; a failure before exec exits 128 with the reason on stderr (the container's log)."""
    spec = json.loads(Path(argv[1]).read_text())
    try:
        prepare(spec)
        become(spec)
    except OSError as error:
        print(f"containerinit: {error}", file=sys.stderr)
        return 128
    try:
        os.execvpe(spec["argv"][0], spec["argv"], spec["env"])
    except FileNotFoundError:
        print(f"containerinit: {spec['argv'][0]!r}: executable file not found in $PATH", file=sys.stderr)
        return 127
    except OSError as error:
        print(f"containerinit: exec {spec['argv'][0]!r}: {error}", file=sys.stderr)
        return 126
    return 0  # not reached: exec replaced the process


if __name__ == "__main__":
    sys.exit(main(sys.argv))
