// SPDX-License-Identifier: GPL-2.0
/* One program per common libbpf section name, static and global
 * subprograms, a bpf_loop callback (BPF_PSEUDO_FUNC), a bpf_printk string
 * (.rodata.str1.1) and a tail-call pair. Everything here loads on 6.18;
 * the programs that need BTF trampolines are in fentry.c. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 8);
} calls SEC(".maps");

/* Static subprogram, called from xdp_prog and socket_prog. */
static __noinline int bump(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&calls, &slot);

	if (!v)
		return 0;
	__sync_fetch_and_add(v, 1);
	return 1;
}

/* Global function: verified on its own by the kernel (BTF func linkage
 * global), called from classifier_prog and cgroup_skb_prog. */
__noinline int global_mix(__u32 a, __u32 b)
{
	return (a * 31 + b) & 0xff;
}

static int loop_cb(__u32 index, void *ctx)
{
	__u64 *sum = ctx;

	*sum += index;
	return 0;
}

SEC("xdp")
int xdp_prog(struct xdp_md *ctx)
{
	bump(0);
	return XDP_PASS;
}

SEC("socket")
int socket_prog(struct __sk_buff *skb)
{
	bump(1);
	return 0;
}

SEC("tc")
int tc_prog(struct __sk_buff *skb)
{
	__u64 sum = 0;

	/* loop_cb is passed as a function pointer: BPF_PSEUDO_FUNC ld_imm64 */
	bpf_loop(4, loop_cb, &sum, 0);
	skb->mark = (__u32)sum;
	return 0; /* TC_ACT_OK */
}

SEC("classifier")
int classifier_prog(struct __sk_buff *skb)
{
	return global_mix(skb->len, skb->protocol) ? 0 : 2; /* TC_ACT_OK : TC_ACT_SHOT */
}

SEC("tracepoint/syscalls/sys_enter_getpid")
int tracepoint_prog(void *ctx)
{
	bump(2);
	return 0;
}

SEC("kprobe/do_sys_openat2")
int kprobe_prog(void *ctx)
{
	bpf_printk("openat2 by %d", (__u32)bpf_get_current_pid_tgid());
	return 0;
}

SEC("kretprobe/do_sys_openat2")
int kretprobe_prog(void *ctx)
{
	bump(3);
	return 0;
}

SEC("raw_tracepoint/sys_enter")
int raw_tracepoint_prog(struct bpf_raw_tracepoint_args *ctx)
{
	if (ctx->args[1] == 39)
		bump(4);
	return 0;
}

SEC("tp_btf/sched_switch")
int tp_btf_prog(__u64 *ctx)
{
	bump(5);
	return 0;
}

SEC("cgroup_skb/ingress")
int cgroup_skb_prog(struct __sk_buff *skb)
{
	return global_mix(skb->len, 1) != 7; /* 1: allow, 0: drop */
}

/* Tail-call pair: tail_entry jumps to index 1 of tail_table. */
SEC("tc") int tail_target(struct __sk_buff *skb);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(max_entries, 2);
	__array(values, int (struct __sk_buff *));
} tail_table SEC(".maps") = {
	.values = { [1] = &tail_target },
};

SEC("tc")
int tail_entry(struct __sk_buff *skb)
{
	bpf_tail_call(skb, &tail_table, 1);
	return 0; /* TC_ACT_OK when the slot is empty */
}

SEC("tc")
int tail_target(struct __sk_buff *skb)
{
	return 2; /* TC_ACT_SHOT */
}

char _license[] SEC("license") = "GPL";
