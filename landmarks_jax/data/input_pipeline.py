"""Host input pipeline: batches of frames decoded, cropped and resized, laid out (devices, per-device batch, ...).

- Every batch is a pure function of (seed, step) for training, of its position for validation and evaluation:
  the epoch permutation comes from (seed, epoch), the temporal partner and flip from (seed, step, position in
  the global batch). A resumed run restarts its input exactly by passing the step it resumes at; there is no
  iterator state to checkpoint, and the examples do not depend on how many processes, devices or workers share
  the work.
- Grain runs it: training batches are made by `config.num_workers` worker processes (each makes whole
  batches, in step order), so throughput grows with host cores; validation and evaluation, short walks, use
  threads of this process. `num_workers=0` makes training batches in this process too.
- Pixels stay uint8 (`frames.py` decodes and crops them); the step converts them on the device.
- Nothing here imports JAX or TensorFlow: callers pass `jax.process_index()`, `process_count()` and
  `local_device_count()`.

Sources are sequences of dicts as `open_split` in `datasets.py` returns them: record i has 'image' (encoded
bytes), 'video', 'frame', 'frame_index', 'joints' (J, 2), 'train_box', 'eval_box' (4,) and optionally 'mask'
(encoded bytes), grouped by video in frame order as the video table `[[video, first_record, num_frames], ...]`
describes. Colour jitter and the thin-plate-spline warp run on the device; the host yields only real frames.

Evaluation and validation walk their records in order; each process takes a contiguous share (process p the
p-th block of ceil(M / P) records), padded by repeating its last example with `valid` False so that every
batch has the full static shape and every process runs the same number of batches.
"""

import dataclasses
import functools
import math
import os
import signal
import threading
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from landmarks_jax.data import frames
from landmarks_jax.training import config_checks

Example = frames.Example
RecordError = frames.RecordError

# Seed domains: the permutation, training and validation streams never share a seed sequence (numpy pads
# short seed lists with zeros, so [seed, epoch] alone could collide with [seed, step, 0]).
_PERMUTATION_STREAM = 0
_TRAINING_STREAM = 1
_VALIDATION_STREAM = 2
# Validation pairs do not depend on config.seed, so runs with different seeds validate on the same pairs.
_VALIDATION_SEED = 0
# Training never ends by itself; grain needs a length, and no run takes this many steps.
_ENDLESS = 2**48


# ----------------------------------------------------------------------------------------------------------
# Sampling rules.


def sample_temporal_offset(
  num_frames: int, frame_index: int, rng: np.random.Generator, temporal_range: Sequence[int] = (3, 40)
) -> int:
  """Offset from a frame to its temporal partner in the same video, the original's `sample_temporal` rule.

  Forward by an offset in [range_min, min(range_max, num_frames - frame_index)) when the video has more than
  range_min frames from this one on; otherwise backward by min(frame_index, r), r in [range_min, range_max).

  Args:
    num_frames: frames of the video in the split.
    frame_index: position of the frame in its video, in [0, num_frames).
    rng: the random generator to draw from.
    temporal_range: (range_min, range_max), the exclusive upper bound as numpy's `randint`.

  Returns:
    The offset; frame_index + offset lies in [0, num_frames).
  """
  range_min, range_max = temporal_range
  if num_frames - frame_index > range_min:
    return int(rng.integers(range_min, min(range_max, num_frames - frame_index)))
  return -min(frame_index, int(rng.integers(range_min, range_max)))


def epoch_permutation(seed: int, epoch: int, num_records: int) -> np.ndarray:
  """(num_records,) order in which an epoch visits the records, a function of (seed, epoch) only."""
  return np.random.default_rng([seed, _PERMUTATION_STREAM, epoch]).permutation(num_records)


def steps_per_epoch(num_records: int, global_batch: int) -> int:
  """Full global batches in an epoch (the remainder is dropped); an error when there is not even one."""
  if num_records < global_batch:
    raise ValueError(
      f'The training split has {num_records} records, fewer than one global batch of {global_batch} '
      '(batch_size x local devices x processes); lower config.batch_size or use a larger dataset.'
    )
  return num_records // global_batch


# ----------------------------------------------------------------------------------------------------------
# Video table.


@dataclasses.dataclass(frozen=True)
class VideoTable:
  """Where each record of a split sits in its video; all arrays are (num_records,) int64."""

  video: np.ndarray  # Video id of the record.
  frame_index: np.ndarray  # Position of the record within its video.
  first_record: np.ndarray  # Record index of its video's first frame.
  num_frames: np.ndarray  # Frames of its video in the split.

  @classmethod
  def from_videos(cls, videos: Sequence[Sequence[int]], num_records: int) -> 'VideoTable':
    """Builds the table from `[[video, first_record, num_frames], ...]`, checking it covers the split."""
    rows = sorted((int(v), int(first), int(n)) for v, first, n in videos)
    expected_first = 0
    for video, first, count in rows:
      if first != expected_first or count <= 0:
        raise ValueError(
          f'The video table does not tile the split: video {video} starts at record {first} with {count} '
          f'frames, expected it to start at {expected_first} with at least one frame. The dataset '
          'metadata does not match its records; rebuild the dataset.'
        )
      expected_first += count
    if expected_first != num_records:
      raise ValueError(
        f'The video table covers {expected_first} records but the split has {num_records}; the dataset '
        'metadata does not match its records; rebuild the dataset.'
      )
    counts = np.array([n for _, _, n in rows], np.int64)
    firsts = np.array([first for _, first, _ in rows], np.int64)
    ids = np.array([v for v, _, _ in rows], np.int64)
    first_record = np.repeat(firsts, counts)
    return cls(
      video=np.repeat(ids, counts),
      frame_index=np.arange(num_records) - first_record,
      first_record=first_record,
      num_frames=np.repeat(counts, counts),
    )

  def partner(self, record: int, rng: np.random.Generator, temporal_range: Sequence[int]) -> int:
    """Record index of the temporal partner of `record`, drawn from `rng`."""
    offset = sample_temporal_offset(int(self.num_frames[record]), int(self.frame_index[record]), rng, temporal_range)
    return record + offset


def check_temporal_range(
  videos: Sequence[Sequence[int]], num_records: int, temporal_range: Sequence[int], split: str = 'train'
) -> None:
  """Refuses a temporal range that no video of the split, or most of its frames, can honour.

  A frame has a partner at least range_min frames away when its video has more than range_min frames after
  it, or range_min frames before it; otherwise the original's rule falls back to a nearer frame (the first of
  the video, when going backward from a frame near the start). Where that happens for most frames, training
  pairs a frame with itself or its neighbours without a word; this says so instead.
  """
  table = VideoTable.from_videos(videos, num_records)
  range_min = int(temporal_range[0])
  too_near = (table.num_frames - table.frame_index <= range_min) & (table.frame_index < range_min)
  if too_near.mean() <= 0.5:
    return
  longest = int(np.argmax(table.num_frames))
  raise ValueError(
    f'config.temporal_range={tuple(temporal_range)} asks for partners at least {range_min} frames away, '
    f'but {too_near.sum()} of the {num_records} frames of the {split} split have none that far: its longest '
    f'video ({int(table.video[longest])}) has {int(table.num_frames[longest])} frames. Lower the range (e.g. '
    f'--config.temporal_range=({max(1, int(table.num_frames[longest]) // 4)},'
    f'{max(2, int(table.num_frames[longest]) // 2)})), or use longer videos.'
  )


def select_records(
  num_records: int,
  videos: Sequence[Sequence[int]] | None = None,
  frames_per_video: int | None = None,
  val_frac: float | None = None,
) -> np.ndarray:
  """Record indices to walk, in record order: all, or the leading frames of each video.

  Args:
    num_records: records in the split.
    videos: the split's video table; needed with `frames_per_video` or `val_frac`.
    frames_per_video: keep the first min(frames_per_video, n) frames of each video.
    val_frac: keep the first max(1, int(n * val_frac)) frames of each video, as the original's val_frac.

  Returns:
    (M,) int64 record indices.
  """
  if frames_per_video is None and val_frac is None:
    return np.arange(num_records)
  if frames_per_video is not None and val_frac is not None:
    raise ValueError('Give frames_per_video or val_frac, not both.')
  if videos is None:
    raise ValueError("Selecting frames per video needs the split's video table (videos=...).")
  if frames_per_video is not None and frames_per_video < 1:
    raise ValueError(f'frames_per_video must be at least 1, got {frames_per_video}.')
  if val_frac is not None and not 0 < val_frac <= 1:
    raise ValueError(f'val_frac must be in (0, 1], got {val_frac}.')
  table = VideoTable.from_videos(videos, num_records)
  if frames_per_video is not None:
    keep = np.minimum(frames_per_video, table.num_frames)
  else:
    keep = np.maximum(1, (table.num_frames * val_frac).astype(np.int64))
  return np.flatnonzero(table.frame_index < keep)


def process_share(
  records: np.ndarray, process_index: int, process_count: int, local_batch: int
) -> tuple[np.ndarray, np.ndarray]:
  """This process's contiguous block of `records`, padded to whole local batches.

  Every process gets the same number of batches: ceil(ceil(M / P) / local_batch), at least one. Padding
  repeats the share's last record (the selection's last record when the share is empty).

  Returns:
    (records, valid): (num_batches * local_batch,) int64 record indices and bool validity.
  """
  if len(records) == 0:
    raise ValueError('There are no records to walk; the split or the selection is empty.')
  per_process = math.ceil(len(records) / process_count)
  share = records[process_index * per_process : (process_index + 1) * per_process]
  num_batches = max(1, math.ceil(per_process / local_batch))
  padding = num_batches * local_batch - len(share)
  last = share[-1] if len(share) else records[-1]
  padded = np.concatenate([share, np.full(padding, last, np.int64)])
  valid = np.arange(len(padded)) < len(share)
  return padded.astype(np.int64), valid


# ----------------------------------------------------------------------------------------------------------
# Batching.


def _stack(examples: list[Example], shape: tuple[int, int]) -> dict[str, np.ndarray]:
  return {key: np.stack([e[key] for e in examples]).reshape(shape + np.shape(examples[0][key])) for key in examples[0]}


@dataclasses.dataclass
class _TrainingBatches:
  """Step -> the batch of that step on this process; pickled into grain's worker processes."""

  source: Sequence[Mapping[str, Any]]
  table: VideoTable
  seed: int
  temporal_range: tuple[int, int]
  flip_probability: float
  img_size: int
  with_mask: bool
  reduced_decode: bool
  epoch_steps: int
  global_batch: int
  positions: range  # this process's places in the global batch
  shape: tuple[int, int]
  _permutation: tuple[int, np.ndarray] | None = None

  def permutation(self, epoch: int) -> np.ndarray:
    if self._permutation is None or self._permutation[0] != epoch:
      self._permutation = (epoch, epoch_permutation(self.seed, epoch, len(self.source)))
    return self._permutation[1]

  def __call__(self, step: int) -> dict[str, np.ndarray]:
    step = int(step)
    permutation = self.permutation(step // self.epoch_steps)
    batch_start = (step % self.epoch_steps) * self.global_batch
    examples = []
    # `position` is the place in the global batch, so the example does not depend on the process layout.
    for position in self.positions:
      record = int(permutation[batch_start + position])
      rng = np.random.default_rng([self.seed, _TRAINING_STREAM, step, position])
      partner, flip = _draw_pair(self.table, record, rng, self.temporal_range, self.flip_probability)
      examples.append(
        frames.training_example(
          self.source,
          record,
          partner,
          flip,
          self.img_size,
          self.with_mask,
          table=self.table,
          reduced=self.reduced_decode,
        )
      )
    return _stack(examples, self.shape)


@dataclasses.dataclass
class _ListedBatches:
  """Batch k -> the examples of records[k * B:(k + 1) * B], each with its `valid` flag."""

  records: np.ndarray
  valid: np.ndarray
  example: Callable[[int], Example]
  shape: tuple[int, int]

  def __call__(self, k: int) -> dict[str, np.ndarray]:
    size = self.shape[0] * self.shape[1]
    examples = []
    for record, valid in zip(self.records[k * size : (k + 1) * size], self.valid[k * size : (k + 1) * size]):
      example = self.example(int(record))
      example['valid'] = np.bool_(valid)
      examples.append(example)
    return _stack(examples, self.shape)


def _grain():
  """Grain, imported on first use; its options read absl flags, which a library caller may not have parsed."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  import grain  # pylint: disable=g-import-not-at-top

  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()
  return grain


def _tie_worker_to_parent(parent_pid: int, worker_index: int, worker_count: int) -> None:
  """Runs first in each worker process: the worker lives and dies with the process that started it.

  It ignores SIGINT and SIGTERM, which a terminal's Ctrl-C or a batch scheduler also sends to the workers:
  the training process decides when to stop (it finishes its step and saves first). And it exits within a
  second of that process's end, which a process killed outright (kill -9, the out-of-memory killer) cannot
  arrange; otherwise it would live on with no parent, holding memory and its shared-memory blocks.
  """
  del worker_index, worker_count
  for signum in (signal.SIGINT, signal.SIGTERM):
    signal.signal(signum, signal.SIG_IGN)

  def watch():
    while os.getppid() == parent_pid:
      time.sleep(0.5)
    os._exit(1)  # pylint: disable=protected-access

  threading.Thread(target=watch, name='end-with-parent', daemon=True).start()


class Batches:
  """Iterator over `make_batch(k)` for k in [start, stop), in order, made by worker processes or threads.

  Use as a context manager or call `close()` to stop the workers; the batches are dicts of numpy arrays.
  """

  def __init__(
    self, make_batch: Callable[[int], dict], start: int, stop: int, num_workers: int, processes: bool, prefetch: int
  ):
    grain = _grain()
    dataset = grain.MapDataset.range(start, stop).map(make_batch)
    if processes and num_workers > 0:
      # One thread per worker process: the processes are the parallelism, and more threads in each only
      # contend for the same cores.
      iterable = dataset.to_iter_dataset(grain.ReadOptions(num_threads=1, prefetch_buffer_size=max(1, prefetch)))
      iterable = iterable.mp_prefetch(
        grain.MultiprocessingOptions(num_workers=num_workers, per_worker_buffer_size=max(1, prefetch)),
        worker_init_fn=functools.partial(_tie_worker_to_parent, os.getpid()),
      )
    else:
      iterable = dataset.to_iter_dataset(
        grain.ReadOptions(num_threads=max(1, num_workers), prefetch_buffer_size=max(1, prefetch))
      )
    self._iterator = iter(iterable)
    self._in_processes = processes and num_workers > 0
    self._closed = False

  def __iter__(self) -> 'Batches':
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    if self._closed:
      raise StopIteration
    # Workers hand their arrays over in shared memory; a copy lets each block go (and be unlinked) at once,
    # rather than whenever the batch is garbage-collected, possibly only at exit, which Python reports as a leak.
    batch = next(self._iterator)
    return {name: np.array(value) for name, value in batch.items()} if self._in_processes else batch

  def close(self) -> None:
    """Stops the workers; idempotent."""
    if not self._closed:
      self._closed = True
      if hasattr(self._iterator, 'close'):
        self._iterator.close()
      self._iterator = None  # its finaliser runs now, not during the interpreter's shutdown

  def __enter__(self) -> 'Batches':
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()


# ----------------------------------------------------------------------------------------------------------
# Public iterators.


def _check_layout(num_local_devices: int, process_index: int, process_count: int, batch_size: int) -> None:
  if num_local_devices < 1 or process_count < 1 or batch_size < 1:
    raise ValueError(
      f'num_local_devices ({num_local_devices}), process_count ({process_count}) and the '
      f'batch size ({batch_size}) must be at least 1.'
    )
  if not 0 <= process_index < process_count:
    raise ValueError(f'process_index {process_index} is outside [0, {process_count}).')


def _draw_pair(
  table: VideoTable, record: int, rng: np.random.Generator, temporal_range: Sequence[int], flip_probability: float
) -> tuple[int, bool]:
  """Partner record and flip of one example, drawn in the original's order (partner first)."""
  partner = table.partner(record, rng, tuple(temporal_range))
  # `<` so that probability 0 never flips and 1 always does (the original's `<=` could flip at 0).
  flip = bool(rng.random() < flip_probability)
  return partner, flip


def train_batches(
  config: Any,
  source: Sequence[Mapping[str, Any]],
  videos: Sequence[Sequence[int]],
  *,
  start_step: int = 0,
  num_local_devices: int,
  process_index: int,
  process_count: int,
) -> Batches:
  """Endless training batches from `start_step` on; batch k of the iterator is the one of step start_step + k.

  The global batch is config.batch_size x num_local_devices x process_count. Step s takes positions
  [(s % E) * G, (s % E + 1) * G) of the permutation of epoch s // E (E = steps per epoch, G = global batch);
  process p takes the p-th contiguous block of it, laid out (device, per-device batch) in order.

  Yields:
    dicts with, shaped (num_local_devices, config.batch_size, ...): 'target', 'input_temporal' (S, S, 3)
    uint8; 'joints' (J, 2) float32 normalised to the train box, x negated when flipped; 'mask' (S, S, 1) uint8
    when the source has masks; 'index', 'temporal_index', 'video' int32.
  """
  config_checks.validate_pair_config(config)
  _check_layout(num_local_devices, process_index, process_count, config.batch_size)
  if start_step < 0:
    raise ValueError(f'start_step must be non-negative, got {start_step}.')
  table = VideoTable.from_videos(videos, len(source))
  local_batch = config.batch_size * num_local_devices
  global_batch = local_batch * process_count
  make_batch = _TrainingBatches(
    source=source,
    table=table,
    seed=int(config.seed),
    temporal_range=tuple(config.temporal_range),
    flip_probability=float(config.flip_probability),
    img_size=int(config.img_size),
    with_mask=frames.has_mask(source),
    reduced_decode=bool(config.reduced_decode),
    epoch_steps=steps_per_epoch(len(source), global_batch),
    global_batch=global_batch,
    positions=range(process_index * local_batch, (process_index + 1) * local_batch),
    shape=(num_local_devices, config.batch_size),
  )
  return Batches(make_batch, start_step, _ENDLESS, config.num_workers, processes=True, prefetch=config.prefetch_batches)


def _listed(
  config: Any, records: np.ndarray, valid: np.ndarray, example: Callable[[int], Example], shape: tuple[int, int]
) -> Batches:
  num_batches = len(records) // (shape[0] * shape[1])
  return Batches(
    _ListedBatches(records, valid, example, shape),
    0,
    num_batches,
    config.num_workers,
    processes=False,
    prefetch=config.prefetch_batches,
  )


def eval_batches(
  config: Any,
  source: Sequence[Mapping[str, Any]],
  *,
  num_local_devices: int,
  process_index: int,
  process_count: int,
  batch_size: int | None = None,
  frames_per_video: int | None = None,
  val_frac: float | None = None,
  videos: Sequence[Sequence[int]] | None = None,
) -> Batches:
  """Every selected record once, in record order, cropped by its eval_box; finite.

  Args:
    config: img_size, batch_size, num_workers, prefetch_batches, reduced_decode are read.
    source: the split's records.
    num_local_devices, process_index, process_count: this process's place; each process takes its contiguous
      share of the records (see the module docstring).
    batch_size: per-device batch size (default config.batch_size).
    frames_per_video, val_frac: walk only the leading frames of each video (see `select_records`); these need
      `videos`, the split's video table.

  Yields:
    dicts with, shaped (num_local_devices, batch_size, ...): 'image' (S, S, 3) uint8; 'joints' (J, 2) float32
    full-image pixels; 'box' (4,) float32 eval box; 'mask' (S, S, 1) uint8 when the source has masks; 'video',
    'frame', 'index' int32; 'valid' bool (False on padding).
  """
  batch_size = batch_size or config.batch_size
  _check_layout(num_local_devices, process_index, process_count, batch_size)
  table = VideoTable.from_videos(videos, len(source)) if videos is not None else None
  selected = select_records(len(source), videos, frames_per_video, val_frac)
  records, valid = process_share(selected, process_index, process_count, batch_size * num_local_devices)
  example = functools.partial(
    _eval_example, source, int(config.img_size), frames.has_mask(source), table, bool(config.reduced_decode)
  )
  return _listed(config, records, valid, example, (num_local_devices, batch_size))


def _eval_example(source, img_size, with_mask, table, reduced, record):
  return frames.eval_example(source, record, img_size, with_mask, table=table, reduced=reduced)


def _validation_example(source, table, config_values, with_mask, reduced, record):
  temporal_range, flip_probability, img_size = config_values
  rng = np.random.default_rng([_VALIDATION_SEED, _VALIDATION_STREAM, record])
  partner, flip = _draw_pair(table, record, rng, temporal_range, flip_probability)
  return frames.training_example(source, record, partner, flip, img_size, with_mask, table=table, reduced=reduced)


def validation_batches(
  config: Any,
  source: Sequence[Mapping[str, Any]],
  videos: Sequence[Sequence[int]],
  *,
  num_local_devices: int,
  process_index: int,
  process_count: int,
  batch_size: int | None = None,
  val_frac: float | None = None,
) -> Batches:
  """Training-style pairs on the first val_frac of each video, in record order; finite and deterministic.

  The partner and flip of record r come from a fixed seed and r alone, so every validation pass (and every
  run) sees the same pairs. Sharded and padded across processes like `eval_batches`.

  Args:
    batch_size: per-device batch size (default config.batch_size).
    val_frac: leading fraction of each video (default config.val_frac; first max(1, int(n * val_frac))).

  Yields:
    the fields of `train_batches` plus 'valid' bool, shaped (num_local_devices, batch_size, ...).
  """
  config_checks.validate_pair_config(config)
  batch_size = batch_size or config.batch_size
  _check_layout(num_local_devices, process_index, process_count, batch_size)
  table = VideoTable.from_videos(videos, len(source))
  val_frac = config.val_frac if val_frac is None else val_frac
  selected = select_records(len(source), videos, val_frac=val_frac)
  records, valid = process_share(selected, process_index, process_count, batch_size * num_local_devices)
  values = (tuple(config.temporal_range), float(config.flip_probability), int(config.img_size))
  example = functools.partial(
    _validation_example, source, table, values, frames.has_mask(source), bool(config.reduced_decode)
  )
  return _listed(config, records, valid, example, (num_local_devices, batch_size))
