"""The kernel's LRU lists (``kernel/bpf/bpf_lru_list.c``) as seen from one CPU.

An LRU hash map owns ``max_entries`` nodes. A node is free, *pending* (just taken by a
CPU, in its local list), *active* or *inactive*; elements are evicted from the tail of
the inactive list, and a node whose *ref* bit is set gets a second chance (moved to the
active list instead). From user space the ref bit is set only by an ``LRU_HASH`` update
that replaces an element (the new node) and by an in-place ``LRU_PERCPU_HASH`` update;
``bpf(2)`` lookups never set it (``map_lookup_elem_sys_only``).

Common LRU (the default): free nodes sit on a global list; a CPU takes ``target_free``
(``clamp(max_entries / possible_cpus / 2, 1, 128)``) of them at a time into its local free
list, first flushing its pending nodes into the global list, rotating it, and evicting
elements to make up what the global free list lacks. So a full map loses up to
``target_free`` elements at once. ``BPF_F_NO_COMMON_LRU``: each CPU has its own list of
``max_entries / possible_cpus`` nodes and evicts up to 4 at a time.

The model is one CPU's view: every operation runs on "this" CPU, as the kernel's do
when a single thread stays on one CPU. With several CPUs in play, the kernel may evict
earlier (free nodes can be parked in other CPUs' local lists).

This module mirrors the kernel's ``list_head`` lists literally (sentinel heads,
``prev``/``next``, the ``next_inactive_rotation`` pointer), so the order of evictions is
the kernel's and can be checked against it.
"""

from __future__ import annotations

from collections.abc import Callable

from loader.memory import kconst as k

__all__ = ["Lru", "LruNode"]

# node types (bpf_lru_list_type); only ACTIVE and INACTIVE are counted
ACTIVE, INACTIVE, FREE, PENDING = 0, 1, 2, 3


class LruNode:
    """A ``struct bpf_lru_node`` (also a list head when used as a sentinel)."""

    __slots__ = ("key", "kind", "next", "prev", "ref")

    def __init__(self, key: bytes = b"", kind: int = FREE) -> None:
        self.key = key
        self.kind = kind
        self.ref = False
        self.prev: LruNode = self
        self.next: LruNode = self


def _unlink(node: LruNode) -> None:
    node.prev.next = node.next
    node.next.prev = node.prev
    node.prev = node.next = node


def _add_head(node: LruNode, head: LruNode) -> None:
    """``list_add``: right after ``head`` (the newest end)."""
    node.next = head.next
    node.prev = head
    head.next.prev = node
    head.next = node


class Lru:
    """One LRU list with its free nodes, for one CPU (see the module docstring).

    ``evict(node)`` is ``del_from_htab``: it must remove the node's element from the map.
    """

    __slots__ = ("_evict", "active", "counts", "free", "global_free", "inactive", "local_free", "nr_scans",
                 "pending", "percpu", "rotation", "target_free")

    def __init__(self, *, max_entries: int, ncpus: int, percpu: bool,
                 evict: Callable[[LruNode], None]) -> None:
        self.percpu = percpu
        self._evict = evict
        self.active = LruNode()
        self.inactive = LruNode()
        self.pending = LruNode()
        self.counts = [0, 0]
        self.rotation = self.inactive  # next_inactive_rotation
        if percpu:
            self.nr_scans = k.PERCPU_NR_SCANS
            self.free = max_entries // ncpus  # this CPU's share of the nodes
            self.target_free = k.PERCPU_FREE_TARGET
        else:
            self.nr_scans = k.LOCAL_NR_SCANS
            self.free = 0
            self.target_free = min(max((max_entries // ncpus) // 2, 1), k.LOCAL_FREE_TARGET)
        self.global_free = max_entries
        self.local_free = 0

    # -- list moves -------------------------------------------------------------------------------

    def _move(self, node: LruNode, kind: int) -> None:
        """``__bpf_lru_node_move`` between/within the active and inactive lists."""
        if node.kind != kind:
            self.counts[node.kind] -= 1
            self.counts[kind] += 1
            node.kind = kind
        node.ref = False
        if node is self.rotation:
            self.rotation = node.prev
        _unlink(node)
        _add_head(node, self.active if kind == ACTIVE else self.inactive)

    def _move_to_free(self, node: LruNode) -> None:
        """``__bpf_lru_node_move_to_free`` (and ``__bpf_lru_node_move(..., FREE)``)."""
        if node is self.rotation:
            self.rotation = node.prev
        if node.kind in (ACTIVE, INACTIVE):
            self.counts[node.kind] -= 1
        node.kind = FREE
        _unlink(node)

    def _move_in(self, node: LruNode, kind: int) -> None:
        """``__bpf_lru_node_move_in``: from the local pending list into the LRU list."""
        self.counts[kind] += 1
        node.kind = kind
        node.ref = False
        _unlink(node)
        _add_head(node, self.active if kind == ACTIVE else self.inactive)

    # -- rotation and shrinking -----------------------------------------------------------------------

    def _rotate_active(self) -> None:
        head = self.active
        first = head.next
        node = head.prev
        i = 0
        while node is not head:
            older_to_newer = node.prev
            self._move(node, ACTIVE if node.ref else INACTIVE)
            i += 1
            if i == self.nr_scans or node is first:
                break
            node = older_to_newer

    def _rotate_inactive(self) -> None:
        head = self.inactive
        if head.next is head:
            return
        last = self.rotation.next
        if last is head:
            last = last.next
        cur = self.rotation
        nxt = head
        i = 0
        while i < self.nr_scans:
            if cur is head:
                cur = cur.prev
                continue
            node = cur
            nxt = cur.prev
            if node.ref:
                self._move(node, ACTIVE)
            if cur is last:
                break
            cur = nxt
            i += 1
        self.rotation = nxt

    def _rotate(self) -> None:
        """``__bpf_lru_list_rotate``."""
        if self.counts[INACTIVE] < self.counts[ACTIVE]:
            self._rotate_active()
        self._rotate_inactive()

    def _shrink(self, target: int) -> int:
        """``__bpf_lru_list_shrink``: evict up to ``target`` elements; returns how many."""
        head = self.inactive
        node = head.prev
        shrunk = 0
        i = 0
        while node is not head:
            newer = node.prev
            if node.ref:
                self._move(node, ACTIVE)
            else:
                self._evict(node)
                self._move_to_free(node)
                shrunk += 1
                if shrunk == target:
                    break
            i += 1
            if i == self.nr_scans:
                break
            node = newer
        if shrunk:
            return shrunk
        # force shrink: ignore the ref bit, prefer the inactive list
        victims = self.inactive if self.inactive.next is not self.inactive else self.active
        node = victims.prev
        if node is victims:
            return 0
        self._evict(node)
        self._move_to_free(node)
        return 1

    # -- the interface hashtab.c uses -------------------------------------------------------------------

    def pop_free(self, key: bytes) -> LruNode | None:
        """``bpf_lru_pop_free``: a node for ``key``, evicting elements if none is free (None if none)."""
        if self.percpu:
            self._rotate()
            if not self.free:
                self.free += self._shrink(self.target_free)
            if not self.free:
                return None
            self.free -= 1
            node = LruNode(key, INACTIVE)
            self.counts[INACTIVE] += 1
            _add_head(node, self.inactive)
            return node
        if not self.local_free:  # bpf_lru_list_pop_free_to_local
            pending = self.pending
            node = pending.prev
            while node is not pending:  # __local_list_flush, oldest first
                newer = node.prev
                self._move_in(node, ACTIVE if node.ref else INACTIVE)
                node = newer
            self._rotate()
            moved = min(self.target_free, self.global_free)
            self.global_free -= moved
            self.local_free += moved
            if moved < self.target_free:
                self.local_free += self._shrink(self.target_free - moved)
        if not self.local_free:
            return None
        self.local_free -= 1
        node = LruNode(key, PENDING)
        _add_head(node, self.pending)
        return node

    def push_free(self, node: LruNode) -> None:
        """``bpf_lru_push_free``: give a node back (to the local free list if still pending)."""
        if self.percpu:
            self._move_to_free(node)
            self.free += 1
        elif node.kind == PENDING:
            node.kind = FREE
            _unlink(node)
            self.local_free += 1
        else:
            self._move_to_free(node)
            self.global_free += 1
