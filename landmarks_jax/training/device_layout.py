"""The one module that knows how work is laid out over devices: data parallel with `jax.pmap` on axis 'batch'.

Training, validation, evaluation and the benchmarks call these helpers instead of `jax.pmap` and
`flax.jax_utils`, so that a move to `jax.jit` with shardings touches this file alone. Batches are laid out
(local devices, per-device batch, ...); parameters are replicated, one copy per local device.
"""

import collections
import functools
import itertools
from typing import Any, Callable, Iterable, Iterator, Sequence

import jax
import numpy as np

AXIS = 'batch'


def data_parallel(
  function: Callable, *, donate_argnums: Sequence[int] = (), devices: Sequence[jax.Device] | None = None
) -> Callable:
  """`function` run on every local device (or `devices`) on its slice of the batch, collectives over AXIS."""
  return jax.pmap(function, axis_name=AXIS, donate_argnums=tuple(donate_argnums), devices=devices)


@functools.lru_cache(maxsize=None)
def _row_per_device(devices: tuple[jax.Device, ...] | None) -> jax.sharding.NamedSharding:
  """The layout of a pmapped function's inputs and outputs: the leading axis split over the devices."""
  mesh = jax.sharding.Mesh(np.array(devices or jax.local_devices()), (AXIS,))
  return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(AXIS))


def replicate(tree: Any, devices: Sequence[jax.Device] | None = None) -> Any:
  """Copies a pytree to every local device (or `devices`), laid out exactly as a pmapped step lays out its
  outputs, so that the step's second call reuses its first compilation."""
  sharding = _row_per_device(tuple(devices) if devices is not None else None)
  count = len(sharding.mesh.devices)
  return jax.device_put(
    jax.tree_util.tree_map(lambda x: np.broadcast_to(np.asarray(x), (count,) + np.shape(x)), tree), sharding
  )


def host_layout() -> dict[str, int]:
  """This process's place among the devices, as the input pipeline's iterators take it."""
  return dict(
    num_local_devices=jax.local_device_count(), process_index=jax.process_index(), process_count=jax.process_count()
  )


def local_rows(x: jax.Array) -> np.ndarray:
  """This process's rows (one per local device) of a pmapped output, as numpy."""
  return np.concatenate([np.asarray(shard.data) for shard in x.addressable_shards])


def unreplicate(tree: Any) -> Any:
  """The first local device's copy of a replicated pytree, as numpy."""
  return jax.tree_util.tree_map(lambda x: np.asarray(x.addressable_shards[0].data)[0], tree)


def to_devices(batch: Any, devices: Sequence[jax.Device] | None = None) -> Any:
  """A host batch laid out (local devices, per-device batch, ...) put on the devices, row d on device d."""
  return jax.device_put(batch, _row_per_device(tuple(devices) if devices is not None else None))


def prefetch_to_devices(
  batches: Iterable[Any], size: int = 2, devices: Sequence[jax.Device] | None = None
) -> Iterator[Any]:
  """Yields the host batches already on the devices, `size` of them in flight ahead of the consumer.

  The copies are asynchronous, so the host moves batch k + size while the devices compute step k.
  """
  queue = collections.deque()
  iterator = iter(batches)
  for batch in itertools.islice(iterator, max(size, 1)):
    queue.append(to_devices(batch, devices))
  while queue:
    yield queue.popleft()
    for batch in itertools.islice(iterator, 1):
      queue.append(to_devices(batch, devices))
