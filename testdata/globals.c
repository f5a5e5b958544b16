// SPDX-License-Identifier: GPL-2.0
/* Global variables in .data, .rodata, .bss, .data.custom and .rodata.custom,
 * read and written by programs (data-section relocations with non-zero
 * offsets). See README.md for the exact layout. */
#include <stdbool.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define __section(name) __attribute__((section(name)))

struct settings {
	__u32 mode;
	__u16 port;
	__u8 proto;
	__u8 enabled;
	__u64 cookie;
};

/* .data */
__u32 counter = 7;
struct settings settings = {
	.mode = 3,
	.port = 8080,
	.proto = 17,
	.enabled = 1,
	.cookie = 0x1122334455667788ULL,
};
__u32 table[4] = { 10, 20, 30, 40 };
/* static: a local symbol, referenced through the .data section symbol
 * with the offset in the instruction's immediate */
static volatile __u32 internal_state = 0x5a5a5a5a;

/* .rodata */
const volatile __u32 limit = 42;
const volatile bool debug = false;
const volatile __u64 magic = 0xdeadbeefcafef00dULL;

/* .bss */
__u64 hits;
__u32 last_len;
__u8 scratch[16];

/* custom sections */
__u32 custom_val __section(".data.custom") = 99;
__u64 custom_total __section(".data.custom") = 0;
const volatile __u32 custom_ro __section(".rodata.custom") = 5;

/* Packets longer than `limit` are dropped; `debug` makes it XDP_TX instead
 * of XDP_PASS. Every global is read or written. */
SEC("xdp")
int xdp_globals(struct xdp_md *ctx)
{
	__u32 len = ctx->data_end - ctx->data;

	hits++;
	counter++;
	last_len = len;
	table[2] += len;
	scratch[5] = (__u8)custom_ro;
	custom_val++;
	custom_total += len;
	settings.cookie = magic;
	internal_state ^= len;

	if (len > limit)
		return XDP_DROP;
	return debug ? XDP_TX : XDP_PASS;
}

/* Socket filter: keeps min(len, settings.port) bytes, counts in .bss. */
SEC("socket")
int socket_globals(struct __sk_buff *skb)
{
	__u32 keep = settings.port;

	hits += table[3];
	if (settings.enabled && skb->len < keep)
		keep = skb->len;
	custom_total += custom_ro;
	return keep;
}

char _license[] SEC("license") = "GPL";
