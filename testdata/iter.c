// SPDX-License-Identifier: GPL-2.0
/* BPF iterators: seq_file programs the kernel runs once per object (and
 * once more with a NULL object at the end) each time the iterator is read.
 *
 * Kernel declarations are written by hand with preserve_access_index, as in
 * core.c: only the fields used, CO-RE relocations fix up the offsets. */
#include <linux/bpf.h>

struct seq_file;

struct bpf_iter_meta {
	struct seq_file *seq;
	__u64 session_id;
	__u64 seq_num;
} __attribute__((preserve_access_index));

struct task_struct {
	int pid;
	int tgid;
	char comm[16];
} __attribute__((preserve_access_index));

struct bpf_map {
	__u32 id;
	char name[16];
	__u32 max_entries;
} __attribute__((preserve_access_index));

struct bpf_iter__task {
	struct bpf_iter_meta *meta;
	struct task_struct *task;
} __attribute__((preserve_access_index));

struct bpf_iter__bpf_map {
	struct bpf_iter_meta *meta;
	struct bpf_map *map;
} __attribute__((preserve_access_index));

struct bpf_iter__bpf_map_elem {
	struct bpf_iter_meta *meta;
	struct bpf_map *map;
	void *key;
	void *value;
} __attribute__((preserve_access_index));

#include <bpf/bpf_helpers.h>

/* One line per task (thread): "tgid pid comm". */
SEC("iter/task")
int dump_task(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;

	if (!task)
		return 0;
	BPF_SEQ_PRINTF(seq, "%d %d %s\n", task->tgid, task->pid, task->comm);
	return 0;
}

/* One line per map: "id max_entries name". */
SEC("iter/bpf_map")
int dump_bpf_map(struct bpf_iter__bpf_map *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct bpf_map *map = ctx->map;

	if (!map)
		return 0;
	BPF_SEQ_PRINTF(seq, "%u %u %s\n", map->id, map->max_entries, map->name);
	return 0;
}

/* One line per element of the map given at attach time, whose keys must be
 * at least 4 bytes and values at least 8: "key value" (__u32, __u64). */
SEC("iter/bpf_map_elem")
int dump_map_elem(struct bpf_iter__bpf_map_elem *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	__u32 *key = ctx->key;
	__u64 *value = ctx->value;

	if (!key || !value)
		return 0;
	BPF_SEQ_PRINTF(seq, "%u %llu\n", *key, *value);
	return 0;
}

char _license[] SEC("license") = "GPL";
