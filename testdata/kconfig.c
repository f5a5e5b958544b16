// SPDX-License-Identifier: GPL-2.0
/* extern .kconfig variables, untyped __ksym variables (present, and weak
 * missing) and kfuncs. A typed __ksym variable is in ksym_typed.c. Builds against hand-written declarations, or
 * with -DUSE_VMLINUX_H -I<dir> against a generated vmlinux.h. */
#ifdef USE_VMLINUX_H
#include "vmlinux.h"
#else
#include <stdbool.h>
#include <linux/bpf.h>

struct task_struct {
	int pid;
} __attribute__((preserve_access_index));
#endif /* USE_VMLINUX_H */

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

/* .kconfig: filled in by the loader from the kernel's config */
extern int LINUX_KERNEL_VERSION __kconfig;
extern bool CONFIG_BPF_SYSCALL __kconfig __weak;
extern int CONFIG_HZ __kconfig __weak;
extern enum libbpf_tristate CONFIG_NET_CLS_BPF __kconfig __weak;
extern bool CONFIG_EBPFSPEC_NO_SUCH_OPTION __kconfig __weak; /* stays 0 */

/* .ksyms */
extern const void _stext __ksym;                         /* address from /proc/kallsyms */
extern const void ebpfspec_no_such_symbol __ksym __weak; /* missing: address 0 */

/* kfuncs */
extern struct task_struct *bpf_task_acquire(struct task_struct *p) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;

/* .bss, written by the programs */
__u32 kernel_version;
__u32 bpf_syscall;
__u32 hz;
__u32 cls_bpf;
__u32 no_such_option;
__u64 stext_addr;
__u64 missing_addr;
__s32 acquired_pid;

/* Runnable with BPF_PROG_TEST_RUN: copies the externs into .bss. */
SEC("xdp")
int xdp_kconfig(struct xdp_md *ctx)
{
	kernel_version = LINUX_KERNEL_VERSION;
	bpf_syscall = CONFIG_BPF_SYSCALL;
	hz = CONFIG_HZ;
	cls_bpf = CONFIG_NET_CLS_BPF;
	no_such_option = CONFIG_EBPFSPEC_NO_SUCH_OPTION;
	stext_addr = (__u64)&_stext;
	missing_addr = (__u64)&ebpfspec_no_such_symbol;
	return XDP_PASS;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(kfunc_switch, unsigned long preempt, struct task_struct *prev,
	     struct task_struct *next)
{
	struct task_struct *t = bpf_task_acquire(next);

	if (!t)
		return 0;
	acquired_pid = t->pid;
	bpf_task_release(t);
	return 0;
}

char _license[] SEC("license") = "GPL";
