"""Host input pipeline: frames decoded, cropped and resized, batched as (devices, per-device batch, ...).

A plain numpy pipeline rather than tf.data or Grain, for three reasons:
- Every example is a pure function of (seed, step, position in the global batch): the epoch permutation comes
  from (seed, epoch) and the temporal partner and flip from (seed, step, position). A resumed run therefore
  restarts its input exactly by passing the step it resumes at; there is no iterator state to checkpoint, and
  the examples do not depend on how many processes or devices share the global batch.
- Frames are decoded by PIL in a thread pool (PIL releases the GIL while decoding and resizing), cropped with
  `Image.crop` and resized with PIL's bilinear filter, so the pixels are those the PyTorch original feeds its
  model (PIL crop, torchvision `Resize` on PIL images).
- Nothing here runs TensorFlow, and nothing imports JAX: callers pass `jax.process_index()`, `process_count()`
  and `local_device_count()`.

Sources are sequences of dicts as `open_split` in `datasets.py` returns them: record i has 'image' (encoded
bytes), 'video', 'frame', 'frame_index', 'joints' (J, 2), 'train_box', 'eval_box' (4,) and optionally 'mask'
(encoded bytes), grouped by video in frame order as the video table `[[video, first_record, num_frames], ...]`
describes. Colour jitter and the thin-plate-spline warp run on the device; the host yields only real frames.

Evaluation and validation walk their records in order; each process takes a contiguous share (process p the
p-th block of ceil(M / P) records), padded by repeating its last example with `valid` False so that every
batch has the full static shape and every process runs the same number of batches.
"""

import collections
import concurrent.futures
import dataclasses
import functools
import io
import itertools
import math
import queue
import threading
import weakref
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
from PIL import Image

Example = dict[str, np.ndarray]

# Seed domains: the permutation, training and validation streams never share a seed sequence (numpy pads
# short seed lists with zeros, so [seed, epoch] alone could collide with [seed, step, 0]).
_PERMUTATION_STREAM = 0
_TRAINING_STREAM = 1
_VALIDATION_STREAM = 2
# Validation pairs do not depend on config.seed, so runs with different seeds validate on the same pairs.
_VALIDATION_SEED = 0

_THREAD_PREFIX = 'landmarks-input'


class RecordError(ValueError):
  """A record that cannot be read, decoded or cropped; the message names its index, video and frame."""


# ----------------------------------------------------------------------------------------------------------
# Sampling rules.


def sample_temporal_offset(num_frames: int, frame_index: int, rng: np.random.Generator,
                           temporal_range: Sequence[int] = (3, 40)) -> int:
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
        '(batch_size x local devices x processes); lower config.batch_size or use a larger dataset.')
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
            'metadata does not match its records; rebuild the dataset.')
      expected_first += count
    if expected_first != num_records:
      raise ValueError(
          f'The video table covers {expected_first} records but the split has {num_records}; the dataset '
          'metadata does not match its records; rebuild the dataset.')
    counts = np.array([n for _, _, n in rows], np.int64)
    firsts = np.array([first for _, first, _ in rows], np.int64)
    ids = np.array([v for v, _, _ in rows], np.int64)
    first_record = np.repeat(firsts, counts)
    return cls(video=np.repeat(ids, counts), frame_index=np.arange(num_records) - first_record,
               first_record=first_record, num_frames=np.repeat(counts, counts))

  def partner(self, record: int, rng: np.random.Generator, temporal_range: Sequence[int]) -> int:
    """Record index of the temporal partner of `record`, drawn from `rng`."""
    offset = sample_temporal_offset(int(self.num_frames[record]), int(self.frame_index[record]), rng,
                                    temporal_range)
    return record + offset


def check_temporal_range(videos: Sequence[Sequence[int]], num_records: int, temporal_range: Sequence[int],
                         split: str = 'train') -> None:
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
      f'{max(2, int(table.num_frames[longest]) // 2)})), or use longer videos.')


def select_records(num_records: int, videos: Sequence[Sequence[int]] | None = None,
                   frames_per_video: int | None = None, val_frac: float | None = None) -> np.ndarray:
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
    raise ValueError('Selecting frames per video needs the split\'s video table (videos=...).')
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


def process_share(records: np.ndarray, process_index: int, process_count: int,
                  local_batch: int) -> tuple[np.ndarray, np.ndarray]:
  """This process's contiguous block of `records`, padded to whole local batches.

  Every process gets the same number of batches: ceil(ceil(M / P) / local_batch), at least one. Padding
  repeats the share's last record (the selection's last record when the share is empty).

  Returns:
    (records, valid): (num_batches * local_batch,) int64 record indices and bool validity.
  """
  if len(records) == 0:
    raise ValueError('There are no records to walk; the split or the selection is empty.')
  per_process = math.ceil(len(records) / process_count)
  share = records[process_index * per_process:(process_index + 1) * per_process]
  num_batches = max(1, math.ceil(per_process / local_batch))
  padding = num_batches * local_batch - len(share)
  last = share[-1] if len(share) else records[-1]
  padded = np.concatenate([share, np.full(padding, last, np.int64)])
  valid = np.arange(len(padded)) < len(share)
  return padded.astype(np.int64), valid


# ----------------------------------------------------------------------------------------------------------
# Examples.


def crop_resize(image: Image.Image, box: Sequence[float], size: int, flip: bool = False) -> Image.Image:
  """Crops by a float box, optionally mirrors, and resizes to size x size with PIL's bilinear filter.

  The crop goes through `Image.crop` itself, as in the original: Pillow rounds each box coordinate with
  Python's `round` (checked in Pillow 13), to the nearest integer with ties to even, so a box of
  (2.5, 3.5, ...) starts at column 2 and row 4. The mirror comes before the resize as in the original (hflip
  of the crop, then torchvision's `Resize`, which on PIL images is `Image.resize` with the bilinear filter).
  """
  image = image.crop(tuple(float(v) for v in box))
  if flip:
    image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
  return image.resize((size, size), Image.Resampling.BILINEAR)


def to_signed_float(image: Image.Image) -> np.ndarray:
  """(H, W, C) float32 in [-1, 1] from an 8-bit PIL image, as ToTensor then Normalize(0.5, 0.5)."""
  return np.asarray(image, np.float32) / 127.5 - 1.0


def to_unit_float(image: Image.Image) -> np.ndarray:
  """(H, W, 1) float32 in [0, 1] from an 8-bit single-channel PIL image."""
  return (np.asarray(image, np.float32) / 255.0)[..., None]


def normalized_joints(joints: np.ndarray, box: np.ndarray, flip: bool) -> np.ndarray:
  """(J, 2) joints in [-1, 1] over the box, ((x - x_min) / w - 0.5) * 2 as the original's training target."""
  x_min, y_min, x_max, y_max = (float(v) for v in box)
  joints = np.asarray(joints, np.float64)
  x = ((joints[:, 0] - x_min) / (x_max - x_min) - 0.5) * 2
  y = ((joints[:, 1] - y_min) / (y_max - y_min) - 0.5) * 2
  if flip:
    x = -x
  return np.stack([x, y], axis=-1).astype(np.float32)


def _as_bytes(data: Any) -> bytes:
  if isinstance(data, np.ndarray):
    data = data.item()
  return bytes(data)


def _decode(data: Any, mode: str) -> Image.Image:
  with Image.open(io.BytesIO(_as_bytes(data))) as image:
    return image.convert(mode)


def _describe(record: int, example: Mapping[str, Any] | None, table: VideoTable | None) -> str:
  if example is not None and 'video' in example and 'frame' in example:
    return f'record {record} (video {int(example["video"])}, frame {int(example["frame"])})'
  if table is not None and 0 <= record < len(table.video):
    return (f'record {record} (video {int(table.video[record])}, '
            f'frame index {int(table.frame_index[record])})')
  return f'record {record}'


@dataclasses.dataclass(frozen=True)
class _Frame:
  """One record with its image (and mask) decoded."""
  example: Mapping[str, Any]
  image: Image.Image
  mask: Image.Image | None


def _load_frame(source: Sequence[Mapping[str, Any]], record: int, table: VideoTable | None,
                with_mask: bool) -> _Frame:
  """Reads and decodes one record; any failure is a RecordError naming it."""
  example = None
  try:
    example = source[record]
    image = _decode(example['image'], 'RGB')
    mask = _decode(example['mask'], 'L') if with_mask else None
  except Exception as error:  # pylint: disable=broad-except
    raise RecordError(f'Cannot read or decode {_describe(record, example, table)}: {error}. The dataset may '
                      'be corrupt; delete its folder in the data dir and build it again.') from error
  if table is not None and (int(example['video']) != table.video[record]
                            or int(example['frame_index']) != table.frame_index[record]):
    raise RecordError(
        f'{_describe(record, example, table)} has frame_index {int(example["frame_index"])}, but the video '
        f'table places it at video {int(table.video[record])} position {int(table.frame_index[record])}; '
        'the dataset metadata does not match its records; rebuild the dataset.')
  return _Frame(example, image, mask)


def _named(function: Callable[..., Example]) -> Callable[..., Example]:
  """Makes any error of an example function (a bad crop box, say) a RecordError naming the record."""

  @functools.wraps(function)
  def wrapper(source, record, *args, table=None, **kwargs):
    try:
      return function(source, record, *args, table=table, **kwargs)
    except RecordError:
      raise
    except Exception as error:  # pylint: disable=broad-except
      raise RecordError(f'Cannot prepare {_describe(record, None, table)}: {error}') from error

  return wrapper


@_named
def training_example(source: Sequence[Mapping[str, Any]], record: int, partner: int, flip: bool,
                     img_size: int, with_mask: bool, *, table: VideoTable | None = None) -> Example:
  """A training pair: the frame and its temporal partner, both cropped by the frame's train_box.

  Returns:
    'target', 'input_temporal' (S, S, 3) float32 in [-1, 1]; 'joints' (J, 2) float32 normalised to the box;
    'mask' (S, S, 1) float32 in [0, 1] with `with_mask`; 'index', 'temporal_index', 'video' int32 scalars.
  """
  frame = _load_frame(source, record, table, with_mask)
  other = _load_frame(source, partner, table, False)
  box = np.asarray(frame.example['train_box'], np.float32)
  out = {
      'target': to_signed_float(crop_resize(frame.image, box, img_size, flip)),
      'input_temporal': to_signed_float(crop_resize(other.image, box, img_size, flip)),
      'joints': normalized_joints(frame.example['joints'], box, flip),
      'index': np.int32(record),
      'temporal_index': np.int32(partner),
      'video': np.int32(frame.example['video']),
  }
  if with_mask:
    out['mask'] = to_unit_float(crop_resize(frame.mask, box, img_size, flip))
  return out


@_named
def eval_example(source: Sequence[Mapping[str, Any]], record: int, img_size: int, with_mask: bool, *,
                 table: VideoTable | None = None) -> Example:
  """A frame cropped by its eval_box.

  Returns:
    'image' (S, S, 3) float32 in [-1, 1]; 'joints' (J, 2) float32 full-image pixels; 'box' (4,) float32;
    'mask' (S, S, 1) float32 in [0, 1] with `with_mask`; 'video', 'frame', 'index' int32 scalars.
  """
  frame = _load_frame(source, record, table, with_mask)
  box = np.asarray(frame.example['eval_box'], np.float32)
  out = {
      'image': to_signed_float(crop_resize(frame.image, box, img_size)),
      'joints': np.asarray(frame.example['joints'], np.float32),
      'box': box,
      'video': np.int32(frame.example['video']),
      'frame': np.int32(frame.example['frame']),
      'index': np.int32(record),
  }
  if with_mask:
    out['mask'] = to_unit_float(crop_resize(frame.mask, box, img_size))
  return out


def _with_validity(function: Callable[[], Example], valid: bool) -> Example:
  example = function()
  example['valid'] = np.bool_(valid)
  return example


def has_mask(source: Sequence[Mapping[str, Any]]) -> bool:
  """Whether the records carry a foreground mask."""
  return len(source) > 0 and 'mask' in source[0]


# ----------------------------------------------------------------------------------------------------------
# Batching and prefetching.


class _End:
  pass


@dataclasses.dataclass
class _Failure:
  error: BaseException


def _put(items: queue.Queue, item: Any, stop: threading.Event) -> bool:
  """Puts item, giving up (False) once `stop` is set."""
  while not stop.is_set():
    try:
      items.put(item, timeout=0.05)
      return True
    except queue.Full:
      continue
  return False


def _stack(examples: list[Example], shape: tuple[int, int]) -> dict[str, np.ndarray]:
  return {key: np.stack([e[key] for e in examples]).reshape(shape + np.shape(examples[0][key]))
          for key in examples[0]}


def _produce(plans: Iterator[list[Callable[[], Example]]], shape: tuple[int, int],
             pool: concurrent.futures.Executor, items: queue.Queue, stop: threading.Event) -> None:
  """Background loop: submits each batch's examples one batch ahead, stacks them, queues the batch."""
  pending = collections.deque()
  try:
    for plan in plans:
      if stop.is_set():
        break
      pending.append([pool.submit(job) for job in plan])
      if len(pending) > 1:
        if not _put(items, _stack([f.result() for f in pending.popleft()], shape), stop):
          break
    while pending and not stop.is_set():
      if not _put(items, _stack([f.result() for f in pending.popleft()], shape), stop):
        break
    _put(items, _End(), stop)
  except BaseException as error:  # pylint: disable=broad-except
    _put(items, _Failure(error), stop)
  finally:
    for futures in pending:
      for future in futures:
        future.cancel()


def _shutdown(stop: threading.Event, items: queue.Queue, thread: threading.Thread,
              pool: concurrent.futures.ThreadPoolExecutor) -> None:
  stop.set()
  # A garbage collection can run this finalizer on one of the pipeline's own threads, which cannot wait
  # for itself.
  own_thread = threading.current_thread().name.startswith(_THREAD_PREFIX)
  if not own_thread:
    thread.join()
  pool.shutdown(wait=not own_thread, cancel_futures=True)
  while True:
    try:
      items.get_nowait()
    except queue.Empty:
      break


class BatchIterator:
  """Iterator over batches that a daemon thread prepares ahead, examples built in a thread pool.

  Batches are dicts of numpy arrays shaped (num_local_devices, per-device batch, ...). Use as a context
  manager or call `close()` to stop the threads; dropping the iterator stops them as well.
  """

  def __init__(self, plans: Iterator[list[Callable[[], Example]]], shape: tuple[int, int], num_workers: int,
               prefetch_batches: int):
    self._items = queue.Queue(maxsize=max(1, prefetch_batches))
    self._stop = threading.Event()
    self._pool = concurrent.futures.ThreadPoolExecutor(max(1, num_workers),
                                                       thread_name_prefix=f'{_THREAD_PREFIX}-worker')
    self._thread = threading.Thread(target=_produce, args=(plans, shape, self._pool, self._items, self._stop),
                                    name=f'{_THREAD_PREFIX}-prefetch', daemon=True)
    self._finished = False
    # The thread holds no reference to the iterator, so dropping the iterator runs the finalizer.
    self._finalizer = weakref.finalize(self, _shutdown, self._stop, self._items, self._thread, self._pool)
    self._thread.start()

  def __iter__(self) -> 'BatchIterator':
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    if self._finished or not self._finalizer.alive:
      raise StopIteration
    item = self._items.get()
    if isinstance(item, _End):
      self._finished = True
      raise StopIteration
    if isinstance(item, _Failure):
      self._finished = True
      raise item.error
    return item

  def close(self) -> None:
    """Stops the prefetch thread and the workers; idempotent."""
    self._finished = True
    self._finalizer()

  def __enter__(self) -> 'BatchIterator':
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()


# ----------------------------------------------------------------------------------------------------------
# Public iterators.


def _check_layout(num_local_devices: int, process_index: int, process_count: int, batch_size: int) -> None:
  if num_local_devices < 1 or process_count < 1 or batch_size < 1:
    raise ValueError(f'num_local_devices ({num_local_devices}), process_count ({process_count}) and the '
                     f'batch size ({batch_size}) must be at least 1.')
  if not 0 <= process_index < process_count:
    raise ValueError(f'process_index {process_index} is outside [0, {process_count}).')


def _check_config(config: Any) -> None:
  if config.seed < 0:
    raise ValueError(f'config.seed must be non-negative, got {config.seed}.')
  range_min, range_max = config.temporal_range
  if not 0 <= range_min < range_max:
    raise ValueError(f'config.temporal_range must be (min, max) with 0 <= min < max, got '
                     f'{tuple(config.temporal_range)}.')
  if not 0 <= config.flip_probability <= 1:
    raise ValueError(f'config.flip_probability must be in [0, 1], got {config.flip_probability}.')


def _draw_pair(table: VideoTable, record: int, rng: np.random.Generator, config: Any) -> tuple[int, bool]:
  """Partner record and flip of one example, drawn in the original's order (partner first)."""
  partner = table.partner(record, rng, tuple(config.temporal_range))
  # `<` so that probability 0 never flips and 1 always does (the original's `<=` could flip at 0).
  flip = bool(rng.random() < config.flip_probability)
  return partner, flip


def train_batches(config: Any, source: Sequence[Mapping[str, Any]], videos: Sequence[Sequence[int]], *,
                  start_step: int = 0, num_local_devices: int, process_index: int,
                  process_count: int) -> BatchIterator:
  """Endless training batches from `start_step` on; batch k of the iterator is the one of step start_step + k.

  The global batch is config.batch_size x num_local_devices x process_count. Step s takes positions
  [(s % E) * G, (s % E + 1) * G) of the permutation of epoch s // E (E = steps per epoch, G = global batch);
  process p takes the p-th contiguous block of it, laid out (device, per-device batch) in order.

  Yields:
    dicts with, shaped (num_local_devices, config.batch_size, ...): 'target', 'input_temporal' (S, S, 3)
    float32 in [-1, 1]; 'joints' (J, 2) float32 normalised to the train box, x negated when flipped;
    'mask' (S, S, 1) float32 in [0, 1] when the source has masks; 'index', 'temporal_index', 'video' int32.
  """
  _check_config(config)
  _check_layout(num_local_devices, process_index, process_count, config.batch_size)
  if start_step < 0:
    raise ValueError(f'start_step must be non-negative, got {start_step}.')
  table = VideoTable.from_videos(videos, len(source))
  local_batch = config.batch_size * num_local_devices
  global_batch = local_batch * process_count
  epoch_steps = steps_per_epoch(len(source), global_batch)
  with_mask = has_mask(source)
  seed = int(config.seed)

  def plans() -> Iterator[list[Callable[[], Example]]]:
    permutation, permutation_epoch = None, None
    for step in itertools.count(start_step):
      epoch = step // epoch_steps
      if epoch != permutation_epoch:
        permutation, permutation_epoch = epoch_permutation(seed, epoch, len(source)), epoch
      batch_start = (step % epoch_steps) * global_batch
      plan = []
      # `position` is the place in the global batch, so the example does not depend on the process layout.
      for position in range(process_index * local_batch, (process_index + 1) * local_batch):
        record = int(permutation[batch_start + position])
        rng = np.random.default_rng([seed, _TRAINING_STREAM, step, position])
        partner, flip = _draw_pair(table, record, rng, config)
        plan.append(functools.partial(training_example, source, record, partner, flip, config.img_size,
                                      with_mask, table=table))
      yield plan

  return BatchIterator(plans(), (num_local_devices, config.batch_size), config.num_workers,
                       config.prefetch_batches)


def _walk(records: np.ndarray, valid: np.ndarray, local_batch: int,
          job: Callable[[int], Callable[[], Example]]) -> Iterator[list[Callable[[], Example]]]:
  for start in range(0, len(records), local_batch):
    yield [functools.partial(_with_validity, job(int(r)), bool(v))
           for r, v in zip(records[start:start + local_batch], valid[start:start + local_batch])]


def eval_batches(config: Any, source: Sequence[Mapping[str, Any]], *, num_local_devices: int,
                 process_index: int, process_count: int, batch_size: int | None = None,
                 frames_per_video: int | None = None, val_frac: float | None = None,
                 videos: Sequence[Sequence[int]] | None = None) -> BatchIterator:
  """Every selected record once, in record order, cropped by its eval_box; finite.

  Args:
    config: img_size, batch_size, num_workers, prefetch_batches are read.
    source: the split's records.
    num_local_devices, process_index, process_count: this process's place; each process takes its contiguous
      share of the records (see the module docstring).
    batch_size: per-device batch size (default config.batch_size).
    frames_per_video, val_frac: walk only the leading frames of each video (see `select_records`); these need
      `videos`, the split's video table.

  Yields:
    dicts with, shaped (num_local_devices, batch_size, ...): 'image' (S, S, 3) float32 in [-1, 1]; 'joints'
    (J, 2) float32 full-image pixels; 'box' (4,) float32 eval box; 'mask' (S, S, 1) float32 in [0, 1] when
    the source has masks; 'video', 'frame', 'index' int32; 'valid' bool (False on padding).
  """
  batch_size = batch_size or config.batch_size
  _check_layout(num_local_devices, process_index, process_count, batch_size)
  table = VideoTable.from_videos(videos, len(source)) if videos is not None else None
  selected = select_records(len(source), videos, frames_per_video, val_frac)
  local_batch = batch_size * num_local_devices
  records, valid = process_share(selected, process_index, process_count, local_batch)
  with_mask = has_mask(source)

  def job(record: int) -> Callable[[], Example]:
    return functools.partial(eval_example, source, record, config.img_size, with_mask, table=table)

  return BatchIterator(_walk(records, valid, local_batch, job), (num_local_devices, batch_size),
                       config.num_workers, config.prefetch_batches)


def validation_batches(config: Any, source: Sequence[Mapping[str, Any]], videos: Sequence[Sequence[int]], *,
                       num_local_devices: int, process_index: int, process_count: int,
                       batch_size: int | None = None, val_frac: float | None = None) -> BatchIterator:
  """Training-style pairs on the first val_frac of each video, in record order; finite and deterministic.

  The partner and flip of record r come from a fixed seed and r alone, so every validation pass (and every
  run) sees the same pairs. Sharded and padded across processes like `eval_batches`.

  Args:
    batch_size: per-device batch size (default config.batch_size).
    val_frac: leading fraction of each video (default config.val_frac; first max(1, int(n * val_frac))).

  Yields:
    the fields of `train_batches` plus 'valid' bool, shaped (num_local_devices, batch_size, ...).
  """
  _check_config(config)
  batch_size = batch_size or config.batch_size
  _check_layout(num_local_devices, process_index, process_count, batch_size)
  table = VideoTable.from_videos(videos, len(source))
  val_frac = config.val_frac if val_frac is None else val_frac
  selected = select_records(len(source), videos, val_frac=val_frac)
  local_batch = batch_size * num_local_devices
  records, valid = process_share(selected, process_index, process_count, local_batch)
  with_mask = has_mask(source)

  def job(record: int) -> Callable[[], Example]:
    rng = np.random.default_rng([_VALIDATION_SEED, _VALIDATION_STREAM, record])
    partner, flip = _draw_pair(table, record, rng, config)
    return functools.partial(training_example, source, record, partner, flip, config.img_size, with_mask,
                             table=table)

  return BatchIterator(_walk(records, valid, local_batch, job), (num_local_devices, batch_size),
                       config.num_workers, config.prefetch_batches)

