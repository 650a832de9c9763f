// SPDX-License-Identifier: GPL-2.0
/*
 * kvmtop: what KVM guests cost the host, aggregated in the kernel.
 *
 * Per vCPU thread (tid):
 *   kvm_exit  -> next kvm_entry            = exit latency of that exit's (isa, reason)
 *   kvm_hypercall during a pending exit    = gets that exit's latency
 *   kvm_userspace_exit -> next KVM_RUN ioctl or kvm_entry = userspace round trip
 * An event is counted when its pair completes, together with its latency: one update of
 * one key (pid, tid, kind, code, latency bucket) that carries count, sum, min and max. An
 * event that never completes is still counted exactly once, without a latency: when the
 * thread's next event of that kind replaces it (unmatched), or when the thread exits.
 * Events in flight stay in the thread's pairing state, which user space reads each
 * interval ("in userspace for 3.2 s"); so do the thread's request-bit counts (cumulative:
 * user space takes the differences). Nothing is sent to user space per event: kvmtop reads
 * the pairing state and reads the other hash maps once per interval (`stats` by swapping it
 * for an empty map, `lost` by draining the half nothing writes any more).
 *
 * An event that does not fit in a full map is counted in counters[] per kind, and per row
 * in `lost` (itself bounded), so user space can mark exactly the rows that were cut.
 * The one thing sent to user space as it happens is a new thread: one new_threads record
 * each (never per event), so user space names its VM while it lives.
 *
 * cflags (see program.py): HIST_SUB_BITS, HIST_MAX_EXP, HIST_NBUCKETS (histogram.py),
 * MAX_KEYS, HIST_KEYS, PENDING_KEYS, LOST_KEYS, SLOTS, HAVE_REQUESTS, HAVE_EXIT_VCPU_ID, HAVE_HYPERCALL,
 * HAVE_IOCTL, HAVE_THREAD_EXIT, FILTER_PID, KVMTOP_TEST (raw-tracepoint test wrappers
 * instead of probes), RAW_USERSPACE_EXIT, RAW_ENTRY, RAW_HYPERCALL, RAW_THREAD_EXIT (raw
 * tracepoint instead of the classic one).
 *
 * Raw tracepoints: the kernel passes the TP_PROTO arguments as ctx->args[] and fills no
 * trace record, so they cost less per event. Only events whose arguments are plain values
 * (or are not needed) use them; program.py checks in tracefs that the fields still match
 * the prototypes below and falls back to the classic probe otherwise. kvm_exit stays
 * classic: its values come from the vcpu struct, which only the trace record decodes.
 *
 * Cost (bench/bench_bpf_cost.py): every map lookup is a function call, and on hosts with
 * return-stack mitigations each call and helper costs tens of ns, so handlers make as few
 * as they can; per-thread keys have one writer (the thread), so updates need no atomics.
 */
#include <uapi/linux/ptrace.h>

#ifndef MAX_KEYS
#define MAX_KEYS 16384
#endif
#ifndef HIST_KEYS
#define HIST_KEYS (MAX_KEYS * 8)
#endif
#ifndef PENDING_KEYS
#define PENDING_KEYS MAX_KEYS
#endif
#ifndef LOST_KEYS
#define LOST_KEYS PENDING_KEYS
#endif
#ifndef SLOTS
#define SLOTS 1024
#endif
_Static_assert((SLOTS & (SLOTS - 1)) == 0, "SLOTS must be a power of two");
#ifndef NEW_THREAD_PAGES
#define NEW_THREAD_PAGES 16  /* ring buffer size: 16 pages hold ~2,700 records */
#endif
#ifndef HIST_SUB_BITS
#error "HIST_SUB_BITS missing: pass kvmtop.histogram.c_defines()"
#endif
#define HIST_SUB (1ULL << HIST_SUB_BITS)
_Static_assert(HIST_NBUCKETS <= 256, "a bucket index must fit in a u8");

#define KVM_RUN_CMD 0xAE80
#define KVM_CREATE_VM_CMD 0xAE01
#define ERRNO_FLAG 0x80000000U    /* userspace code for errno < 0: ERRNO_FLAG | -errno */
#define NO_VCPU_ID 0xFFFFFFFFU

/* stat_key.kind: an exit's isa (1 VMX, 2 SVM), or one of these */
#define KIND_USERSPACE 0x10
#define KIND_HYPERCALL 0x11
#define KIND_REQUEST 0x12         /* `lost` only: code = the request bit */

/* stat_key.flags */
#define NO_LATENCY 1              /* counted without a latency (bucket 0 means nothing) */
#define WITH_HYPERCALL 2          /* an exit that made hypercall `nr`: one event of each */

/* counters[] (per CPU, never cleared: user space takes deltas) */
enum {
    C_DROP_EXITS,       /* events not recorded because `stats` (or `pending`) was full */
    C_DROP_USERSPACE,
    C_DROP_HYPERCALLS,
    C_DROP_REQUESTS,
    C_DROP_PENDING,     /* events counted without a latency: `pending` was full */
    C_DROP_INFO,
    C_DROP_LOST,        /* `lost` was full too: the drop is in the per-kind counter only */
    C_UNMATCHED_EXITS,
    C_UNMATCHED_ENTRIES,
    C_SEEN_EXITS,       /* these two tell user space whether kvm_exit fires on this host */
    C_SEEN_USERSPACE,
    C_LOST_NEW_THREADS, /* new_threads records the ring buffer had no room for */
    C_NR,
};

struct stat_key {   /* 20 bytes */
    u32 pid;
    u32 tid;
    u32 code;       /* exit_reason (VMX flag bits kept), KVM_EXIT_* code, hypercall nr */
    u32 nr;         /* WITH_HYPERCALL: the exit's hypercall nr (its latency is the exit's) */
    u8 kind;
    u8 bucket;      /* the latency's histogram bucket (histogram.py) */
    u8 flags;
    u8 pad;
};

struct stat_val {   /* 32 bytes: the events of one key, and their latencies */
    u64 count;
    u64 sum_ns;
    u64 min_ns;
    u64 max_ns;
};

struct lost_key {   /* a row that lost events to a full map */
    u32 pid;
    u32 tid;
    u32 code;       /* as in stat_key; the bit for KIND_REQUEST */
    u8 kind;
    u8 epoch;
    u8 pad[2];
};

struct pending {    /* one per vCPU thread (304 bytes): what is in flight, request bits */
    u64 exit_ns;    /* 0: no exit waiting for its entry */
    u64 us_ns;      /* 0: no userspace exit waiting for KVM_RUN */
    u32 exit_code;
    u32 us_code;
    u32 hc_nr;
    u32 vcpu_id;
    u32 pid;
    u8 exit_kind;
    u8 has_hc;
    u8 gone;        /* the thread has exited: user space reads the counts once more, then frees */
    u8 pad;
    u64 tid;        /* the owner (in `slots`, 0: free); u64 for cmpxchg */
    u32 req[64];    /* exits with each request bit set, since the thread's first event (wraps) */
};

struct info {       /* written once per thread, read (not cleared) by user space */
    u32 pid;
    u32 vcpu_id;
    char comm[16];  /* the thread's name when first seen: survives the thread */
};

/* `stats` is two hash maps, stats[epoch] the one new events go to; the other slot holds an
 * empty map. Each poll user space flips `epoch`, lets the programs still running finish, then
 * reads the map it swapped out, which nothing writes any more: an update can never land in an
 * element being read (a drain of the map being written loses the increments made between a
 * lookup and the delete), and nothing is deleted element by element: right after the read a
 * new empty map takes that slot and the kernel frees the read one whole. `stats_template` only
 * gives the inner maps' type, sizes and flags (user space makes the maps themselves, of
 * HIST_KEYS entries: bpf/swapped.py); a hash map's inner maps may differ from it in size, so
 * it holds one entry. */
BPF_F_TABLE("hash", struct stat_key, struct stat_val, stats_template, 1, BPF_F_NO_PREALLOC);
BPF_ARRAY_OF_MAPS(stats, "stats_template", 2);
/* Which of `stats` and which half of `lost` (the keys' `epoch`) new events go to. */
BPF_ARRAY(epoch, u32, 1);
BPF_F_TABLE("hash", struct lost_key, u64, lost, LOST_KEYS, BPF_F_NO_PREALLOC);
/* Pairing state. A thread's first event claims slot tid % SLOTS if it is free: an array
 * lookup is a few instructions where a hash lookup is a call. A thread whose slot is taken
 * keeps its state in `pending`. When the thread exits (HAVE_THREAD_EXIT) its state is
 * marked gone; user space frees it after reading its last counts. Nothing is evicted.
 * User space reads `slots` through shared memory: no copy, no system call per poll. */
BPF_F_TABLE("array", u32, struct pending, slots, SLOTS, BPF_F_MMAPABLE);  /* user space maps it */
BPF_F_TABLE("hash", u32, struct pending, pending, PENDING_KEYS, BPF_F_NO_PREALLOC);
BPF_PERCPU_ARRAY(fresh_state, struct pending, 1);    /* never written: all zeros */
BPF_TABLE("lru_hash", u32, struct info, info, PENDING_KEYS);
BPF_PERCPU_ARRAY(counters, u64, C_NR);

struct new_thread { /* one ring buffer record per new thread, never per event */
    u32 pid;
    u32 tid;
    char comm[16];
};
BPF_RINGBUF_OUTPUT(new_threads, NEW_THREAD_PAGES);

/* per-CPU: no other CPU writes it, and these probes do not nest on one CPU */
static __always_inline void bump(u32 idx)
{
    u64 *c = counters.lookup(&idx);
    if (c)
        (*c)++;
}

/* floor(log2(v)) for v > 0, without loops */
static __always_inline u32 log2_u64(u64 v)
{
    u32 r, shift;
    r = (v > 0xFFFFFFFFULL) << 5; v >>= r;
    shift = (v > 0xFFFF) << 4; v >>= shift; r |= shift;
    shift = (v > 0xFF) << 3; v >>= shift; r |= shift;
    shift = (v > 0xF) << 2; v >>= shift; r |= shift;
    shift = (v > 0x3) << 1; v >>= shift; r |= shift;
    return r | (u32)(v >> 1);
}

/* exactly kvmtop.histogram.bucket_index() */
static __always_inline u32 bucket_index(u64 v)
{
    if (v < HIST_SUB)
        return v;
    u32 e = log2_u64(v);
    if (e >= HIST_MAX_EXP)
        return HIST_NBUCKETS - 1;
    return (e - HIST_SUB_BITS + 1) * HIST_SUB + (u32)(v >> (e - HIST_SUB_BITS)) - HIST_SUB;
}

static __always_inline u32 drop_counter(u8 kind)
{
    if (kind == KIND_USERSPACE)
        return C_DROP_USERSPACE;
    if (kind == KIND_HYPERCALL)
        return C_DROP_HYPERCALLS;
    if (kind == KIND_REQUEST)
        return C_DROP_REQUESTS;
    return C_DROP_EXITS;
}

/* one event that no map could take: counted per kind, and per row while `lost` has room */
static __always_inline void drop(u8 ep, u32 pid, u32 tid, u8 kind, u32 code)
{
    bump(drop_counter(kind));
    struct lost_key k = {.pid = pid, .tid = tid, .code = code, .kind = kind, .epoch = ep};
    u64 *n = lost.lookup(&k);
    if (n) {
        __sync_fetch_and_add(n, 1);
        return;
    }
    u64 one = 1;
    if (lost.insert(&k, &one) != 0)
        bump(C_DROP_LOST);
}

/* one event of (kind, code) [and hypercall nr], with its latency unless NO_LATENCY */
static __always_inline void record(u8 ep, u32 pid, u32 tid, u8 kind, u32 code, u32 nr, u64 ns, u8 flags)
{
    struct stat_key k = {.pid = pid, .tid = tid, .code = code, .nr = nr, .kind = kind,
                         .flags = flags, .bucket = (flags & NO_LATENCY) ? 0 : bucket_index(ns)};
    u32 slot = ep;
    void *map = stats.lookup(&slot);    /* inlined by the verifier, as an array lookup */
    struct stat_val *v = map ? bpf_map_lookup_elem(map, &k) : NULL;
    if (v) {            /* only this thread writes its keys: no atomics needed */
        v->count++;
        v->sum_ns += ns;
        if (ns < v->min_ns)
            v->min_ns = ns;
        if (ns > v->max_ns)
            v->max_ns = ns;
        return;
    }
    struct stat_val init = {.count = 1, .sum_ns = ns, .min_ns = ns, .max_ns = ns};
    /* (no map: never, user space fills both slots before the programs run; it would count as full) */
    if (!map || bpf_map_update_elem(map, &k, &init, BPF_NOEXIST) != 0) {
        drop(ep, pid, tid, kind, code);
        if (flags & WITH_HYPERCALL)
            drop(ep, pid, tid, KIND_HYPERCALL, nr);
    }
}

static __always_inline u64 since(u64 start, u64 now)
{
    u64 d = now - start;
    return (s64)d < 0 ? 0 : d;
}

/* the thread's pending exit (and its hypercall), with latency ns or NO_LATENCY */
static __always_inline void record_exit(u8 ep, u32 pid, u32 tid, struct pending *p, u64 ns, u8 flags)
{
    u32 nr = 0;
    if (p->has_hc) {
        flags |= WITH_HYPERCALL;
        nr = p->hc_nr;
    }
    record(ep, pid, tid, p->exit_kind, p->exit_code, nr, ns, flags);
}

static __always_inline void info_put(u32 pid, u32 tid, u32 vcpu_id)
{
    struct info i = {.pid = pid, .vcpu_id = vcpu_id};
    bpf_get_current_comm(&i.comm, sizeof(i.comm));
    if (info.update(&tid, &i) != 0)
        bump(C_DROP_INFO);
}

static __always_inline struct pending *slot_of(u32 tid)
{
    u32 i = tid & (SLOTS - 1);
    return slots.lookup(&i);
}

/* the thread's pairing state, if it has one */
static __always_inline struct pending *state_of(u32 tid)
{
    struct pending *p = slot_of(tid);
    if (p && p->tid == tid)
        return p;
    return pending.lookup(&tid);
}

/* tell user space about a new thread (a VM that may exit before the next poll), or with
 * tid 0 about a new VM (KVM_CREATE_VM, issued before any vCPU runs) */
static __always_inline void announce_thread(u32 pid, u32 tid)
{
    struct new_thread n = {.pid = pid, .tid = tid};
    bpf_get_current_comm(&n.comm, sizeof(n.comm));
    if (new_threads.ringbuf_output(&n, sizeof(n), 0) != 0)
        bump(C_LOST_NEW_THREADS);
}

/* the thread's pairing state, made at its first event; a new thread also gets its info entry */
static __always_inline struct pending *pending_get(u32 pid, u32 tid)
{
    struct pending *p = state_of(tid);
    if (p) {
        if (p->gone) {  /* a new thread with a gone one's tid, before user space freed it */
            p->gone = 0;
            p->pid = pid;
            announce_thread(pid, tid);
        }
        return p;
    }
    p = slot_of(tid);
    if (!p || __sync_val_compare_and_swap(&p->tid, 0, (u64)tid) != 0) {
        u32 zero = 0;   /* the slot is taken: a `pending` entry */
        struct pending *fresh = fresh_state.lookup(&zero);
        if (fresh)
            pending.update(&tid, fresh);
        p = pending.lookup(&tid);
        if (!p) {
            bump(C_DROP_PENDING);
            info_put(pid, tid, NO_VCPU_ID);
            return NULL;
        }
        p->tid = tid;
    }
    /* a free slot, or a fresh entry, is all zeros but for tid */
    p->pid = pid;
    p->vcpu_id = NO_VCPU_ID;
    info_put(pid, tid, NO_VCPU_ID);
    announce_thread(pid, tid);
    return p;
}

#ifdef FILTER_PID
#define SKIP_PID(pid) ((pid) != FILTER_PID)
#else
#define SKIP_PID(pid) 0
#endif

static __always_inline u32 *epoch_now(void)
{
    u32 zero = 0;
    return epoch.lookup(&zero);
}

/* the `stats` map and half of `lost` this event goes to: read once per event, at the top of its handler
 * (a lookup inside the helpers would double the verifier's paths, up to its limit) */
#define EPOCH_OR_RETURN(ep)                          \
    u32 *ep##_at = epoch_now();                      \
    if (!ep##_at)   /* never: an array of one */     \
        return;                                      \
    u8 ep = *ep##_at;

/* ------------------------------------------------------------------ handlers */

/* the pending exit never saw its entry: it counts, without a latency */
static __always_inline void exit_unmatched(u8 ep, u32 pid, u32 tid, struct pending *p)
{
    bump(C_UNMATCHED_EXITS);
    record_exit(ep, pid, tid, p, 0, NO_LATENCY);
}

static __always_inline void handle_exit(u64 pid_tgid, u64 now, u32 isa, u32 reason,
                                        u64 reqs, u32 vcpu_id)
{
    u32 pid = pid_tgid >> 32, tid = (u32)pid_tgid;
    if (SKIP_PID(pid))
        return;
    u8 kind = isa & 0x0f;          /* never collides with KIND_USERSPACE, KIND_HYPERCALL */
    bump(C_SEEN_EXITS);
    EPOCH_OR_RETURN(ep);

    struct pending *p = pending_get(pid, tid);
    if (p) {
        if (p->exit_ns)
            exit_unmatched(ep, pid, tid, p);
        p->exit_ns = now;
        p->exit_code = reason;
        p->exit_kind = kind;
        p->has_hc = 0;
        if (p->vcpu_id != vcpu_id) {    /* once per thread */
            struct info *i = info.lookup(&tid);
            if (i)
                i->vcpu_id = vcpu_id;
            else
                info_put(pid, tid, vcpu_id);
            p->vcpu_id = vcpu_id;
        }
    } else {
        record(ep, pid, tid, kind, reason, 0, 0, NO_LATENCY);
    }

#ifdef HAVE_REQUESTS
    /* each set bit, lowest first; at most 64 */
    for (int i = 0; i < 64 && reqs; i++) {
        u64 low = reqs & -reqs;
        u32 bit = log2_u64(low) & 63;
        reqs ^= low;
        if (p)
            p->req[bit]++;
        else
            drop(ep, pid, tid, KIND_REQUEST, bit);
    }
#endif
}

static __always_inline void userspace_done(u8 ep, u32 pid, u32 tid, struct pending *p, u64 now)
{
    if (p->us_ns) {
        record(ep, pid, tid, KIND_USERSPACE, p->us_code, 0, since(p->us_ns, now), 0);
        p->us_ns = 0;
    }
}

static __always_inline void handle_entry(u64 pid_tgid, u64 now)
{
    u32 pid = pid_tgid >> 32, tid = (u32)pid_tgid;
    if (SKIP_PID(pid))
        return;
    struct pending *p = state_of(tid);
    if (!p) {
        bump(C_UNMATCHED_ENTRIES);
        return;
    }
    EPOCH_OR_RETURN(ep);
    userspace_done(ep, pid, tid, p, now);
    if (!p->exit_ns) {
        bump(C_UNMATCHED_ENTRIES);
        return;
    }
    record_exit(ep, pid, tid, p, since(p->exit_ns, now), 0);
    p->exit_ns = 0;
    p->has_hc = 0;
}

static __always_inline void handle_hypercall(u64 pid_tgid, u64 nr)
{
    u32 pid = pid_tgid >> 32, tid = (u32)pid_tgid;
    if (SKIP_PID(pid))
        return;
    EPOCH_OR_RETURN(ep);
    struct pending *p = state_of(tid);
    if (p && p->exit_ns && !p->has_hc) {   /* counted with its exit's latency, at the entry */
        p->hc_nr = nr;
        p->has_hc = 1;
    } else {
        record(ep, pid, tid, KIND_HYPERCALL, (u32)nr, 0, 0, NO_LATENCY);
    }
}

static __always_inline void handle_userspace_exit(u64 pid_tgid, u64 now, u32 reason, s32 err)
{
    u32 pid = pid_tgid >> 32, tid = (u32)pid_tgid;
    if (SKIP_PID(pid))
        return;
    u32 code = err < 0 ? (ERRNO_FLAG | (u32)(-err)) : reason;
    bump(C_SEEN_USERSPACE);
    EPOCH_OR_RETURN(ep);
    struct pending *p = pending_get(pid, tid);
    if (!p) {
        record(ep, pid, tid, KIND_USERSPACE, code, 0, 0, NO_LATENCY);
        return;
    }
    if (p->us_ns)   /* the previous one never saw its KVM_RUN */
        record(ep, pid, tid, KIND_USERSPACE, p->us_code, 0, 0, NO_LATENCY);
    p->us_ns = now;
    p->us_code = code;
}

static __always_inline void handle_ioctl(u64 pid_tgid, u64 now, u64 cmd)
{
    u32 pid = pid_tgid >> 32, tid = (u32)pid_tgid;
    if (SKIP_PID(pid))
        return;
    if (cmd != KVM_RUN_CMD) {
        if (cmd == KVM_CREATE_VM_CMD)   /* a new VM: named now, long before its first exit */
            announce_thread(pid, 0);
        return;
    }
    EPOCH_OR_RETURN(ep);
    struct pending *p = state_of(tid);
    if (p)
        userspace_done(ep, pid, tid, p, now);
}

/* A thread exits: what it still had in flight counts (without a latency); its state is
 * marked gone, for user space to read its last request counts and free it. */
static __always_inline void handle_thread_exit(u64 pid_tgid)
{
    u32 pid = pid_tgid >> 32, tid = (u32)pid_tgid;
    struct pending *p = state_of(tid);
    if (!p || p->gone)
        return;
    EPOCH_OR_RETURN(ep);
    if (p->exit_ns)
        exit_unmatched(ep, pid, tid, p);
    if (p->us_ns)
        record(ep, pid, tid, KIND_USERSPACE, p->us_code, 0, 0, NO_LATENCY);
    p->exit_ns = 0;
    p->us_ns = 0;
    p->gone = 1;
}

/* ------------------------------------------------------------------ wrappers */

#ifndef KVMTOP_TEST

TRACEPOINT_PROBE(kvm, kvm_exit)
{
    u64 reqs = 0;
    u32 vcpu_id = NO_VCPU_ID;
#ifdef HAVE_REQUESTS
    reqs = args->requests;
#endif
#ifdef HAVE_EXIT_VCPU_ID
    vcpu_id = args->vcpu_id;
#endif
    handle_exit(bpf_get_current_pid_tgid(), bpf_ktime_get_ns(), args->isa,
                args->exit_reason, reqs, vcpu_id);
    return 0;
}

#ifdef RAW_ENTRY
/* TP_PROTO(struct kvm_vcpu *vcpu[, bool force_immediate_exit]): no argument is needed */
RAW_TRACEPOINT_PROBE(kvm_entry)
{
    handle_entry(bpf_get_current_pid_tgid(), bpf_ktime_get_ns());
    return 0;
}
#else
TRACEPOINT_PROBE(kvm, kvm_entry)
{
    handle_entry(bpf_get_current_pid_tgid(), bpf_ktime_get_ns());
    return 0;
}
#endif

#ifdef HAVE_HYPERCALL
#ifdef RAW_HYPERCALL
/* TP_PROTO(unsigned long nr, unsigned long a0, a1, a2, a3) */
RAW_TRACEPOINT_PROBE(kvm_hypercall)
{
    handle_hypercall(bpf_get_current_pid_tgid(), ctx->args[0]);
    return 0;
}
#else
TRACEPOINT_PROBE(kvm, kvm_hypercall)
{
    handle_hypercall(bpf_get_current_pid_tgid(), args->nr);
    return 0;
}
#endif
#endif

#ifdef RAW_USERSPACE_EXIT
/* TP_PROTO(__u32 reason, int errno): an int arrives zero-extended, (s32) restores the sign */
RAW_TRACEPOINT_PROBE(kvm_userspace_exit)
{
    handle_userspace_exit(bpf_get_current_pid_tgid(), bpf_ktime_get_ns(), (u32)ctx->args[0],
                          (s32)ctx->args[1]);
    return 0;
}
#else
TRACEPOINT_PROBE(kvm, kvm_userspace_exit)
{
    handle_userspace_exit(bpf_get_current_pid_tgid(), bpf_ktime_get_ns(), args->reason,
                          args->errno);
    return 0;
}
#endif

#ifdef HAVE_IOCTL
/* The start of KVM_RUN, as the VMM issues it. Measured and not used: kvm:kvm_fpu(1) (x86,
 * raw) fires on every KVM_RUN before the guest runs and spares the host's other syscalls the
 * tracing path, but only after vcpu_load and the FPU swap (~4.5 us on a PVM host), which
 * round trips would then include; a raw sys_enter runs BPF on every syscall of the host
 * (getppid: +73 ns, against +40 ns with this probe). */
TRACEPOINT_PROBE(syscalls, sys_enter_ioctl)
{
    if (args->cmd != KVM_RUN_CMD && args->cmd != KVM_CREATE_VM_CMD)  /* every ioctl on the host */
        return 0;                                                      /* passes here: leave early */
    handle_ioctl(bpf_get_current_pid_tgid(), bpf_ktime_get_ns(), args->cmd);
    return 0;
}
#endif

#ifdef HAVE_THREAD_EXIT
#ifdef RAW_THREAD_EXIT
/* TP_PROTO(struct task_struct *p[, bool group_dead]): runs in the exiting thread, no argument needed */
RAW_TRACEPOINT_PROBE(sched_process_exit)
{
    handle_thread_exit(bpf_get_current_pid_tgid());
    return 0;
}
#else
TRACEPOINT_PROBE(sched, sched_process_exit)
{
    handle_thread_exit(bpf_get_current_pid_tgid());
    return 0;
}
#endif
#endif

#else /* KVMTOP_TEST: every value, pid_tgid and time included, comes from ctx->args[] */

int test_exit(struct bpf_raw_tracepoint_args *ctx)
{
    handle_exit(ctx->args[0], ctx->args[1], ctx->args[2], ctx->args[3], ctx->args[4],
                ctx->args[5]);
    return 0;
}

int test_entry(struct bpf_raw_tracepoint_args *ctx)
{
    handle_entry(ctx->args[0], ctx->args[1]);
    return 0;
}

int test_hypercall(struct bpf_raw_tracepoint_args *ctx)
{
    handle_hypercall(ctx->args[0], ctx->args[2]);
    return 0;
}

int test_userspace_exit(struct bpf_raw_tracepoint_args *ctx)
{
    handle_userspace_exit(ctx->args[0], ctx->args[1], ctx->args[2], (s32)ctx->args[3]);
    return 0;
}

int test_ioctl(struct bpf_raw_tracepoint_args *ctx)
{
    handle_ioctl(ctx->args[0], ctx->args[1], ctx->args[2]);
    return 0;
}

int test_thread_exit(struct bpf_raw_tracepoint_args *ctx)
{
    handle_thread_exit(ctx->args[0]);
    return 0;
}

#endif

/* ------------------------------------------------------------------ I/O (HAVE_IO)
 * PIO ports and MMIO addresses by direction, as `perf kvm stat --event=ioport|mmio`: one
 * count per access in `io`, keyed per thread, read and cleared by user space each interval.
 * A read that goes out to the VMM shows twice in kvm_mmio, as "unsatisfied-read" then "read"
 * when it completes: only the latter is counted, so every access counts once (as in
 * `kvmtop report`). The probes are attached only while a screen shows I/O, or with --io
 * (Program.set_io): they cost nothing otherwise. */
#ifdef HAVE_IO
#ifndef IO_KEYS
#define IO_KEYS MAX_KEYS
#endif
#define IO_PIO 0
#define IO_MMIO 1
#define MMIO_UNSATISFIED_READ 0
#define MMIO_WRITE 2

struct io_key {     /* 24 bytes */
    u32 pid;
    u32 tid;
    u64 addr;       /* the port, or the guest-physical address */
    u8 space;       /* IO_PIO, IO_MMIO */
    u8 write;       /* 1: a write (out), 0: a read (in) */
    u8 pad[6];
};

BPF_F_TABLE("hash", struct io_key, u64, io, IO_KEYS, BPF_F_NO_PREALLOC);
BPF_PERCPU_ARRAY(io_drops, u64, 1);   /* accesses `io` had no room for (never cleared) */

static __always_inline void handle_io(u64 pid_tgid, u32 space, u32 write, u64 addr)
{
    u32 pid = pid_tgid >> 32;
    if (SKIP_PID(pid))
        return;
    struct io_key k = {.pid = pid, .tid = (u32)pid_tgid, .addr = addr, .space = space, .write = write};
    u64 *n = io.lookup(&k);
    if (n) {            /* only this thread writes its keys: no atomics needed */
        (*n)++;
        return;
    }
    u64 one = 1;
    if (io.insert(&k, &one) != 0) {
        u32 zero = 0;
        u64 *d = io_drops.lookup(&zero);
        if (d)
            (*d)++;
    }
}

#ifndef KVMTOP_TEST
TRACEPOINT_PROBE(kvm, kvm_pio)
{
    handle_io(bpf_get_current_pid_tgid(), IO_PIO, args->rw != 0, args->port);
    return 0;
}

TRACEPOINT_PROBE(kvm, kvm_mmio)
{
    if (args->type == MMIO_UNSATISFIED_READ)
        return 0;
    handle_io(bpf_get_current_pid_tgid(), IO_MMIO, args->type == MMIO_WRITE, args->gpa);
    return 0;
}
#else
int test_io(struct bpf_raw_tracepoint_args *ctx)
{
    handle_io(ctx->args[0], ctx->args[1], ctx->args[2], ctx->args[3]);
    return 0;
}
#endif
#endif /* HAVE_IO */
