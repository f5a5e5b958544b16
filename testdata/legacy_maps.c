// SPDX-License-Identifier: GPL-2.0
/* Legacy map definitions: struct bpf_map_def in SEC("maps"), no BTF map
 * definitions. libbpf >= 1.0 refuses this section; ebpfspec must read it. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* The classic five-field layout (20 bytes), written out here because
 * libbpf 1.x headers no longer provide it. */
struct bpf_map_def {
	unsigned int type;
	unsigned int key_size;
	unsigned int value_size;
	unsigned int max_entries;
	unsigned int map_flags;
};

struct bpf_map_def SEC("maps") legacy_hash = {
	.type = BPF_MAP_TYPE_HASH,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = 64,
};

struct bpf_map_def SEC("maps") legacy_array = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = 16,
	.max_entries = 8,
};

struct bpf_map_def SEC("maps") legacy_percpu_hash = {
	.type = BPF_MAP_TYPE_PERCPU_HASH,
	.key_size = sizeof(__u64),
	.value_size = sizeof(__u32),
	.max_entries = 32,
	.map_flags = BPF_F_NO_PREALLOC,
};

struct bpf_map_def SEC("maps") legacy_prog_array = {
	.type = BPF_MAP_TYPE_PROG_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u32),
	.max_entries = 2,
};

SEC("socket")
int legacy_prog(struct __sk_buff *skb)
{
	__u32 key = 0;
	__u64 key64 = skb->len, *count;
	__u32 one = 1;
	void *slot;

	count = bpf_map_lookup_elem(&legacy_hash, &key);
	if (count)
		__sync_fetch_and_add(count, 1);
	slot = bpf_map_lookup_elem(&legacy_array, &key);
	if (slot)
		*(__u32 *)slot = skb->len;
	bpf_map_update_elem(&legacy_percpu_hash, &key64, &one, BPF_ANY);
	bpf_tail_call(skb, &legacy_prog_array, 1);
	return 0;
}

char _license[] SEC("license") = "GPL";
