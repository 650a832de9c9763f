"""kvmtop.bpf.program: compiles, loads and attaches here; cflags follow tracefs; every
failure is one line; the kernel-header fallback (kvmtop.bpf.headers)."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import pytest

from kvmtop import histogram, tracefs
from kvmtop.bpf import headers, maps, program
from kvmtop.bpf.program import CLASSIC, IO_EVENTS, RAW, Features, Program, build_cflags, detect_features, plan_probes
from kvmtop.errors import SourceError

pytestmark = pytest.mark.bpf

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="loading BPF needs root")


def one_line(err: SourceError) -> str:
    text = str(err)
    assert text and "\n" not in text, repr(text)
    return text


# --------------------------------------------------------------------------- compile, load, attach


def prog_name(event: str, kind: str) -> str:
    cat, name = event.split(":")
    return f"raw_tracepoint__{name}" if kind == RAW else f"tracepoint__{cat}__{name}"


def assert_attached(p: Program) -> None:
    """Exactly the probes p.probes names are loaded and attached, each as it says (the I/O
    ones only while p.io: they wait for a screen that shows I/O)."""
    assert set(p.prog_fds()) == {prog_name(e, k) for e, k in p.probes.items()}
    assert all(fd > 0 for fd in p.prog_fds().values())
    live = {e: k for e, k in p.probes.items() if p.io or e not in IO_EVENTS}
    assert p.bpf.num_open_tracepoints() == sum(k == CLASSIC for k in live.values())
    assert set(p.bpf.raw_tracepoint_fds) == {e.split(":")[1].encode() for e, k in p.probes.items() if k == RAW}


@needs_root
def test_compiles_loads_and_attaches_on_this_kernel():
    p = Program(max_keys=1024).load()
    try:
        expect = {"kvm:kvm_exit", "kvm:kvm_entry", "kvm:kvm_userspace_exit"}
        if p.features.hypercalls:
            expect.add("kvm:kvm_hypercall")
        if p.features.ioctl:
            expect.add("syscalls:sys_enter_ioctl")
        if p.features.thread_exit:
            expect.add("sched:sched_process_exit")
        if p.features.io:
            expect.update(IO_EVENTS)
        assert set(p.probes) == expect
        assert_attached(p)
        assert p.probes["kvm:kvm_exit"] == CLASSIC  # its values come from the vcpu struct
        assert p.fallback == ""
        maps.check_layout(p)  # the numpy dtypes match the C structs
        assert set(p.maps) == {"stats", "lost", "slots", "pending", "info", "counters"}
        assert p.counters()["drop_exits"] == 0
    finally:
        p.close()
        p.close()  # safe twice


@needs_root
@pytest.mark.parametrize("raw", [True, False])
def test_raw_and_classic_variants_both_load_here(raw):
    p = Program(max_keys=64, raw=raw).load()
    try:
        f = p.features
        assert f.raw_userspace_exit and f.raw_entry  # this kernel's formats are the expected ones
        assert p.probes["kvm:kvm_userspace_exit"] == (RAW if raw else CLASSIC)
        assert p.probes["kvm:kvm_entry"] == (RAW if raw else CLASSIC)
        if f.hypercalls:
            assert p.probes["kvm:kvm_hypercall"] == (RAW if raw and f.raw_hypercall else CLASSIC)
        assert p.probes["kvm:kvm_exit"] == CLASSIC
        if f.ioctl:
            assert p.probes["syscalls:sys_enter_ioctl"] == CLASSIC
        assert ("-DRAW_USERSPACE_EXIT" in p.cflags) == raw
        assert ("-DRAW_ENTRY" in p.cflags) == raw
        assert_attached(p)
        # detach() and attach() leave the same probes attached
        p.detach()
        assert p.bpf.num_open_tracepoints() == 0 and not p.bpf.raw_tracepoint_fds
        p.attach()
        assert_attached(p)
    finally:
        p.close()


def _fields_with(monkeypatch, event: str, change):
    real = tracefs.fields

    def fields(cat, ev, root=None):
        out = real(cat, ev, root)
        return change(out) if ev == event else out

    monkeypatch.setattr(tracefs, "fields", fields)


@pytest.mark.parametrize("change", [
    lambda f: {k: f[k] for k in reversed(list(f))},                      # fields in another order
    lambda f: {**f, "extra": f["reason"]},                               # a field more
    lambda f: {"vcpu_id": f["reason"], **f},                             # a field before them
], ids=["reordered", "extra", "inserted"])
def test_raw_userspace_exit_needs_the_expected_fields(monkeypatch, change):
    _fields_with(monkeypatch, "kvm_userspace_exit", change)
    feats = detect_features()
    assert not feats.raw_userspace_exit
    plan = plan_probes(feats)
    assert plan["kvm:kvm_userspace_exit"] == CLASSIC
    assert "-DRAW_USERSPACE_EXIT" not in build_cflags(feats)


def test_raw_hypercall_needs_the_expected_fields(monkeypatch):
    _fields_with(monkeypatch, "kvm_hypercall", lambda f: {k: v for k, v in f.items() if k != "a3"})
    feats = detect_features()
    assert feats.hypercalls and not feats.raw_hypercall
    assert plan_probes(feats)["kvm:kvm_hypercall"] == CLASSIC
    assert "-DRAW_HYPERCALL" not in build_cflags(feats) and "-DHAVE_HYPERCALL" in build_cflags(feats)


def test_raw_choices_on_this_kernel_follow_tracefs():
    us = program.event_args(tracefs.fields("kvm", "kvm_userspace_exit"))
    feats = detect_features()
    assert feats.raw_userspace_exit == (us == ("reason", "errno"))
    assert feats.raw_entry  # kvm_entry's raw probe reads no argument
    assert plan_probes(feats, raw=False) == {e: CLASSIC for e in plan_probes(feats)}


@needs_root
def test_failed_raw_attach_falls_back_to_classic(monkeypatch):
    from bcc import BPF

    made = []
    real_init = BPF.__init__

    def init(self, *a, **k):
        made.append(self)
        real_init(self, *a, **k)

    def refuse(self, tp=b"", fn_name=b""):
        raise Exception("Failed to attach BPF to raw tracepoint")

    monkeypatch.setattr(BPF, "__init__", init)
    monkeypatch.setattr(BPF, "attach_raw_tracepoint", refuse)
    p = Program(max_keys=64).load()
    try:
        assert set(p.probes.values()) == {CLASSIC}
        assert "raw tracepoint" in p.fallback and "\n" not in p.fallback
        assert not any(f.startswith("-DRAW_") for f in p.cflags)
        assert_attached(p)
        # the half-attached first build was detached, not left running
        assert len(made) == 2 and made[0] is not p.bpf
        assert not made[0].tracepoint_fds and not made[0].raw_tracepoint_fds
    finally:
        p.close()


@needs_root
@pytest.mark.kvm
@pytest.mark.parametrize("raw", [True, False])
def test_real_userspace_exits_are_decoded_alike_raw_or_classic(raw):
    """A real vCPU in this thread: an errno exit (immediate_exit: KVM_RUN returns -EINTR)
    and PIO exits give the same stats keys through the raw probe as through the classic one."""
    if not os.path.exists("/dev/kvm"):
        pytest.skip("/dev/kvm is absent: this host has no KVM")
    import ctypes
    import threading

    from kvmtop.testing.kvm_guest import KVM_RUN, Vm, guest_code

    libc = ctypes.CDLL(None, use_errno=True)
    p = Program(max_keys=64, pid=os.getpid(), raw=raw).load()
    vm = Vm(guest_code(pio=3, mmio=0, hlt=0))
    try:
        assert p.probes["kvm:kvm_userspace_exit"] == (RAW if raw else CLASSIC)
        vm._run[1] = 1  # struct kvm_run.immediate_exit
        assert libc.ioctl(vm.vcpu_fd, KVM_RUN, 0) == -1 and ctypes.get_errno() == errno.EINTR
        vm._run[1] = 0
        assert vm.run()["KVM_EXIT_IO"] == 4  # 3 PIO exits + the DONE_PORT marker
        keys, vals = maps.HashReader(p.map_fd("stats"), maps.STAT_KEY, maps.STAT_VAL, p.hist_keys).drain()
        tid = threading.get_native_id()
        got: dict[tuple, int] = {}
        for k, v in zip(keys, vals):
            if k["tid"] == tid:
                assert not k["flags"] & program.NO_LATENCY
                got[(int(k["kind"]), int(k["code"]))] = got.get((int(k["kind"]), int(k["code"])), 0) + int(v["count"])
        # the EINTR exit and 3 of the 4 IO exits were answered with KVM_RUN: counted with a latency
        assert got == {(program.KIND_USERSPACE, program.ERRNO_FLAG | errno.EINTR): 1, (program.KIND_USERSPACE, 2): 3}
        # the DONE_PORT exit is still in flight (this thread goes on): in its pairing state
        _, slots = maps.HashReader(p.map_fd("slots"), maps.INDEX, maps.PENDING_VAL, p.slots).read()
        mine = slots[slots["tid"] == tid]
        assert len(mine) == 1 and mine["us_code"][0] == 2 and mine["us_ns"][0] > 0
        assert p.counters()["seen_userspace"] == 5
    finally:
        vm.close()
        p.close()


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
        assert not {"tracepoint__kvm__kvm_hypercall", "raw_tracepoint__kvm_hypercall"} & set(p.prog_fds())
        assert "kvm:kvm_hypercall" not in p.probes
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
    bad.write_text(Path(program.SOURCE_PATH).read_text() + "\nint broken(void) { return undeclared_thing; }\n")
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
    def read(*parts: str) -> str:
        return Path(path, *parts).read_text()

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
    with pytest.raises(headers.HeadersError, match="no include/ and arch/"):  # not a header tree
        headers.prepare_headers(verbose=False, src_dir=str(tmp_path / "none"))
    (tmp_path / "include").mkdir()
    (tmp_path / "arch").mkdir()
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
