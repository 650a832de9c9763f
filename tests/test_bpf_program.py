"""kvmtop.bpf.program: compiles, loads and attaches here; cflags follow tracefs; every
failure is one line; the kernel-header fallback (kvmtop.bpf.headers)."""

from __future__ import annotations

import os
import sys

import pytest

from kvmtop import histogram, tracefs
from kvmtop.bpf import headers, maps, program
from kvmtop.bpf.program import Features, Program, build_cflags, detect_features
from kvmtop.sources import SourceError

pytestmark = pytest.mark.bpf

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="loading BPF needs root")


def one_line(err: SourceError) -> str:
    text = str(err)
    assert text and "\n" not in text, repr(text)
    return text


# --------------------------------------------------------------------------- compile, load, attach


@needs_root
def test_compiles_loads_and_attaches_on_this_kernel():
    p = Program(max_keys=1024).load()
    try:
        progs = p.prog_fds()
        expect = {"tracepoint__kvm__kvm_exit", "tracepoint__kvm__kvm_entry", "tracepoint__kvm__kvm_userspace_exit"}
        if p.features.hypercalls:
            expect.add("tracepoint__kvm__kvm_hypercall")
        if p.features.ioctl:
            expect.add("tracepoint__syscalls__sys_enter_ioctl")
        assert set(progs) == expect
        assert all(fd > 0 for fd in progs.values())
        assert p.bpf.num_open_tracepoints() == len(expect)
        maps.check_layout(p)  # the numpy dtypes match the C structs
        assert set(p.maps) == {"stats", "hist", "requests", "pending", "info", "counters"}
        assert p.counters()["drop_stats"] == 0
    finally:
        p.close()
        p.close()  # safe twice


@needs_root
def test_test_build_loads_the_raw_tracepoint_wrappers_only():
    p = Program(max_keys=64, test=True).load()
    try:
        assert set(p.test_fds) == set(program.TEST_PROGRAMS)
        assert p.bpf.num_open_tracepoints() == 0
        assert "-DKVMTOP_TEST" in p.cflags
    finally:
        p.close()


def test_cflags_reflect_the_requests_field():
    fields = tracefs.fields("kvm", "kvm_exit")
    feats = detect_features()
    assert feats.requests == ("requests" in fields)
    assert feats.exit_vcpu_id == ("vcpu_id" in fields)
    flags = build_cflags(feats, max_keys=100)
    assert ("-DHAVE_REQUESTS" in flags) == ("requests" in fields)
    assert set(histogram.c_defines()) <= set(flags)
    assert "-DMAX_KEYS=100" in flags and f"-DHIST_KEYS={100 * program.HIST_FACTOR}" in flags
    assert not any(f.startswith("-DFILTER_PID") for f in flags)
    assert "-DFILTER_PID=77" in build_cflags(feats, pid=77)
    assert "-DHAVE_REQUESTS" not in build_cflags(Features(requests=False))


def test_requests_field_absent_is_detected_from_tracefs(monkeypatch):
    real = tracefs.fields

    def fields(cat, event, root=None):
        out = real(cat, event, root)
        if event == "kvm_exit":
            out = {k: v for k, v in out.items() if k != "requests"}
        return out

    monkeypatch.setattr(tracefs, "fields", fields)
    feats = detect_features()
    assert not feats.requests
    assert "-DHAVE_REQUESTS" not in build_cflags(feats)
    assert any("requests" in n for n in feats.notes())


@needs_root
def test_compiles_without_the_request_code():
    p = Program(max_keys=64, features=Features(requests=False, exit_vcpu_id=False, hypercalls=False,
                                                ioctl=False)).load()
    try:
        assert "-DHAVE_REQUESTS" not in p.cflags
        assert p.bpf.num_open_tracepoints() == 3
    finally:
        p.close()


# --------------------------------------------------------------------------- one-line errors


def _hide_event(monkeypatch, hidden: str):
    real = tracefs.fields

    def fields(cat, event, root=None):
        if event == hidden:
            raise tracefs.TracefsError(f"tracepoint {cat}:{event} does not exist on this kernel")
        return real(cat, event, root)

    monkeypatch.setattr(tracefs, "fields", fields)


@needs_root
@pytest.mark.parametrize("event", ["kvm_exit", "kvm_entry", "kvm_userspace_exit"])
def test_missing_required_tracepoint_is_one_line(monkeypatch, event):
    _hide_event(monkeypatch, event)
    with pytest.raises(SourceError) as e:
        Program(max_keys=64).load()
    assert f"kvm:{event}" in one_line(e.value)


def test_missing_required_field_is_one_line(monkeypatch):
    real = tracefs.fields
    monkeypatch.setattr(tracefs, "fields", lambda c, e, r=None: {} if e == "kvm_exit" else real(c, e, r))
    with pytest.raises(SourceError) as e:
        detect_features()
    assert "exit_reason" in one_line(e.value)


def test_missing_hypercall_tracepoint_only_disables_hypercalls(monkeypatch):
    _hide_event(monkeypatch, "kvm_hypercall")
    feats = detect_features()
    assert not feats.hypercalls
    assert "-DHAVE_HYPERCALL" not in build_cflags(feats)
    assert any("kvm_hypercall" in n for n in feats.notes())


@needs_root
def test_loads_without_hypercall_tracepoint(monkeypatch):
    _hide_event(monkeypatch, "kvm_hypercall")
    p = Program(max_keys=64).load()
    try:
        assert "tracepoint__kvm__kvm_hypercall" not in p.prog_fds()
        assert not p.features.hypercalls
    finally:
        p.close()


def test_not_root_is_one_line(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(SourceError) as e:
        Program().load()
    assert "root" in one_line(e.value)


@needs_root
def test_bcc_missing_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "bcc", None)  # import bcc -> ImportError
    with pytest.raises(SourceError) as e:
        Program().load()
    assert "BCC" in one_line(e.value)


@needs_root
def test_tracefs_missing_is_one_line(monkeypatch):
    def require(mount=True):
        raise tracefs.TracefsError("tracefs is not mounted (mount -t tracefs nodev /sys/kernel/tracing)")

    monkeypatch.setattr(tracefs, "require", require)
    with pytest.raises(SourceError) as e:
        Program().load()
    assert "tracefs" in one_line(e.value)


@needs_root
def test_headers_missing_is_one_line(monkeypatch):
    def prepare(verbose=True):
        raise headers.HeadersError("no kernel headers: install linux-headers")

    monkeypatch.setattr(headers, "prepare_headers", prepare)
    with pytest.raises(SourceError) as e:
        Program(max_keys=64).load()
    assert "headers" in one_line(e.value)


@needs_root
def test_compile_failure_is_the_first_error_line(monkeypatch, tmp_path):
    bad = tmp_path / "bad.bpf.c"
    bad.write_text(open(program.SOURCE_PATH).read() + "\nint broken(void) { return undeclared_thing; }\n")
    monkeypatch.setattr(program, "SOURCE_PATH", str(bad))
    with pytest.raises(SourceError) as e:
        Program(max_keys=64).load()
    msg = one_line(e.value)
    assert msg.startswith("BPF compile failed:") and "undeclared_thing" in msg


def test_bad_max_keys_is_one_line():
    with pytest.raises(SourceError) as e:
        build_cflags(Features(), max_keys=0)
    one_line(e.value)


# --------------------------------------------------------------------------- kernel headers


def _fake_packages(root):
    common = root / "src" / "linux-headers-9.1.0-3-common"
    arch = root / "src" / "linux-headers-9.1.0-3-amd64"
    (common / "include" / "linux").mkdir(parents=True)
    (common / "include" / "linux" / "types.h").write_text("common\n")
    (common / "arch" / "x86" / "include").mkdir(parents=True)
    (common / "Makefile").write_text("common\n")
    kbuild = root / "kbuild" / "scripts"
    kbuild.mkdir(parents=True)
    (kbuild / "basic.sh").write_text("kbuild\n")
    (common / "scripts").symlink_to(kbuild)
    (arch / "include" / "generated").mkdir(parents=True)
    (arch / "include" / "generated" / "autoconf.h").write_text("arch\n")
    (arch / "arch" / "x86" / "include" / "generated").mkdir(parents=True)
    (arch / "Makefile").write_text("arch\n")
    (arch / ".config").write_text("CONFIG_X=y\n")
    (arch / "scripts").symlink_to(kbuild)
    older = root / "src" / "linux-headers-9.0.0-1-common"
    (older / "include").mkdir(parents=True)
    return str(root / "src"), common, arch


def test_headers_farm_merges_common_and_arch(monkeypatch, tmp_path):
    if os.uname().machine != "x86_64":
        pytest.skip("the fake packages are amd64 ones")
    src, common, arch = _fake_packages(tmp_path)
    cache = str(tmp_path / "cache")
    monkeypatch.delenv("BCC_KERNEL_SOURCE", raising=False)
    monkeypatch.setattr(headers, "module_build_dir", lambda: str(tmp_path / "no-such-build"))
    assert headers.split_packages(src) == (str(common), str(arch))
    assert headers.find_headers(src, cache) is None
    path = headers.prepare_headers(verbose=False, src_dir=src, cache_dir=cache)
    assert path == os.path.join(cache, "9.1.0-3-amd64")
    read = lambda *p: open(os.path.join(path, *p)).read()  # noqa: E731
    assert read("include", "linux", "types.h") == "common\n"
    assert read("include", "generated", "autoconf.h") == "arch\n"
    assert read("Makefile") == "arch\n"  # the arch tree wins
    assert read(".config") == "CONFIG_X=y\n"
    assert read("scripts", "basic.sh") == "kbuild\n"
    assert os.path.isdir(os.path.join(path, "arch", "x86", "include", "generated"))
    assert headers.find_headers(src, cache) == path
    # a second run reuses the tree
    stamp = os.stat(os.path.join(path, headers.STAMP)).st_mtime_ns
    assert headers.prepare_headers(verbose=False, src_dir=src, cache_dir=cache) == path
    assert os.stat(os.path.join(path, headers.STAMP)).st_mtime_ns == stamp


def test_headers_order(monkeypatch, tmp_path):
    build = tmp_path / "build"
    monkeypatch.setattr(headers, "module_build_dir", lambda: str(build))
    monkeypatch.setenv("BCC_KERNEL_SOURCE", str(tmp_path))
    assert headers.prepare_headers(verbose=False, src_dir=str(tmp_path / "none")) == str(tmp_path)
    build.mkdir()
    assert headers.prepare_headers(verbose=False) is None  # BCC finds the build dir itself
    assert headers.find_headers() == str(build)
    build.rmdir()
    monkeypatch.delenv("BCC_KERNEL_SOURCE")
    with pytest.raises(headers.HeadersError) as e:
        headers.prepare_headers(verbose=False, src_dir=str(tmp_path / "none"))
    assert "\n" not in str(e.value)


@needs_root
def test_compiles_without_bcc_kernel_source(monkeypatch):
    """What `make test` relies on: headers.py finds (or builds) a header tree by itself."""
    monkeypatch.delenv("BCC_KERNEL_SOURCE", raising=False)
    if not os.path.isdir(headers.module_build_dir()) and headers.split_packages() is None:
        pytest.skip("this host has no kernel headers of any kind")
    p = Program(max_keys=64, test=True).load()
    p.close()
