// SPDX-License-Identifier: GPL-2.0
/* CO-RE: BPF_CORE_READ chains, field/type/enum relocations, a bitfield,
 * ___flavor structs and direct BTF-pointer loads.
 *
 * Builds against the small hand-written kernel declarations below, or with
 * -DUSE_VMLINUX_H -I<dir> against a generated <dir>/vmlinux.h. */
#ifdef USE_VMLINUX_H
#include "vmlinux.h"
#else
#include <linux/bpf.h>

/* Only the fields used here, named as in the kernel; the order and
 * offsets do not matter, CO-RE relocations fix them up at load time. */
struct task_struct {
	unsigned int __state;
	unsigned int flags;
	unsigned int in_execve: 1;
	int pid;
	int tgid;
	struct task_struct *real_parent;
	char comm[16];
} __attribute__((preserve_access_index));

enum pid_type {
	PIDTYPE_PID,
	PIDTYPE_TGID,
	PIDTYPE_PGID,
	PIDTYPE_SID,
	PIDTYPE_MAX,
};
#endif /* USE_VMLINUX_H */

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

/* Flavors: the part after ___ is ignored when matching kernel types. */
struct task_struct___old {
	long state; /* renamed to __state in Linux 5.14 */
} __attribute__((preserve_access_index));

struct task_struct___ids {
	int pid;
	int tgid;
} __attribute__((preserve_access_index));

/* No such type in any kernel. */
struct ebpfspec_missing_type {
	int nothing;
} __attribute__((preserve_access_index));

struct core_result {
	__u32 runs;
	__s32 pid;            /* current->pid */
	__s32 tgid;           /* current->tgid, read through task_struct___ids */
	__s32 parent_tgid;    /* current->real_parent->tgid */
	__u32 state;          /* current->__state */
	__u32 flags;          /* current->flags */
	__u32 in_execve;      /* bitfield current->in_execve */
	__u32 has_pid;        /* field_exists(task_struct.pid): 1 */
	__u32 has_old_state;  /* field_exists(task_struct___old.state): 0 on >= 5.14 */
	__u32 has_task;       /* type_exists(struct task_struct): 1 */
	__u32 has_missing;    /* type_exists(struct ebpfspec_missing_type): 0 */
	__u32 pidtype_sid;    /* enum_value(enum pid_type, PIDTYPE_SID): 3 */
	__u32 has_pidtype_max;/* enum_value_exists(enum pid_type, PIDTYPE_MAX): 1 */
	__u32 comm_size;      /* field_size(task_struct.comm): 16 */
	char comm[16];        /* current->comm */
};

struct core_result result;
__s32 switch_next_pid;
__u64 switch_count;

/* Does not read its context: runnable with BPF_PROG_TEST_RUN and an empty
 * ctx, which fills `result` from the calling task. */
SEC("raw_tracepoint/sys_enter")
int core_read(void *ctx)
{
	struct task_struct *task = (void *)bpf_get_current_task();
	struct task_struct___ids *ids = (void *)task;

	result.runs++;
	result.pid = BPF_CORE_READ(task, pid);
	result.tgid = BPF_CORE_READ(ids, tgid);
	result.parent_tgid = BPF_CORE_READ(task, real_parent, tgid);
	result.state = BPF_CORE_READ(task, __state);
	result.flags = BPF_CORE_READ(task, flags);
	result.in_execve = BPF_CORE_READ_BITFIELD_PROBED(task, in_execve);
	result.has_pid = bpf_core_field_exists(task->pid);
	result.has_old_state = bpf_core_field_exists(((struct task_struct___old *)task)->state);
	result.has_task = bpf_core_type_exists(struct task_struct);
	result.has_missing = bpf_core_type_exists(struct ebpfspec_missing_type);
	result.pidtype_sid = bpf_core_enum_value(enum pid_type, PIDTYPE_SID);
	result.has_pidtype_max = bpf_core_enum_value_exists(enum pid_type, PIDTYPE_MAX);
	result.comm_size = bpf_core_field_size(task->comm);
	BPF_CORE_READ_STR_INTO(&result.comm, task, comm);
	return 0;
}

/* tp_btf arguments are trusted BTF pointers: next->pid is a plain load
 * whose offset is CO-RE relocated. */
SEC("tp_btf/sched_switch")
int BPF_PROG(core_switch, unsigned long preempt, struct task_struct *prev,
	     struct task_struct *next)
{
	switch_next_pid = next->pid;
	switch_count++;
	return 0;
}

char _license[] SEC("license") = "GPL";
