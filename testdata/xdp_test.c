// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/* Programs for BPF_PROG_TEST_RUN: a length filter that rewrites the packet,
 * a socket filter, and an XDP tail call. License "Dual MIT/GPL". */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define MIN_LEN 64

/* Packets shorter than MIN_LEN bytes: XDP_DROP. Otherwise byte 0 is
 * inverted (b ^ 0xff) and the packet is passed (XDP_PASS). */
SEC("xdp")
int xdp_len_filter(struct xdp_md *ctx)
{
	__u8 *data = (void *)(long)ctx->data;
	__u8 *end = (void *)(long)ctx->data_end;

	if (data + MIN_LEN > end)
		return XDP_DROP;
	data[0] ^= 0xff;
	return XDP_PASS;
}

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 2);
} sock_stats SEC(".maps");

/* Counts packets in sock_stats[0] and bytes in sock_stats[1].
 * Returns 0 (drop) for packets shorter than 60 bytes, else 42. */
SEC("socket")
int sock_len_filter(struct __sk_buff *skb)
{
	__u32 key = 0;
	__u64 *v;

	v = bpf_map_lookup_elem(&sock_stats, &key);
	if (v)
		__sync_fetch_and_add(v, 1);
	key = 1;
	v = bpf_map_lookup_elem(&sock_stats, &key);
	if (v)
		__sync_fetch_and_add(v, skb->len);
	return skb->len < 60 ? 0 : 42;
}

SEC("xdp") int xdp_tail(struct xdp_md *ctx);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(max_entries, 1);
	__array(values, int (struct xdp_md *));
} xdp_jmp SEC(".maps") = {
	.values = { [0] = &xdp_tail },
};

/* Tail-calls xdp_jmp[0]; XDP_PASS if the slot is empty. */
SEC("xdp")
int xdp_entry(struct xdp_md *ctx)
{
	bpf_tail_call(ctx, &xdp_jmp, 0);
	return XDP_PASS;
}

SEC("xdp")
int xdp_tail(struct xdp_md *ctx)
{
	return XDP_TX;
}

char _license[] SEC("license") = "Dual MIT/GPL";
