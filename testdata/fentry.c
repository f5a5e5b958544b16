// SPDX-License-Identifier: GPL-2.0
/* Programs that attach through BTF trampolines / LSM hooks. They parse
 * fine but are not expected to load everywhere (EPERM on the test kernel),
 * so they live apart from programs.c. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct file;
struct filename;
struct open_how;

__u64 fentry_calls;
__u64 fexit_calls;
__s64 last_ret;
__u64 lsm_calls;

/* long do_sys_openat2(int dfd, const char __user *filename, struct open_how *how) */
SEC("fentry/do_sys_openat2")
int BPF_PROG(fentry_openat2, int dfd, const char *filename, struct open_how *how)
{
	__sync_fetch_and_add(&fentry_calls, 1);
	return 0;
}

SEC("fexit/do_sys_openat2")
int BPF_PROG(fexit_openat2, int dfd, const char *filename, struct open_how *how, long ret)
{
	__sync_fetch_and_add(&fexit_calls, 1);
	last_ret = ret;
	return 0;
}

/* int security_file_open(struct file *file) */
SEC("lsm/file_open")
int BPF_PROG(lsm_file_open, struct file *file, int ret)
{
	__sync_fetch_and_add(&lsm_calls, 1);
	return ret; /* keep the previous decision */
}

/* Replaces a global function of another program (needs its fd to load). */
SEC("freplace/global_mix")
int freplace_mix(__u32 a, __u32 b)
{
	return 1;
}

char _license[] SEC("license") = "GPL";
