// SPDX-License-Identifier: GPL-2.0
/* iproute2-style map definitions: SEC("maps") with a 36-byte struct, i.e.
 * the five standard fields followed by 16 bytes of extra data (id, pinning,
 * inner_id, inner_idx) that ebpfspec must keep in MapSpec.extra. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct tc_map_def {
	__u32 type;
	__u32 key_size;
	__u32 value_size;
	__u32 max_entries;
	__u32 map_flags;
	/* extra, iproute2 semantics */
	__u32 id;
	__u32 pinning;   /* 1 = PIN_OBJECT_NS, 2 = PIN_GLOBAL_NS */
	__u32 inner_id;
	__u32 inner_idx;
};

struct tc_map_def SEC("maps") tc_counters = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = 4,
	.id = 1,
	.pinning = 2,
	.inner_id = 0,
	.inner_idx = 0,
};

struct tc_map_def SEC("maps") tc_flows = {
	.type = BPF_MAP_TYPE_HASH,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u32),
	.max_entries = 128,
	.map_flags = BPF_F_NO_PREALLOC,
	.id = 2,
	.pinning = 1,
	.inner_id = 0x11223344,
	.inner_idx = 7,
};

struct tc_map_def SEC("maps") tc_percpu = {
	.type = BPF_MAP_TYPE_PERCPU_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u32),
	.max_entries = 2,
	.id = 3,
	.pinning = 0,
	.inner_id = 0,
	.inner_idx = 0xffffffff,
};

SEC("classifier")
int tc_ingress(struct __sk_buff *skb)
{
	__u32 key = 0, mark = skb->mark;
	__u64 *count;
	__u32 *pc;

	count = bpf_map_lookup_elem(&tc_counters, &key);
	if (count)
		__sync_fetch_and_add(count, 1);
	bpf_map_update_elem(&tc_flows, &mark, &key, BPF_ANY);
	pc = bpf_map_lookup_elem(&tc_percpu, &key);
	if (pc)
		*pc += 1;
	return 0; /* TC_ACT_OK */
}

char _license[] SEC("license") = "GPL";
