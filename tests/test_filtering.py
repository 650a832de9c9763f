from fake_sources import make_interval

from kvmtop.aggregate import SnapshotBuilder
from kvmtop.filtering import ReasonFilter


def snaps(count=3):
    b = SnapshotBuilder()
    return [b.build(make_interval(n)) for n in range(1, count + 1)][-1]


def test_parse_include_and_exclude():
    assert ReasonFilter.parse("") is None
    f = ReasonFilter.parse("hlt, EPT_VIOLATION")
    assert f.terms == {"HLT", "EPT_VIOLATION"} and not f.exclude
    g = ReasonFilter.parse("!HLT")
    assert g.exclude and g.describe() == "not HLT"


def test_include_narrows_tables_header_and_history():
    snap = snaps(3)  # VM 10: n HLT + 2n EPT per interval
    f = ReasonFilter.parse("HLT").apply(snap)
    alpha = f.vm(10)
    assert [r.name for r in alpha.reasons] == ["HLT"]
    assert alpha.exits == 3 and f.host.exits == 3
    assert alpha.history == (1.0, 2.0, 3.0)
    assert f.host.history == (1.0, 2.0, 3.0)
    assert alpha.vcpus[0].exits == 3
    # userspace exits are another category: an exit-reason filter leaves them whole
    assert f.vm(20).userspace_count == 3
    # the unfiltered snapshot is untouched
    assert snap.vm(10).exits == 9 and snap.vm(10).history == (3.0, 6.0, 9.0)


def test_exclude_and_flags_and_userspace_terms():
    snap = snaps(2)
    f = ReasonFilter.parse("!hlt").apply(snap)
    assert [r.name for r in f.vm(10).reasons] == ["EPT_VIOLATION"]
    assert f.host.latency.max == 800
    u = ReasonFilter.parse("KVM_EXIT_MMIO").apply(snap)
    assert u.vm(20).userspace_count == 0 and u.vm(10).exits == 6
    assert u.vm(20).userspace_history == (0.0, 0.0)
    assert ReasonFilter.parse("EPT_VIOLATION").admits_reason((1, 48 | 0x80000000))


def test_model_replace_copies_fields_and_drops_cached_figures():
    snap = snaps(3)
    vm = snap.vm(10)
    assert vm.exits == 9 and "exits" in vm.__dict__  # cached on first access
    narrowed = vm.replace(reasons=vm.reasons[:1])
    assert type(narrowed) is type(vm) and narrowed.name == vm.name and narrowed.vcpus == vm.vcpus
    assert narrowed.exits == vm.reasons[0].count  # recomputed, not the cached 9
    assert vm.exits == 9  # the original is untouched
    assert narrowed.hist is vm.hist  # the snapshot's history is shared, not copied
    copy = snap.replace(vms=())
    assert copy.vms == () and copy.host is snap.host and snap.vms
