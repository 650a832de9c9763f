"""Kernel headers for BCC.

BCC compiles against /lib/modules/$(uname -r)/build. Hosts running a kernel without
its own headers package (a custom or cloud kernel) often still have a distribution's
split header packages installed: /usr/src/linux-headers-X-common (the sources) and
/usr/src/linux-headers-X-<arch> (config and generated files). Neither is usable alone;
merged into one tree of symlinks they are enough for BCC's programs, which only need
basic kernel types. kvmtop builds that tree once under /var/cache/kvmtop and points
BCC_KERNEL_SOURCE at it.

Order: the running kernel's build dir; else $BCC_KERNEL_SOURCE (a tree with include/ and
arch/); else the merged tree.

    python -m kvmtop.bpf.headers     # prepare and say what was done (make setup)
"""

from __future__ import annotations

import glob
import os
import platform
import re
import shutil
import sys

CACHE_DIR = "/var/cache/kvmtop/kernel-headers"
SRC_DIR = "/usr/src"
STAMP = ".kvmtop-headers"

_ARCH_SUFFIX = {"x86_64": "amd64", "aarch64": "arm64", "ppc64le": "powerpc64le",
                "s390x": "s390x", "riscv64": "riscv64"}


class HeadersError(Exception):
    """No kernel headers can be found or built; the message is one line for the user."""


def module_build_dir() -> str:
    return f"/lib/modules/{os.uname().release}/build"


def _version_key(path: str) -> tuple:
    name = os.path.basename(path)
    return tuple(int(n) if n.isdigit() else n for n in re.split(r"[.-]", name) if n)


def split_packages(src_dir: str = SRC_DIR) -> tuple[str, str] | None:
    """(common tree, arch tree) of the newest split header packages, or None."""
    suffix = _ARCH_SUFFIX.get(platform.machine(), platform.machine())
    commons = sorted(glob.glob(os.path.join(src_dir, "linux-headers-*-common")), key=_version_key)
    for common in reversed(commons):
        arch = common[: -len("-common")] + "-" + suffix
        if os.path.isdir(os.path.join(arch, "include")) and os.path.isdir(os.path.join(common, "include")):
            return common, arch
    return None


def farm_path(packages: tuple[str, str], cache_dir: str = CACHE_DIR) -> str:
    return os.path.join(cache_dir, os.path.basename(packages[1])[len("linux-headers-"):])


def _farm_ready(path: str, packages: tuple[str, str]) -> bool:
    try:
        with open(os.path.join(path, STAMP), encoding="utf-8") as f:
            return f.read().split() == list(packages)
    except OSError:
        return False


def is_tree(path: str) -> bool:
    """Whether ``path`` looks like a kernel header tree (include/ and arch/)."""
    return all(os.path.isdir(os.path.join(path, d)) for d in ("include", "arch"))


def resolve(src_dir: str | None = None, cache_dir: str | None = None, build: bool = True) -> tuple[str | None, str]:
    """(what BCC_KERNEL_SOURCE should be, None when BCC finds the headers itself; where the
    headers are, in words), in the order of the module docstring. With ``build``, split
    packages are merged into a tree now (once); without, only a tree merged before counts.

    Raises HeadersError (one line) when there are none.
    """
    src_dir = src_dir or SRC_DIR
    cache_dir = cache_dir or CACHE_DIR
    build_dir = module_build_dir()
    if os.path.isdir(build_dir):
        return None, build_dir
    env = os.environ.get("BCC_KERNEL_SOURCE")
    if env:
        if not is_tree(env):
            raise HeadersError(f"{build_dir} is missing and BCC_KERNEL_SOURCE={env} has no include/ and arch/")
        return env, f"BCC_KERNEL_SOURCE={env}"
    packages = split_packages(src_dir)
    if packages is None:
        raise HeadersError(
            f"no kernel headers: {build_dir} is missing and {src_dir} has no linux-headers-*-common "
            "package (install linux-headers, or set BCC_KERNEL_SOURCE)")
    path = farm_path(packages, cache_dir)
    if _farm_ready(path, packages):
        return path, f"{path} (merged from {packages[0]} + {packages[1]})"
    if not build:
        raise HeadersError(f"{packages[0]} + {packages[1]} are not merged into {path} yet")
    try:
        build_farm(packages, cache_dir)
    except OSError as e:
        raise HeadersError(f"cannot build kernel header tree {path}: {e.strerror or e}") from None
    return path, f"{path} (merged now from {packages[0]} + {packages[1]})"


def find_headers(src_dir: str | None = None, cache_dir: str | None = None) -> str | None:
    """The header tree kvmtop would compile against now, without building anything; None
    when there is none (yet)."""
    if os.path.isdir(module_build_dir()):
        return module_build_dir()
    try:
        return resolve(src_dir, cache_dir, build=False)[0]
    except HeadersError:
        return None


def _overlay(src: str, dst: str) -> None:
    """Mirror src into dst as symlinks to absolute paths; entries in src win."""
    for name in os.listdir(src):
        s, d = os.path.join(src, name), os.path.join(dst, name)
        if os.path.isdir(s) and (not os.path.islink(s) or (os.path.isdir(d) and not os.path.islink(d))):
            # a real directory, or a symlinked one to merge into a directory already there
            if os.path.islink(d) or (os.path.exists(d) and not os.path.isdir(d)):
                os.unlink(d)
            os.makedirs(d, exist_ok=True)
            _overlay(os.path.realpath(s) if os.path.islink(s) else s, d)
            continue
        if os.path.islink(d) or os.path.isfile(d):
            os.unlink(d)
        elif os.path.isdir(d):
            shutil.rmtree(d)
        os.symlink(s, d)


def build_farm(packages: tuple[str, str], cache_dir: str = CACHE_DIR) -> str:
    """Merge the common and arch header trees into one symlink tree (once)."""
    path = farm_path(packages, cache_dir)
    if _farm_ready(path, packages):
        return path
    os.makedirs(cache_dir, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    for tree in packages:  # the arch tree last: its generated files and config win
        _overlay(tree, tmp)
    with open(os.path.join(tmp, STAMP), "w", encoding="utf-8") as f:
        f.write("\n".join(packages) + "\n")
    if _farm_ready(path, packages):  # another kvmtop built it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
        return path
    if os.path.isdir(path):
        shutil.rmtree(path)  # a stale tree of symlinks (other packages)
    try:
        os.rename(tmp, path)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not _farm_ready(path, packages):
            raise
    return path


def prepare_headers(verbose: bool = True, src_dir: str | None = None,
                    cache_dir: str | None = None) -> str | None:
    """What BCC_KERNEL_SOURCE should be (None when BCC finds the headers itself), merging
    split packages when needed. Raises HeadersError when there are no headers to use."""
    tree, where = resolve(src_dir, cache_dir)
    if verbose:
        print(f"kernel headers: {where}")
    return tree


def main() -> int:
    try:
        prepare_headers(verbose=True)
    except HeadersError as e:
        print(f"kvmtop: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
