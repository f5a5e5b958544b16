// SPDX-License-Identifier: GPL-2.0
/* A typed __ksym variable: the per-CPU int bpf_prog_active, resolved to a
 * BTF id in the kernel's BTF (ld_imm64 BPF_PSEUDO_BTF_ID). The kernel then
 * needs its address from kallsyms, which data symbols only have with
 * CONFIG_KALLSYMS_ALL=y: loading fails with ENOENT on the test kernel. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

extern const int bpf_prog_active __ksym;

__s32 prog_active;

SEC("xdp")
int xdp_ksym_typed(struct xdp_md *ctx)
{
	const int *active = bpf_this_cpu_ptr(&bpf_prog_active);

	prog_active = *active;
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
