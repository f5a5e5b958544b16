"""``load_collection``: a ``CollectionSpec`` → live maps (and programs), concurrently and leak-free.

The steps, each a small function below:

1. :func:`select` — what to load: everything, or the names in ``only`` plus what they
   depend on (maps a program uses, maps/programs named in contents, cilium's
   ``LoadAndAssign``).
2. :func:`plan_maps` — per map: a replacement to duplicate, a pin to reuse or create,
   or a plain creation; with the fixups computed, never written back to the spec.
3. :func:`load_collection_btf` — the collection's BTF, with the line-info strings of the
   programs to load, is loaded once (``BPF_BTF_LOAD``) for every map whose key/value
   types it holds and for every program's func/line info.
4. :func:`create_maps` — run the map plans on a thread pool of up to ``workers``. A map's
   inner template is created just before the map itself; data sections are filled
   (and ``.rodata`` frozen) inside their creation, so before any program could load.
   A map goes back to loading its own types (and then to no BTF) if the collection's
   BTF was refused or the map's creation with it is.
5. :func:`load_programs` — the programs (relocated to the maps' descriptors, CO-RE
   applied) on the same kind of pool; without func/line info if the BTF was refused.
6. :func:`fill_named_contents` — maps of maps and program arrays get the objects their
   ``contents`` name, once everything they name exists.

On any failure every descriptor created so far is closed and every pin this call
created is removed; the raised :class:`~loader.errors.LoaderError` names the object
and the step that failed and chains the original error.

Thread-safety: ``load_collection`` never mutates the spec; any number of threads may
load the same ``CollectionSpec`` at once, each getting independent objects.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import itertools
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import TypeVar

import attrs

import btf
from ebpfspec import CollectionSpec, MapSpec, PinType, ProgramSpec
from loader.backend import Backend
from loader.create import TYPES_WITHOUT_BTF, SharedBTF, create_map, marshal_shared_btf
from loader.errors import LoaderError, MapError, MapIncompatibleError
from loader.kconfig import KCONFIG_MAP, kconfig_externs, kconfig_map
from loader.map import Map, default_backend
from loader.pinning import check_pin_dir, pin_file
from loader.program import Program, kernel_btf_source, load_one, target_program
from loader.program_load import KconfigValues, ProgramBTF, line_info_strings

#: Default size of the map-creation thread pool.
DEFAULT_WORKERS = 4


class Collection:
    """Live maps (and programs) loaded from one ``CollectionSpec``.

    ``maps`` and ``programs`` are read-only mappings by spec name. ``close()`` closes
    every object (idempotent); a ``Collection`` is a context manager. Pins stay (that
    is what pins are for); remove them with ``Map.unpin``.
    """

    def __init__(self, maps: Mapping[str, Map], programs: Mapping[str, Program] | None = None):
        self.maps: Mapping[str, Map] = MappingProxyType(dict(maps))
        self.programs: Mapping[str, Program] = MappingProxyType(dict(programs or {}))

    def close(self) -> None:
        """Close every program and map."""
        for p in self.programs.values():
            p.close()
        for m in self.maps.values():
            m.close()

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<loader.Collection maps={list(self.maps)} programs={list(self.programs)}>"


@attrs.frozen
class MapPlan:
    """How one map will come to exist."""

    spec: MapSpec
    replacement: Map | None = None
    pin: str | None = None  # the pin file to reuse, or to create the map under


def load_collection(
    spec: CollectionSpec,
    *,
    backend: Backend | None = None,
    pin_path: str | None = None,
    map_replacements: Mapping[str, Map] | None = None,
    workers: int | None = None,
    only: Iterable[str] | None = None,
    kernel_types: btf.Spec | None = None,
    log_level: int = 0,
    program_targets: Mapping[str, Program] | None = None,
) -> Collection:
    """Create the maps (and programs) of ``spec``; see the module docstring for the steps.

    - ``backend``: ``KernelBackend`` by default.
    - ``pin_path``: a directory on bpffs where ``PinType.BY_NAME`` maps are reused or pinned.
    - ``map_replacements``: existing maps to use instead of creating some (checked for
      compatibility, then their descriptor is duplicated).
    - ``workers``: threads creating maps concurrently.
    - ``only``: names of maps/programs to load, plus what they depend on.
    - ``kernel_types``: BTF to resolve CO-RE relocations and attach targets against
      (default: the running kernel's).
    - ``log_level``: > 0 keeps each program's verifier log (``Program.verifier_log``).
    - ``program_targets``: for extension (``freplace``) programs, the loaded program whose
      function each replaces, by program name (see :meth:`Program.load`'s ``target``).
    """
    backend = backend or default_backend()
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    unknown = [n for n in program_targets or {} if n not in spec.programs]
    if unknown:
        raise KeyError(f"program_targets names {unknown}, which are not programs of the spec")
    map_names, program_names = select(spec, only)
    plans = plan_maps(spec, map_names, pin_path, map_replacements or {}, backend)
    chosen = [p for name, p in spec.programs.items() if name in program_names]
    created = CreatedObjects(backend)
    pool_size = workers or DEFAULT_WORKERS
    try:
        collection_btf = load_collection_btf(spec.types, plans, chosen, backend)
        try:
            maps = create_maps(plans, backend, pool_size, created,
                               shared=collection_btf.shared if collection_btf else None)
            kconfig = load_kconfig(spec, program_names, backend, created)
            if kconfig is not None:
                maps = {**maps, KCONFIG_MAP: kconfig.map}
            programs = load_programs(
                spec,
                chosen,
                maps,
                backend,
                pool_size,
                created,
                kernel=kernel_btf_source(kernel_types),
                log_level=log_level,
                kconfig=kconfig,
                program_btf=collection_btf.program if collection_btf else None,
                targets=program_targets or {},
            )
        finally:
            if collection_btf is not None:
                backend.close(collection_btf.fd)
        fill_named_contents(spec, maps, programs)
    except BaseException:
        created.undo()
        raise
    return Collection(maps, programs)


# -- step 1: selection -------------------------------------------------------------------------


def select(spec: CollectionSpec, only: Iterable[str] | None) -> tuple[set[str], set[str]]:
    """The map and program names to load: ``only`` and everything it depends on."""
    if only is None:
        return set(spec.maps), set(spec.programs)
    wanted = list(only)
    unknown = [n for n in wanted if n not in spec.maps and n not in spec.programs]
    if unknown:
        raise KeyError(f"only= names {unknown} that are neither maps nor programs of the spec")
    maps: set[str] = set()
    programs: set[str] = set()
    stack = wanted
    while stack:
        name = stack.pop()
        if name in spec.programs and name not in programs:
            programs.add(name)
            stack.extend(m for m in spec.programs[name].maps_used if m in spec.maps)
        elif name in spec.maps and name not in maps:
            maps.add(name)
            stack.extend(kv.value for kv in spec.maps[name].contents if isinstance(kv.value, str))
    return maps, programs


# -- step 2: planning ------------------------------------------------------------------------------


def plan_maps(
    spec: CollectionSpec,
    names: set[str],
    pin_path: str | None,
    replacements: Mapping[str, Map],
    backend: Backend,
) -> list[MapPlan]:
    """One plan per map to load, in the spec's order."""
    unknown = [n for n in replacements if n not in spec.maps]
    if unknown:
        raise KeyError(f"map_replacements names {unknown}, which are not maps of the spec")
    if pin_path is not None:
        check_pin_dir(pin_path, backend)
    plans = []
    for name, map_spec in spec.maps.items():
        if name not in names:
            continue
        if name in replacements:
            check_compatible(map_spec, replacements[name], backend, "replacement")
            plans.append(MapPlan(map_spec, replacement=replacements[name]))
        elif map_spec.pinning == PinType.BY_NAME and pin_path is not None:
            plans.append(MapPlan(map_spec, pin=pin_file(pin_path, name)))
        else:
            plans.append(MapPlan(map_spec))
    return plans


def check_compatible(spec: MapSpec, existing: Map, backend: Backend, what: str) -> None:
    """Raise ``MapIncompatibleError`` naming every field where ``existing`` differs from ``spec``."""
    from loader.create import fixup_map_attrs

    want = fixup_map_attrs(spec, backend)
    have = existing.info()
    differences = [
        f"{field_name} {got} != {expected}"
        for field_name, got, expected in (
            ("type", have.type, want.map_type),
            ("key_size", have.key_size, want.key_size),
            ("value_size", have.value_size, want.value_size),
            ("max_entries", have.max_entries, want.max_entries),
            ("flags", have.map_flags, want.map_flags),
        )
        if got != expected
    ]
    if differences:
        raise MapIncompatibleError(f"map {spec.name!r}: {what} is incompatible: {', '.join(differences)}")


# -- step 3: creation ---------------------------------------------------------------------------------


class CreatedObjects:
    """What one ``load_collection`` call has created, to undo on failure. Thread-safe."""

    def __init__(self, backend: Backend):
        self._backend = backend
        self._lock = threading.Lock()
        self._maps: list[Map] = []
        self._programs: list[Program] = []
        self._pins: list[str] = []

    def add_map(self, m: Map) -> None:
        with self._lock:
            self._maps.append(m)

    def add_program(self, p: Program) -> None:
        with self._lock:
            self._programs.append(p)

    def add_pin(self, path: str) -> None:
        with self._lock:
            self._pins.append(path)

    def undo(self) -> None:
        """Remove every pin made and close every map created by this call."""
        with self._lock:
            pins, self._pins = self._pins, []
            maps, self._maps = self._maps, []
            programs, self._programs = self._programs, []
        for p in programs:
            p.close()
        for path in pins:
            with contextlib.suppress(OSError):
                self._backend.obj_unpin(path)
        for m in maps:
            m.close()


@attrs.frozen
class CollectionBTF:
    """The collection's BTF loaded once: one descriptor, seen by the maps as :class:`SharedBTF`
    and by the programs as :class:`ProgramBTF` (with the offsets of their line-info strings)."""

    fd: int
    shared: SharedBTF | None
    program: ProgramBTF | None


#: Fewest maps that must need the collection's BTF for it to be loaded for maps alone
#: (below, each map loads its own key/value types: the same number of loads, smaller ones).
SHARED_BTF_MIN_MAPS = 2


def load_collection_btf(
    types: btf.Spec | None, plans: Iterable[MapPlan], programs: Sequence[ProgramSpec], backend: Backend
) -> CollectionBTF | None:
    """``types`` loaded once (``BPF_BTF_LOAD``), with every line-info string of ``programs``
    added, for the maps the plans may create with BTF from it and for the programs.

    None when there are no programs and fewer than :data:`SHARED_BTF_MIN_MAPS` maps would
    use it, or when it is split BTF, cannot be marshaled or the kernel refuses it: maps then
    load their own types, as they would without it, and programs load without func/line
    info (as libbpf does). The caller closes the descriptor once the programs are loaded.
    """
    if types is None or types.base is not None:
        return None
    map_users = sum(1 for plan in plans if plan.replacement is None and _uses_types(plan.spec, types))
    if not programs and map_users < SHARED_BTF_MIN_MAPS:
        return None
    try:
        raw, offsets = marshal_shared_btf(types, line_info_strings(programs))
        fd = backend.btf_load(raw)
    except (OSError, btf.BTFError):
        return None
    return CollectionBTF(
        fd=fd,
        shared=SharedBTF(fd, types) if map_users else None,
        program=ProgramBTF(fd, offsets) if programs else None,
    )


def create_maps(
    plans: list[MapPlan], backend: Backend, workers: int, created: CreatedObjects,
    *, shared: SharedBTF | None = None,
) -> dict[str, Map]:
    """Run every plan, on up to ``workers`` threads; the first failure cancels the rest.

    ``shared``: the collection's BTF, already loaded, for the maps whose types it holds.
    """
    tasks = {plan.spec.name: functools.partial(realise_map, plan, backend, created, shared)
             for plan in plans}
    return run_all(tasks, workers, "ebpfspec-map")


def _uses_types(spec: MapSpec, types: btf.Spec) -> bool:
    """True if ``spec`` (or its inner map) is created with a key/value type from ``types``."""
    current: MapSpec | None = spec
    while current is not None:
        if current.type in TYPES_WITHOUT_BTF:
            current = current.inner_map
            continue
        for t in (current.key, current.value):
            if t is not None and t.spec is types:
                return True
        current = current.inner_map
    return False


_T = TypeVar("_T")


#: Tasks (maps to create, programs to load) that make starting one more thread worth it:
#: starting and joining a thread costs ~60 µs here, about what four small maps take to
#: create or four small programs to load.
TASKS_PER_THREAD = 4


def run_all(tasks: Mapping[str, Callable[[], _T]], workers: int, name: str) -> dict[str, _T]:
    """Run ``tasks`` on up to ``workers`` threads named ``name``, one thread per
    :data:`TASKS_PER_THREAD` tasks. The first failure stops the tasks not
    yet started and is raised once the running ones have finished, so the caller's undo sees
    everything they made. The results are in the order of ``tasks``.

    Each thread takes the next task not yet taken (as a thread pool would) until none is
    left; the calling thread only waits, so an interrupt there never lands inside a task.
    (Lighter than a ``ThreadPoolExecutor``: no future, lock or queue operation per task.)
    """
    if not tasks:
        return {}
    keys = list(tasks)
    calls = list(tasks.values())
    n = len(calls)
    results: list[_T | None] = [None] * n
    failures: list[BaseException] = []  # list.append is atomic: the first one is failures[0]
    take = itertools.count().__next__  # atomic: each index is taken by exactly one thread

    def work() -> None:
        while not failures:
            i = take()
            if i >= n:
                return
            try:
                results[i] = calls[i]()
            except BaseException as err:  # raised by the caller once all have stopped
                failures.append(err)

    count = min(workers, -(-n // TASKS_PER_THREAD))
    threads = [threading.Thread(target=work, name=f"{name}_{i}") for i in range(count)]
    try:
        for thread in threads:
            thread.start()
    except BaseException as err:  # (cannot start a thread): no new task starts; raised once all stopped
        failures.append(err)
        raise
    finally:
        _join_all(threads, failures)
    if failures:
        raise failures[0]
    return dict(zip(keys, results, strict=True))  # type: ignore[arg-type]  # every task gave its result


def _join_all(threads: list[threading.Thread], failures: list[BaseException]) -> None:
    """Wait for every started thread, even when interrupted (then no new task starts, and the
    interrupt is raised once they have all stopped)."""
    interrupted: BaseException | None = None
    for thread in threads:
        while thread.ident is not None:  # started
            try:
                thread.join()
                break
            except BaseException as err:  # KeyboardInterrupt while waiting: stop the rest, keep waiting
                if interrupted is None:
                    interrupted = err
                    failures.append(err)
    if interrupted is not None:
        raise interrupted


def realise_map(
    plan: MapPlan, backend: Backend, created: CreatedObjects, shared_btf: SharedBTF | None = None
) -> Map:
    """Bring one map into existence according to its plan (recorded in ``created``)."""
    if plan.replacement is not None:
        m = plan.replacement.clone()
        created.add_map(m)
        return m
    if plan.pin is not None:
        return pinned_map(plan.spec, plan.pin, backend, created, shared_btf)
    m = create_map(without_named_contents(plan.spec), backend, shared_btf)
    created.add_map(m)
    m.spec = plan.spec
    return m


def without_named_contents(spec: MapSpec) -> MapSpec:
    """``spec`` without the entries naming maps/programs (step 4 stores those)."""
    if not spec.contents or not any(isinstance(kv.value, str) for kv in spec.contents):
        return spec
    return spec.replace(contents=tuple(kv for kv in spec.contents if not isinstance(kv.value, str)))


def pinned_map(
    spec: MapSpec, path: str, backend: Backend, created: CreatedObjects, shared_btf: SharedBTF | None = None
) -> Map:
    """The map pinned at ``path`` if compatible; else create it and pin it there.

    If another process pins the same path between our check and our pin (``EEXIST``),
    use theirs (libbpf's retry).
    """
    for _ in range(3):
        existing = _load_pinned(spec, path, backend)
        if existing is not None:
            created.add_map(existing)
            check_compatible(spec, existing, backend, f"the map pinned at {path}")
            return existing
        m = create_map(without_named_contents(spec), backend, shared_btf)
        m.spec = spec
        created.add_map(m)
        try:
            m.pin(path)
        except MapError as err:
            if err.errno != errno.EEXIST:
                raise
            m.close()  # lost the race: someone pinned first, go and use theirs
            continue
        created.add_pin(path)
        return m
    raise MapError(errno.EEXIST, "pin", spec.name, f"{path} keeps changing under us")


def _load_pinned(spec: MapSpec, path: str, backend: Backend) -> Map | None:
    try:
        m = Map.load_pinned(path, backend)
    except MapError as err:
        if err.errno == errno.ENOENT:
            return None
        raise MapError(err.errno or errno.EIO, "load pinned", spec.name, path) from err
    # carry the spec's full name (the kernel keeps 15 characters) and its BTF types
    m.name = spec.name
    m.spec = spec
    return m


# -- step 4: programs -------------------------------------------------------------------------------


def load_programs(
    spec: CollectionSpec,
    chosen: Sequence[ProgramSpec],
    maps: Mapping[str, Map],
    backend: Backend,
    workers: int,
    created: CreatedObjects,
    *,
    kernel: Callable[[], btf.Spec],
    log_level: int,
    kconfig: KconfigValues | None = None,
    program_btf: ProgramBTF | None = None,
    targets: Mapping[str, Program] | None = None,
) -> dict[str, Program]:
    """Load the ``chosen`` programs of ``spec``, with the collection's BTF ``program_btf``
    (already loaded; None: without func/line info); an extension program against its
    target program in ``targets`` (held in use while it loads)."""

    def load(program: ProgramSpec) -> Program:
        target = (targets or {}).get(program.name)
        with target_program(target, backend, program.name, "load") as held:
            loaded = load_one(
                program,
                backend,
                maps=maps,
                types=spec.types,
                externs=spec.externs,
                program_btf=program_btf,
                kernel=kernel,
                log_level=log_level,
                kconfig=kconfig,
                target=held,
            )
        created.add_program(loaded)
        return loaded

    return run_all({p.name: functools.partial(load, p) for p in chosen}, workers, "ebpfspec-prog")


def load_kconfig(
    spec: CollectionSpec, names: set[str], backend: Backend, created: CreatedObjects
) -> KconfigValues | None:
    """The ``.kconfig`` map, filled from the kernel's configuration, if a selected program reads one."""
    externs = kconfig_externs(spec.externs)
    wanted = {x.name for x in externs}
    used = any(
        insn.reference in wanted
        for name in names
        for insn in spec.programs[name].instructions
        if insn.reference
    )
    if not used:
        return None
    map_spec, offsets = kconfig_map(externs)
    m = create_map(map_spec, backend)
    created.add_map(m)
    return KconfigValues(m, offsets)


# -- step 5: named contents -------------------------------------------------------------------------


def fill_named_contents(
    spec: CollectionSpec, maps: Mapping[str, Map], programs: Mapping[str, Program]
) -> None:
    """Store the maps and programs that maps-of-maps' and program arrays' ``contents`` name."""
    for name, m in maps.items():
        if name not in spec.maps:  # .kconfig: made by the loader, filled already
            continue
        for kv in spec.maps[name].contents:
            if not isinstance(kv.value, str):
                continue
            target: Map | Program | None
            target = programs.get(kv.value) if m.type.can_store_program else maps.get(kv.value)
            if target is None:
                raise LoaderError(f"map {name!r}: contents name {kv.value!r}, which was not loaded")
            m.update(kv.key, target)
