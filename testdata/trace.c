// SPDX-License-Identifier: GPL-2.0
/* Counts getpid() calls per pid and emits one event per call into a ring
 * buffer and a perf event array. Two entry points: the syscalls tracepoint
 * and raw_tracepoint/sys_enter filtered by syscall number. */
#include <stdbool.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct event {
	__u32 pid;   /* thread id (lower half of bpf_get_current_pid_tgid) */
	__u32 tgid;  /* process id */
	__u64 count; /* calls so far for this pid */
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);   /* tgid */
	__type(value, __u64); /* number of getpid() calls */
	__uint(max_entries, 1024);
} getpid_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096 * 16);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} perf_events SEC(".maps");

/* getpid's syscall number, x86_64 by default (172 on arm64). */
const volatile long getpid_nr = 39;
/* Set to true to also emit into perf_events. */
const volatile bool use_perf = false;

/* Layout of syscalls/sys_enter_* tracepoint records. */
struct syscall_enter_ctx {
	__u64 common; /* common_type, common_flags, common_preempt_count, common_pid */
	long nr;
	unsigned long args[6];
};

static __always_inline int record(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	__u64 one = 1, *count, n = 1;
	struct event *e;

	count = bpf_map_lookup_elem(&getpid_calls, &tgid);
	if (count)
		n = __sync_add_and_fetch(count, 1);
	else
		bpf_map_update_elem(&getpid_calls, &tgid, &one, BPF_NOEXIST);

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 0;
	e->pid = (__u32)id;
	e->tgid = tgid;
	e->count = n;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	if (use_perf)
		bpf_perf_event_output(ctx, &perf_events, BPF_F_CURRENT_CPU, e, sizeof(*e));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_getpid")
int tp_getpid(struct syscall_enter_ctx *ctx)
{
	return record(ctx);
}

/* args[0] is struct pt_regs *, args[1] the syscall number. */
SEC("raw_tracepoint/sys_enter")
int raw_getpid(struct bpf_raw_tracepoint_args *ctx)
{
	if ((long)ctx->args[1] != getpid_nr)
		return 0;
	return record(ctx);
}

char _license[] SEC("license") = "GPL";
