// SPDX-License-Identifier: GPL-2.0
/* SEC("license") and the legacy SEC("version") kernel version word. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("kprobe/do_sys_openat2")
int versioned_kprobe(void *ctx)
{
	return 0;
}

SEC("socket")
int versioned_socket(struct __sk_buff *skb)
{
	return skb->len;
}

char _license[] SEC("license") = "GPL";
/* KERNEL_VERSION(6, 18, 0) = 0x00061200 */
__u32 _version SEC("version") = KERNEL_VERSION(6, 18, 0);
