// SPDX-License-Identifier: GPL-2.0
/* Maps only, no programs: 72 maps for the concurrent-creation benchmark.
 *   small_hash_00 .. small_hash_47  HASH   u32 -> u64,  max_entries 16
 *   small_array_00 .. small_array_15 ARRAY u32 -> u32,  max_entries 8
 *   big_hash_0 .. big_hash_7        HASH   u32 -> struct big_value (64 bytes),
 *                                   max_entries 65536, preallocated */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct big_value {
	__u64 words[8];
};

#define SMALL_HASH(name)				\
	struct {					\
		__uint(type, BPF_MAP_TYPE_HASH);	\
		__type(key, __u32);			\
		__type(value, __u64);			\
		__uint(max_entries, 16);		\
	} name SEC(".maps")

#define SMALL_ARRAY(name)				\
	struct {					\
		__uint(type, BPF_MAP_TYPE_ARRAY);	\
		__type(key, __u32);			\
		__type(value, __u32);			\
		__uint(max_entries, 8);			\
	} name SEC(".maps")

#define BIG_HASH(name)					\
	struct {					\
		__uint(type, BPF_MAP_TYPE_HASH);	\
		__type(key, __u32);			\
		__type(value, struct big_value);	\
		__uint(max_entries, 65536);		\
	} name SEC(".maps")

#define TEN_SMALL_HASHES(d)						\
	SMALL_HASH(small_hash_##d##0); SMALL_HASH(small_hash_##d##1);	\
	SMALL_HASH(small_hash_##d##2); SMALL_HASH(small_hash_##d##3);	\
	SMALL_HASH(small_hash_##d##4); SMALL_HASH(small_hash_##d##5);	\
	SMALL_HASH(small_hash_##d##6); SMALL_HASH(small_hash_##d##7);	\
	SMALL_HASH(small_hash_##d##8); SMALL_HASH(small_hash_##d##9)

TEN_SMALL_HASHES(0);
TEN_SMALL_HASHES(1);
TEN_SMALL_HASHES(2);
TEN_SMALL_HASHES(3);
SMALL_HASH(small_hash_40); SMALL_HASH(small_hash_41);
SMALL_HASH(small_hash_42); SMALL_HASH(small_hash_43);
SMALL_HASH(small_hash_44); SMALL_HASH(small_hash_45);
SMALL_HASH(small_hash_46); SMALL_HASH(small_hash_47);

SMALL_ARRAY(small_array_00); SMALL_ARRAY(small_array_01);
SMALL_ARRAY(small_array_02); SMALL_ARRAY(small_array_03);
SMALL_ARRAY(small_array_04); SMALL_ARRAY(small_array_05);
SMALL_ARRAY(small_array_06); SMALL_ARRAY(small_array_07);
SMALL_ARRAY(small_array_08); SMALL_ARRAY(small_array_09);
SMALL_ARRAY(small_array_10); SMALL_ARRAY(small_array_11);
SMALL_ARRAY(small_array_12); SMALL_ARRAY(small_array_13);
SMALL_ARRAY(small_array_14); SMALL_ARRAY(small_array_15);

BIG_HASH(big_hash_0); BIG_HASH(big_hash_1);
BIG_HASH(big_hash_2); BIG_HASH(big_hash_3);
BIG_HASH(big_hash_4); BIG_HASH(big_hash_5);
BIG_HASH(big_hash_6); BIG_HASH(big_hash_7);

char _license[] SEC("license") = "GPL";
