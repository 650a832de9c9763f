// SPDX-License-Identifier: GPL-2.0
/*
 * kvmtop: what KVM guests cost the host, aggregated in the kernel.
 *
 * Per vCPU thread (tid):
 *   kvm_exit  -> next kvm_entry            = exit latency of that exit's (isa, reason)
 *   kvm_hypercall during a pending exit    = gets that exit's latency
 *   kvm_userspace_exit -> next KVM_RUN ioctl or kvm_entry = userspace round trip
 * Counts are taken when the event happens, latencies when the pair completes, so
 * exit counts never depend on pairing. Nothing is sent to user space per event:
 * kvmtop reads and clears the hash maps once per interval.
 *
 * cflags (see program.py): HIST_SUB_BITS, HIST_MAX_EXP, HIST_NBUCKETS (histogram.py),
 * MAX_KEYS, HIST_KEYS, PENDING_KEYS, HAVE_REQUESTS, HAVE_EXIT_VCPU_ID, HAVE_HYPERCALL,
 * HAVE_IOCTL, FILTER_PID, KVMTOP_TEST (raw-tracepoint test wrappers instead of probes),
 * RAW_USERSPACE_EXIT, RAW_ENTRY, RAW_HYPERCALL (raw tracepoint instead of the classic one).
 *
 * Raw tracepoints: the kernel passes the TP_PROTO arguments as ctx->args[] and fills no
 * trace record, so they cost less per event. Only events whose arguments are plain values
 * (or are not needed) use them; program.py checks in tracefs that the fields still match
 * the prototypes below and falls back to the classic probe otherwise. kvm_exit stays
 * classic: its values come from the vcpu struct, which only the trace record decodes.
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
#ifndef HIST_SUB_BITS
#error "HIST_SUB_BITS missing: pass kvmtop.histogram.c_defines()"
#endif
#define HIST_SUB (1ULL << HIST_SUB_BITS)
_Static_assert(HIST_NBUCKETS <= 256, "a bucket index must fit in a u8");

#define KVM_RUN_CMD 0xAE80
#define ERRNO_FLAG 0x80000000U    /* userspace code for errno < 0: ERRNO_FLAG | -errno */
#define NO_VCPU_ID 0xFFFFFFFFU

/* stat_key.kind: an exit's isa (1 VMX, 2 SVM), or one of these */
#define KIND_USERSPACE 0x10
#define KIND_HYPERCALL 0x11

/* counters[] (per CPU, never cleared: user space takes deltas) */
enum {
    C_DROP_STATS,
    C_DROP_HIST,
    C_DROP_REQUESTS,
    C_DROP_PENDING,
    C_DROP_INFO,
    C_UNMATCHED_EXITS,
    C_UNMATCHED_ENTRIES,
    C_SEEN_EXITS,
    C_SEEN_ENTRIES,
    C_SEEN_USERSPACE,
    C_SEEN_HYPERCALLS,
    C_SEEN_KVM_RUN,
    C_NR,
};

struct stat_key {
    u32 pid;
    u32 tid;
    u32 code;       /* exit_reason (VMX flag bits kept), KVM_EXIT_* code, hypercall nr */
    u8 kind;
    u8 pad[3];
};

struct stat_val {   /* 32 bytes */
    u64 count;      /* events, counted when they happen */
    u64 sum_ns;     /* latencies, recorded when the pair completes */
    u64 min_ns;     /* ~0 until a latency is recorded */
    u64 max_ns;
};

struct hist_key {
    u32 pid;
    u32 tid;
    u32 code;
    u8 kind;
    u8 bucket;
    u16 pad;
};

struct req_key {
    u32 pid;
    u32 tid;
    u32 bit;
};

struct pending {    /* one per vCPU thread (40 bytes) */
    u64 exit_ns;    /* 0: no exit waiting for its entry */
    u64 us_ns;      /* 0: no userspace exit waiting for KVM_RUN */
    u32 exit_code;
    u32 us_code;
    u32 hc_nr;
    u32 vcpu_id;
    u32 pid;        /* lets user space prune threads that are gone */
    u8 exit_kind;
    u8 has_hc;
    u8 pad[2];
};

struct info {       /* written once per thread, read (not cleared) by user space */
    u32 pid;
    u32 vcpu_id;
    char comm[16];  /* the thread's name when first seen: survives the thread */
};

BPF_F_TABLE("hash", struct stat_key, struct stat_val, stats, MAX_KEYS, BPF_F_NO_PREALLOC);
BPF_F_TABLE("hash", struct hist_key, u64, hist, HIST_KEYS, BPF_F_NO_PREALLOC);
BPF_F_TABLE("hash", struct req_key, u64, requests, MAX_KEYS, BPF_F_NO_PREALLOC);
BPF_TABLE("lru_hash", u32, struct pending, pending, PENDING_KEYS);
BPF_TABLE("lru_hash", u32, struct info, info, PENDING_KEYS);
BPF_PERCPU_ARRAY(counters, u64, C_NR);

static __always_inline void bump(u32 idx)
{
    u64 *c = counters.lookup(&idx);
    if (c)
        __sync_fetch_and_add(c, 1);
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

static __always_inline void count_event(u32 pid, u32 tid, u8 kind, u32 code)
{
    struct stat_key k = {.pid = pid, .tid = tid, .code = code, .kind = kind};
    struct stat_val *v = stats.lookup(&k);
    if (!v) {
        struct stat_val init = {.count = 1, .min_ns = ~0ULL};
        if (stats.insert(&k, &init) == 0)
            return;
        v = stats.lookup(&k);   /* lost a race with another CPU, or the map is full */
        if (!v) {
            bump(C_DROP_STATS);
            return;
        }
    }
    __sync_fetch_and_add(&v->count, 1);
}

static __always_inline void record_latency(u32 pid, u32 tid, u8 kind, u32 code, u64 ns)
{
    struct stat_key k = {.pid = pid, .tid = tid, .code = code, .kind = kind};
    struct stat_val *v = stats.lookup(&k);
    if (v) {
        __sync_fetch_and_add(&v->sum_ns, ns);
        if (ns < v->min_ns)     /* one thread updates its own keys: no real race */
            v->min_ns = ns;
        if (ns > v->max_ns)
            v->max_ns = ns;
    } else {
        struct stat_val init = {.sum_ns = ns, .min_ns = ns, .max_ns = ns};
        if (stats.insert(&k, &init) != 0)
            bump(C_DROP_STATS);
    }

    struct hist_key hk = {.pid = pid, .tid = tid, .code = code, .kind = kind,
                          .bucket = bucket_index(ns)};
    u64 *c = hist.lookup(&hk);
    if (c) {
        __sync_fetch_and_add(c, 1);
        return;
    }
    u64 one = 1;
    if (hist.insert(&hk, &one) == 0)
        return;
    c = hist.lookup(&hk);
    if (c)
        __sync_fetch_and_add(c, 1);
    else
        bump(C_DROP_HIST);
}

static __always_inline void info_put(u32 pid, u32 tid, u32 vcpu_id)
{
    struct info i = {.pid = pid, .vcpu_id = vcpu_id};
    bpf_get_current_comm(&i.comm, sizeof(i.comm));
    if (info.update(&tid, &i) != 0)
        bump(C_DROP_INFO);
}

/* the thread's pairing state; a new thread also gets its info entry */
static __always_inline struct pending *pending_get(u32 pid, u32 tid)
{
    struct pending *p = pending.lookup(&tid);
    if (p)
        return p;
    struct pending fresh = {.pid = pid, .vcpu_id = NO_VCPU_ID};
    pending.update(&tid, &fresh);
    p = pending.lookup(&tid);
    if (!p)
        bump(C_DROP_PENDING);
    info_put(pid, tid, NO_VCPU_ID);
    return p;
}

#ifdef FILTER_PID
#define SKIP_PID(pid) ((pid) != FILTER_PID)
#else
#define SKIP_PID(pid) 0
#endif

/* ------------------------------------------------------------------ handlers */

static __always_inline void handle_exit(u64 pid_tgid, u64 now, u32 isa, u32 reason,
                                        u64 reqs, u32 vcpu_id)
{
    u32 pid = pid_tgid >> 32, tid = (u32)pid_tgid;
    if (SKIP_PID(pid))
        return;
    u8 kind = isa & 0x0f;          /* never collides with KIND_USERSPACE, KIND_HYPERCALL */
    bump(C_SEEN_EXITS);
    count_event(pid, tid, kind, reason);

    struct pending *p = pending_get(pid, tid);
    if (p) {
        if (p->exit_ns)
            bump(C_UNMATCHED_EXITS);    /* the previous exit never saw its entry */
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
    }

#ifdef HAVE_REQUESTS
    /* one map update per set bit, lowest first; at most 64 */
    for (int i = 0; i < 64 && reqs; i++) {
        u64 low = reqs & -reqs;
        struct req_key rk = {.pid = pid, .tid = tid, .bit = log2_u64(low)};
        reqs ^= low;
        u64 *c = requests.lookup(&rk);
        if (c) {
            __sync_fetch_and_add(c, 1);
            continue;
        }
        u64 one = 1;
        if (requests.insert(&rk, &one) == 0)
            continue;
        c = requests.lookup(&rk);
        if (c)
            __sync_fetch_and_add(c, 1);
        else
            bump(C_DROP_REQUESTS);
    }
#endif
}

static __always_inline void userspace_done(u32 pid, u32 tid, struct pending *p, u64 now)
{
    if (p->us_ns) {
        u64 d = now - p->us_ns;
        record_latency(pid, tid, KIND_USERSPACE, p->us_code, (s64)d < 0 ? 0 : d);
        p->us_ns = 0;
    }
}

static __always_inline void handle_entry(u64 pid_tgid, u64 now)
{
    u32 pid = pid_tgid >> 32, tid = (u32)pid_tgid;
    if (SKIP_PID(pid))
        return;
    bump(C_SEEN_ENTRIES);
    struct pending *p = pending.lookup(&tid);
    if (!p) {
        bump(C_UNMATCHED_ENTRIES);
        return;
    }
    userspace_done(pid, tid, p, now);
    if (!p->exit_ns) {
        bump(C_UNMATCHED_ENTRIES);
        return;
    }
    u64 d = now - p->exit_ns;
    if ((s64)d < 0)
        d = 0;
    record_latency(pid, tid, p->exit_kind, p->exit_code, d);
    if (p->has_hc)
        record_latency(pid, tid, KIND_HYPERCALL, p->hc_nr, d);
    p->exit_ns = 0;
    p->has_hc = 0;
}

static __always_inline void handle_hypercall(u64 pid_tgid, u64 now, u64 nr)
{
    u32 pid = pid_tgid >> 32, tid = (u32)pid_tgid;
    if (SKIP_PID(pid))
        return;
    bump(C_SEEN_HYPERCALLS);
    count_event(pid, tid, KIND_HYPERCALL, (u32)nr);
    struct pending *p = pending.lookup(&tid);
    if (p && p->exit_ns) {
        p->hc_nr = nr;
        p->has_hc = 1;
    }
}

static __always_inline void handle_userspace_exit(u64 pid_tgid, u64 now, u32 reason, s32 err)
{
    u32 pid = pid_tgid >> 32, tid = (u32)pid_tgid;
    if (SKIP_PID(pid))
        return;
    u32 code = err < 0 ? (ERRNO_FLAG | (u32)(-err)) : reason;
    bump(C_SEEN_USERSPACE);
    count_event(pid, tid, KIND_USERSPACE, code);
    struct pending *p = pending_get(pid, tid);
    if (p) {
        p->us_ns = now;
        p->us_code = code;
    }
}

static __always_inline void handle_ioctl(u64 pid_tgid, u64 now, u64 cmd)
{
    if (cmd != KVM_RUN_CMD)
        return;
    u32 pid = pid_tgid >> 32, tid = (u32)pid_tgid;
    if (SKIP_PID(pid))
        return;
    bump(C_SEEN_KVM_RUN);
    struct pending *p = pending.lookup(&tid);
    if (p)
        userspace_done(pid, tid, p, now);
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
    handle_hypercall(bpf_get_current_pid_tgid(), bpf_ktime_get_ns(), ctx->args[0]);
    return 0;
}
#else
TRACEPOINT_PROBE(kvm, kvm_hypercall)
{
    handle_hypercall(bpf_get_current_pid_tgid(), bpf_ktime_get_ns(), args->nr);
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
    if (args->cmd != KVM_RUN_CMD)   /* every ioctl on the host passes here: leave early */
        return 0;
    handle_ioctl(bpf_get_current_pid_tgid(), bpf_ktime_get_ns(), args->cmd);
    return 0;
}
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
    handle_hypercall(ctx->args[0], ctx->args[1], ctx->args[2]);
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

#endif
