// SPDX-License-Identifier: GPL-2.0
/* BTF-defined maps (SEC(".maps")) of every common type, map-in-map with a
 * BTF struct inner value, a prog array with .values initialisers, pinning,
 * map_extra, numa_node and map_flags. See README.md for expected values. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* 24 bytes: u64, u64, u32, u16, u8, u8 */
struct flow_stats {
	__u64 packets;
	__u64 bytes;
	__u32 flags;
	__u16 port;
	__u8 proto;
	__u8 pad;
};

/* 16 bytes, value type of every inner map */
struct inner_value {
	__u64 seen;
	__u32 ifindex;
	__u32 mark;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct flow_stats);
	__uint(max_entries, 1024);
} hash_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 16);
} array_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 128);
} percpu_hash SEC(".maps");

/* value_size 4: the kernel's per-CPU slot is round_up(4, 8) = 8 bytes */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 8);
} percpu_array SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, __u64);
	__type(value, __u64);
	__uint(max_entries, 256);
} lru_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 64);
} lru_percpu_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096 * 4);
} ringbuf SEC(".maps");

/* no max_entries: the loader uses the number of possible CPUs */
struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} perf_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__type(value, __u32);
	__uint(max_entries, 32);
} queue SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK);
	__type(value, __u64);
	__uint(max_entries, 16);
} stack SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_BLOOM_FILTER);
	__type(value, __u32);
	__uint(max_entries, 1000);
	__uint(map_extra, 3); /* number of hash functions */
} bloom SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 512);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} noprealloc_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 32);
	__uint(map_flags, BPF_F_NUMA_NODE);
	__uint(numa_node, 0);
} numa_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 4);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pinned_array SEC(".maps");

/* Maps of the inner type, named in the map-in-map initialisers below.
 * array_of_maps uses this named definition struct for its inner map,
 * hash_of_maps an identical anonymous one. */
struct inner_lru {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, __u32);
	__type(value, struct inner_value);
	__uint(max_entries, 16);
};

struct inner_lru inner_a SEC(".maps");
struct inner_lru inner_b SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__type(key, __u32);
	__uint(max_entries, 4);
	__array(values, struct inner_lru);
} array_of_maps SEC(".maps") = {
	.values = { [0] = &inner_a, [1] = &inner_b },
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__type(key, __u32);
	__uint(max_entries, 8);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_LRU_HASH);
		__type(key, __u32);
		__type(value, struct inner_value);
		__uint(max_entries, 16);
	});
} hash_of_maps SEC(".maps") = {
	.values = { [3] = (void *)&inner_b },
};

/* Inner arrays of different sizes: need BPF_F_INNER_MAP on template and members. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct inner_value);
	__uint(max_entries, 2);
	__uint(map_flags, BPF_F_INNER_MAP);
} inner_small SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct inner_value);
	__uint(max_entries, 8);
	__uint(map_flags, BPF_F_INNER_MAP);
} inner_large SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__type(key, __u32);
	__uint(max_entries, 2);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_ARRAY);
		__type(key, __u32);
		__type(value, struct inner_value);
		__uint(max_entries, 4);
		__uint(map_flags, BPF_F_INNER_MAP);
	});
} array_of_arrays SEC(".maps") = {
	.values = { [0] = (void *)&inner_small, [1] = (void *)&inner_large },
};

SEC("xdp") int prog_a(struct xdp_md *ctx);
SEC("xdp") int prog_b(struct xdp_md *ctx);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(max_entries, 4);
	__array(values, int (struct xdp_md *));
} jump_table SEC(".maps") = {
	.values = { [0] = &prog_a, [2] = &prog_b },
};

SEC("xdp")
int prog_a(struct xdp_md *ctx)
{
	return XDP_PASS;
}

SEC("xdp")
int prog_b(struct xdp_md *ctx)
{
	return XDP_DROP;
}

/* Touches every map so each one is referenced by a relocation. */
SEC("xdp")
int use_maps(struct xdp_md *ctx)
{
	__u32 key = 0, val32 = 1;
	__u64 key64 = 0, *val64;
	struct flow_stats *fs;
	struct inner_value *iv;
	void *inner;

	fs = bpf_map_lookup_elem(&hash_map, &key);
	if (fs)
		fs->packets++;
	val64 = bpf_map_lookup_elem(&array_map, &key);
	if (val64)
		(*val64)++;
	val64 = bpf_map_lookup_elem(&percpu_hash, &key);
	if (val64)
		(*val64)++;
	if (bpf_map_lookup_elem(&percpu_array, &key))
		val32++;
	if (bpf_map_lookup_elem(&lru_hash, &key64))
		val32++;
	if (bpf_map_lookup_elem(&lru_percpu_hash, &key))
		val32++;
	if (bpf_map_lookup_elem(&noprealloc_hash, &key))
		val32++;
	if (bpf_map_lookup_elem(&numa_hash, &key))
		val32++;
	val64 = bpf_map_lookup_elem(&pinned_array, &key);
	if (val64)
		(*val64)++;

	bpf_ringbuf_output(&ringbuf, &val32, sizeof(val32), 0);
	bpf_perf_event_output(ctx, &perf_events, BPF_F_CURRENT_CPU, &val32, sizeof(val32));
	bpf_map_push_elem(&queue, &val32, BPF_ANY);
	bpf_map_push_elem(&stack, &key64, BPF_ANY);
	if (bpf_map_peek_elem(&bloom, &val32) == 0)
		val32++;

	inner = bpf_map_lookup_elem(&array_of_maps, &key);
	if (inner) {
		iv = bpf_map_lookup_elem(inner, &key);
		if (iv)
			iv->seen++;
	}
	inner = bpf_map_lookup_elem(&hash_of_maps, &key);
	if (inner) {
		iv = bpf_map_lookup_elem(inner, &key);
		if (iv)
			iv->seen++;
	}
	inner = bpf_map_lookup_elem(&array_of_arrays, &key);
	if (inner) {
		iv = bpf_map_lookup_elem(inner, &key);
		if (iv)
			iv->mark = val32;
	}

	bpf_tail_call(ctx, &jump_table, 0);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
