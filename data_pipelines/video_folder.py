"""A folder of your own videos (or frame folders, or still images) as a TFDS frame dataset.

The folder (`config.dataset_path`, TFDS's manual dir) may hold:
- video files (.mp4, .mov, .avi, .mkv, .webm), decoded with PyAV, one video each;
- sub-folders of frames (.jpg, .jpeg, .png, in name order), one video each;
- still images at its top level, each a video of one frame (an image set: train with use_warped only).

Frames are kept every `stride` frames and stored as JPEGs whose short side is `short_side` (aspect kept; 0
keeps the size). The split is by whole videos, so validation and test never share a video with training: a
fraction of the videos each, drawn with `split_seed`, or a text file of `name split` lines. The crop the model
sees is the whole frame ('full', squeezed to a square), its centre square ('center'), or boxes from a CSV
(`video,frame,x0,y0,x1,y1` in pixels of the original frames; an empty frame means the whole video). Optional
keypoints, a CSV of `video,frame,keypoint,x,y` in pixels of the original frames (a missing row, or empty x and
y, is a keypoint not annotated there), become each record's 'joints' (NaN where missing) for evaluation.

Frames are read as displayed: a photo's EXIF orientation and a video's display rotation (phones record both
sideways with a tag) are applied, and 16-bit grey PNGs are scaled to 8 bits.

The CSVs are checked whole first (every row: its fields, a known video, a whole frame number, finite numbers, no
keypoint twice on one frame; errors name the file and line), then the files (each file's first frame is
decoded, or with `skip_bad_files` every frame); a file that is not a readable video or image stops the build
with its name (or, with `skip_bad_files`, is left out, warned about and listed in the metadata, also when it
breaks midway). Frames are then streamed from the decoder into the records, so a folder of long videos is never
held in memory; a build that fails leaves nothing behind. Each folder has its own build in the data dir (named
by the folder and a hash of its path), which records its options and its files' sizes and times: a later run
with other options, or on a folder whose videos were added, removed or modified since, is refused, not silently
served the old build.
"""

import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import re
from typing import Iterator, Sequence

from absl import logging
import numpy as np
from PIL import Image
from PIL import ImageOps
import tensorflow_datasets as tfds

from landmarks_jax import user_errors

VIDEO_SUFFIXES = ('.mp4', '.mov', '.avi', '.mkv', '.webm')
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png')
SPLITS = ('train', 'validation', 'test')
CROPS = ('full', 'center')
OPTIONS_KEY = 'build_options'
CONTENTS_KEY = 'folder_contents'
EXIF_ORIENTATION = 0x0112  # The EXIF tag saying how to turn a stored photo to display it.
DEEP_GREY_MODES = ('I;16', 'I;16L', 'I;16B', 'I;16N', 'I')  # PIL's modes of 16-bit grey (and 32-bit integer).
JPEG_QUALITY = 95


class VideoFolderError(user_errors.UserError, ValueError):
  """A file or option of the folder that cannot be used; the message names it and the fix."""


class BadFileError(VideoFolderError):
  """A video or image that cannot be decoded; the message names the file, and the caller adds the fix."""


@dataclasses.dataclass(frozen=True)
class FolderOptions:
  """How the folder becomes a dataset (config.video_* options)."""

  stride: int = 1
  short_side: int = 256
  crop: str = 'full'  # 'full', 'center', or the path of a boxes CSV
  validation_fraction: float = 0.1
  test_fraction: float = 0.1
  split_seed: int = 0
  split_file: str = ''
  keypoints: str = ''
  skip_bad_files: bool = False

  def check(self) -> None:
    if self.stride < 1:
      raise VideoFolderError(f'config.video_stride must be at least 1, got {self.stride}.')
    if self.short_side < 0:
      raise VideoFolderError(f'config.video_short_side must be 0 (keep) or positive, got {self.short_side}.')
    if self.crop not in CROPS and not os.path.isfile(self.crop):
      raise VideoFolderError(
        f'config.video_crop must be one of {CROPS} or the path of a boxes CSV; {self.crop!r} is neither.'
      )
    fractions = (self.validation_fraction, self.test_fraction)
    if min(fractions) < 0 or sum(fractions) >= 1:
      raise VideoFolderError(
        f'config.video_validation_fraction and video_test_fraction must be >= 0 and leave '
        f'videos for training; got {fractions}.'
      )
    for name in ('split_file', 'keypoints'):
      path = getattr(self, name)
      if path and not os.path.isfile(path):
        raise VideoFolderError(f'config.video_{name} is {path!r}, which is not a file.')


@dataclasses.dataclass(frozen=True)
class Item:
  """One video of the folder: a video file, a folder of frames, or a still image."""

  name: str
  kind: str  # 'video', 'frames' or 'image'
  path: str


def scan(folder: str) -> list[Item]:
  """The videos of a folder, sorted by name; an error when it holds none."""
  if not os.path.isdir(folder):
    raise VideoFolderError(f'config.dataset_path {folder!r} is not a folder; pass the folder of your videos.')
  items = []
  for entry in sorted(os.listdir(folder)):
    path = os.path.join(folder, entry)
    suffix = os.path.splitext(entry)[1].lower()
    if os.path.isdir(path):
      if any(os.path.splitext(f)[1].lower() in IMAGE_SUFFIXES for f in os.listdir(path)):
        items.append(Item(entry, 'frames', path))
    elif suffix in VIDEO_SUFFIXES:
      items.append(Item(os.path.splitext(entry)[0], 'video', path))
    elif suffix in IMAGE_SUFFIXES:
      items.append(Item(os.path.splitext(entry)[0], 'image', path))
  names = [item.name for item in items]
  duplicates = sorted({n for n in names if names.count(n) > 1})
  if duplicates:
    raise VideoFolderError(
      f'{folder} holds several videos named {duplicates[0]!r} (a file and a folder, or two '
      'suffixes); rename one, since videos are named without their suffix.'
    )
  if not items:
    raise VideoFolderError(
      f'{folder} holds no video ({", ".join(VIDEO_SUFFIXES)}), no folder of frames and no '
      f'image ({", ".join(IMAGE_SUFFIXES)}); pass the folder of your videos.'
    )
  return items


def frame_files(folder: str) -> list[str]:
  """The image files of a frame folder, in name order: its frames."""
  return sorted(f for f in os.listdir(folder) if os.path.splitext(f)[1].lower() in IMAGE_SUFFIXES)


def to_rgb(image: Image.Image) -> Image.Image:
  """An RGB image as a person sees it: turned upright by its EXIF orientation (phone photos are stored sideways
  with a tag that says so), and 16-bit grey (a PNG's 'I;16', or 'I') scaled to 8 bits instead of clipped."""
  if image.getexif().get(EXIF_ORIENTATION, 1) != 1:
    image = ImageOps.exif_transpose(image)
  if image.mode in DEEP_GREY_MODES:
    deep = np.clip(np.asarray(image, np.int64), 0, 65535)
    image = Image.fromarray(((deep * 255 + 32767) // 65535).astype(np.uint8), 'L')
  return image if image.mode == 'RGB' else image.convert('RGB')


def _read_image(path: str) -> Image.Image:
  """One image file, decoded whole and as RGB; a file that is not one raises BadFileError naming it."""
  try:
    with Image.open(path) as image:
      image.load()
      return to_rgb(image)
  except Exception as error:  # pylint: disable=broad-except
    raise BadFileError(f'{path} is not a readable image ({type(error).__name__}: {error}).') from error


def read_frames(item: Item) -> Iterator[tuple[int, Image.Image]]:
  """(frame number, RGB image) of every frame; a file that cannot be decoded raises BadFileError naming it (the
  frame's own file in a frame folder, and how far a video decoded). Callers add the fix that fits them."""
  if item.kind == 'frames':
    for number, name in enumerate(frame_files(item.path)):
      yield number, _read_image(os.path.join(item.path, name))
    return
  if item.kind == 'image':
    yield 0, _read_image(item.path)
    return
  count = 0
  try:
    import av  # pylint: disable=g-import-not-at-top

    with av.open(item.path) as container:
      if not container.streams.video:
        raise BadFileError(f'{item.path} holds no video stream.')
      for frame in container.decode(video=0):
        image = frame.to_image()
        if frame.rotation % 360:  # a phone video's display rotation, counter-clockwise as PIL's rotate
          image = image.rotate(frame.rotation, expand=True)
        yield count, image
        count += 1
  except BadFileError:
    raise
  except Exception as error:  # pylint: disable=broad-except
    where = f': it breaks after frame {count - 1}' if count else ''
    raise BadFileError(f'{item.path} is not a readable video{where} ({type(error).__name__}: {error}).') from error


def assign_splits(names: Sequence[str], options: FolderOptions) -> dict[str, str]:
  """{video name: split}: from the split file, else by fractions drawn with the seed (whole videos)."""
  if options.split_file:
    assigned = {}
    with open(options.split_file) as f:
      for number, line in enumerate(f, 1):
        fields = line.split()
        if not fields or fields[0].startswith('#'):
          continue
        if len(fields) != 2 or fields[1] not in SPLITS or fields[0] not in names:
          raise VideoFolderError(
            f'{options.split_file} line {number}: expected "<video> <split>" with a video of '
            f'the folder and a split of {SPLITS}, got {line.strip()!r}.'
          )
        assigned[fields[0]] = fields[1]
    missing = [n for n in names if n not in assigned]
    if missing:
      raise VideoFolderError(
        f'{options.split_file} gives no split for {len(missing)} videos (first: '
        f'{missing[0]!r}); list every video of the folder.'
      )
    return assigned
  order = np.random.default_rng(options.split_seed).permutation(len(names))
  count = len(names)
  num_test = int(round(count * options.test_fraction)) if count >= 3 else 0
  num_validation = int(round(count * options.validation_fraction)) if count >= 3 else 0
  num_test = max(num_test, 1) if options.test_fraction > 0 and count >= 3 else num_test
  num_validation = max(num_validation, 1) if options.validation_fraction > 0 and count >= 3 else num_validation
  split_of = {}
  for rank, index in enumerate(order):
    split_of[names[index]] = (
      'test' if rank < num_test else 'validation' if rank < num_test + num_validation else 'train'
    )
  return split_of


def _read_csv(path: str, columns: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
  """(line number, row) of each row of a CSV whose header names `columns`; a row with too few or too many fields
  is an error naming its line. A byte-order mark (as spreadsheets write) is ignored and values are stripped."""
  try:
    with open(path, newline='', encoding='utf-8-sig') as f:
      reader = csv.DictReader(f)
      if reader.fieldnames is None or any(c not in reader.fieldnames for c in columns):
        raise VideoFolderError(
          f'{path} must be a CSV whose first line names the columns {",".join(columns)}; it has {reader.fieldnames}.'
        )
      header = ','.join(reader.fieldnames)
      rows = []
      for row in reader:
        fields = len(reader.fieldnames) + len(row.get(None, ())) - sum(v is None for v in row.values())
        if fields != len(reader.fieldnames):
          raise VideoFolderError(
            f'{path} line {reader.line_num}: {fields} fields, expected {len(reader.fieldnames)} ({header}).'
          )
        rows.append((reader.line_num, {k: v.strip() for k, v in row.items()}))
      return rows
  except UnicodeDecodeError as error:
    raise VideoFolderError(f'{path} is not a text CSV ({error}); save it as UTF-8 text.') from error


def _number(value: str, path: str, line: int, column: str) -> float:
  """A finite number of a CSV cell; an error naming the file, line and column otherwise."""
  try:
    number = float(value)
  except ValueError:
    raise VideoFolderError(f'{path} line {line}: {column} {value!r} is not a number.') from None
  if not math.isfinite(number):
    raise VideoFolderError(f'{path} line {line}: {column} {value!r} is not a finite number.')
  return number


def _frame(value: str, path: str, line: int) -> int:
  """A frame number of a CSV cell: a whole number from 0 (4.0 is frame 4; 3.7 and -1 are errors)."""
  try:
    number = float(value)
  except ValueError:
    number = math.nan
  if not (number >= 0 and number.is_integer()):
    raise VideoFolderError(f'{path} line {line}: frame {value!r} is not a frame number (0, 1, 2, ...).')
  return int(number)


def read_keypoints(path: str, names: Sequence[str]) -> tuple[list[str], dict[tuple[str, int], dict[str, tuple]]]:
  """(keypoint names in first-seen order, {(video, frame): {keypoint: (x, y)}}) from the keypoint CSV, every row
  checked: a known video, a frame number, a named keypoint, finite x and y (or both empty or nan: not annotated
  there), and no keypoint given twice on one frame."""
  keypoints, points, seen = [], {}, {}
  for line, row in _read_csv(path, ('video', 'frame', 'keypoint', 'x', 'y')):
    if row['video'] not in names:
      raise VideoFolderError(f'{path} line {line}: video {row["video"]!r} is not in the folder.')
    frame = _frame(row['frame'], path, line)
    if not row['keypoint']:
      raise VideoFolderError(f'{path} line {line}: the keypoint has no name.')
    key = (row['video'], frame, row['keypoint'])
    if key in seen:
      raise VideoFolderError(
        f'{path} line {line}: video {key[0]!r} frame {frame} keypoint {key[2]!r} is already '
        f'on line {seen[key]}; keep one row for it.'
      )
    seen[key] = line
    if row['keypoint'] not in keypoints:
      keypoints.append(row['keypoint'])
    missing = [row[c].lower() in ('', 'nan') for c in ('x', 'y')]
    if all(missing):
      continue  # not annotated on this frame
    if any(missing):
      raise VideoFolderError(f'{path} line {line}: give both x and y, or leave both empty (not annotated).')
    points.setdefault((row['video'], frame), {})[row['keypoint']] = (
      _number(row['x'], path, line, 'x'),
      _number(row['y'], path, line, 'y'),
    )
  return keypoints, points


def read_boxes(path: str, names: Sequence[str]) -> dict[tuple[str, int | None], np.ndarray]:
  """{(video, frame or None for the whole video): (x0, y0, x1, y1)} from the boxes CSV, every row checked."""
  boxes = {}
  for line, row in _read_csv(path, ('video', 'frame', 'x0', 'y0', 'x1', 'y1')):
    if row['video'] not in names:
      raise VideoFolderError(f'{path} line {line}: video {row["video"]!r} is not in the folder.')
    frame = None if row['frame'] in ('', '-1') else _frame(row['frame'], path, line)
    box = np.array([_number(row[c], path, line, c) for c in ('x0', 'y0', 'x1', 'y1')], np.float64)
    if not (box[0] < box[2] and box[1] < box[3]):
      raise VideoFolderError(f'{path} line {line}: the box {box.tolist()} is empty; give x0 < x1 and y0 < y1.')
    if (row['video'], frame) in boxes:
      raise VideoFolderError(
        f'{path} line {line}: video {row["video"]!r} '
        f'{"(whole video)" if frame is None else f"frame {frame}"} has a box already; keep one.'
      )
    boxes[(row['video'], frame)] = box
  return boxes


def stored_size(width: int, height: int, short_side: int) -> tuple[int, int]:
  """(width, height) with the short side at most `short_side` (aspect kept; 0 keeps the size)."""
  if not short_side or min(width, height) <= short_side:
    return width, height
  scale = short_side / min(width, height)
  return max(1, round(width * scale)), max(1, round(height * scale))


def frame_box(
  options: FolderOptions, boxes, video: str, frame: int, width: int, height: int, scale: np.ndarray
) -> np.ndarray:
  """The crop of one frame in stored pixels: the whole frame, its centre square, or the CSV's box.

  `scale` is (x, y) stored pixels per original pixel; the CSV's boxes are in original pixels.
  """
  if options.crop == 'full':
    return np.array([0, 0, width, height], np.float32)
  if options.crop == 'center':
    side = min(width, height)
    x0, y0 = (width - side) / 2, (height - side) / 2
    return np.array([x0, y0, x0 + side, y0 + side], np.float32)
  box = boxes.get((video, frame), boxes.get((video, None)))
  if box is None:
    raise VideoFolderError(
      f'{options.crop} gives no box for video {video!r} frame {frame}; add a row for it, or '
      'one with an empty frame for the whole video.'
    )
  scale = np.tile(np.asarray(scale, np.float64), 2)
  box = box * scale
  if box[0] < -0.5 or box[1] < -0.5 or box[2] > width + 0.5 or box[3] > height + 0.5:
    raise VideoFolderError(
      f'{options.crop}: the box of video {video!r} frame {frame} ({(box / scale).tolist()} '
      f'in original pixels) reaches outside the frame of {width / scale[0]:g} x '
      f'{height / scale[1]:g}; clip it to the frame.'
    )
  return np.clip(box, 0, [width, height, width, height]).astype(np.float32)


def _encode(image: Image.Image) -> bytes:
  buffer = io.BytesIO()
  image.save(buffer, format='JPEG', quality=JPEG_QUALITY)
  return buffer.getvalue()


class VideoFolder(tfds.core.GeneratorBasedBuilder):
  """Your own videos, frame folders or images, with optional keypoints."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Videos, frame folders and still images; splits by video; crops; keypoints.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = 'Pass the folder of your videos as config.dataset_path.'
  code_path = None  # No download checksums to look up (see frame_dataset.py).
  options = FolderOptions()

  @classmethod
  def get_builder_config(cls, name, version=None):
    """Every name is a config (one per folder, see `build_name`), so TFDS takes it without a warning and a
    builder rebuilt from a pickle gets the same one."""
    del version
    return tfds.core.BuilderConfig(name=name, description='The videos of one folder.')

  def _info(self):
    from landmarks_jax.data_pipelines import frame_dataset  # pylint: disable=g-import-not-at-top

    features = frame_dataset.frame_features('jpeg', None)
    return frame_dataset.frame_dataset_info(self, features, (), description=__doc__.split('\n')[0])

  def _split_generators(self, dl_manager):
    folder = os.fspath(dl_manager.manual_dir)
    options = self.options
    items = scan(folder)
    names = [item.name for item in items]
    # The CSVs first: their mistakes show in a moment, before any video is decoded.
    keypoint_names, points = read_keypoints(options.keypoints, names) if options.keypoints else ([], {})
    boxes = read_boxes(options.crop, names) if options.crop not in CROPS else {}
    skipped = []
    for item in items:
      try:
        probe(item, whole=options.skip_bad_files)
      except BadFileError as error:
        if not options.skip_bad_files:
          raise VideoFolderError(f'{error} {bad_file_fix(options)}') from error
        logging.warning('Leaving out %s: %s', item.path, error)
        skipped.append(item.path)
    usable = [item for item in items if item.path not in skipped]
    split_of = assign_splits([item.name for item in usable], options)
    empty = [split for split in SPLITS if split not in split_of.values()]
    if empty:
      raise VideoFolderError(
        f'{folder} gives no video to the {" and ".join(empty)} split{"s" if len(empty) > 1 else ""} '
        f'({len(usable)} usable videos): splits are by '
        'whole videos, so they need at least one video each. Add videos (or cut a long one into parts), or '
        'list the split of each in --config.video_split_file.'
      )
    train_videos = {name for name, split in split_of.items() if split == 'train'}
    unannotated = [
      k for k in keypoint_names if not any(k in found for (video, _), found in points.items() if video in train_videos)
    ]
    if unannotated:
      raise VideoFolderError(
        f'{options.keypoints}: keypoints {unannotated} are annotated on no training frame '
        '(the map to them is fitted on training frames); annotate some, choose the split '
        'with --config.video_split_file, or leave them out.'
      )
    self.info.metadata['joint_names'] = list(keypoint_names)
    self.info.metadata['video_names'] = names
    self.info.metadata['skipped'] = skipped
    self.info.metadata[OPTIONS_KEY] = recorded_options(folder, options)
    self.info.metadata[CONTENTS_KEY] = folder_contents(folder, items)
    self.info.metadata['videos'] = {}  # filled as each split's records are written
    context = dict(options=options, keypoint_names=keypoint_names, points=points, boxes=boxes)
    return {
      split: self._generate_examples(
        split, [(names.index(item.name), item) for item in usable if split_of[item.name] == split], context
      )
      for split in SPLITS
    }

  def _generate_examples(self, split, videos, context):
    """A split's records, video after video, streamed from the decoder; its video table goes to the metadata."""
    options, keypoint_names, points = context['options'], context['keypoint_names'], context['points']
    table, key = [], 0
    for video_id, item in videos:
      count, first = 0, key
      for number, image in _frames_or_fix(item, options):
        count += 1
        if number % options.stride:
          continue
        size = stored_size(*image.size, options.short_side)
        scale = np.array(size, np.float64) / image.size
        joints = np.full((len(keypoint_names), 2), np.nan, np.float32)
        for k, name in enumerate(keypoint_names):
          if name in points.get((item.name, number), {}):
            joints[k] = np.asarray(points[(item.name, number)][name]) * scale
        box = frame_box(options, context['boxes'], item.name, number, *size, scale)
        yield (
          key,
          {
            'image': _encode(image.resize(size, Image.Resampling.BILINEAR) if size != image.size else image),
            'video': video_id,
            'frame': number,
            'frame_index': key - first,
            'joints': joints,
            'train_box': box,
            'eval_box': box,
          },
        )
        key += 1
      if not count:
        raise VideoFolderError(f'{item.path} has no frame; remove it.')
      beyond = sorted(frame for video, frame in points if video == item.name and not 0 <= frame < count)
      if beyond:
        raise VideoFolderError(
          f'{options.keypoints} names frame {beyond[0]} of video {item.name!r}, which has '
          f'frames 0 to {count - 1}; correct the CSV.'
        )
      table.append([video_id, first, key - first])
    self.info.metadata['videos'][split] = table


def probe(item: Item, whole: bool = False) -> None:
  """Decodes the first frame of a video, frame folder or image, or with `whole` every frame (a video that
  breaks midway, a corrupt frame in a folder): a file that is not one raises BadFileError, named."""
  count = 0
  for _ in read_frames(item):
    count += 1
    if not whole:
      break
  if not count:
    raise BadFileError(f'{item.path} has no frame.')


def bad_file_fix(options: FolderOptions) -> str:
  """What to do about an unreadable file of a build: the skip option, unless it is already on."""
  if options.skip_bad_files:
    return 'Remove it or re-encode it (it changed after it was checked).'
  return 'Remove it, re-encode it, or pass --config.video_skip_bad_files=True to leave it out.'


def _frames_or_fix(item: Item, options: FolderOptions) -> Iterator[tuple[int, Image.Image]]:
  """read_frames of a build: an unreadable file's error says what to do about it."""
  try:
    yield from read_frames(item)
  except BadFileError as error:
    raise VideoFolderError(f'{error} {bad_file_fix(options)}') from error


def folder_contents(folder: str, items: Sequence[Item]) -> dict[str, str]:
  """{path relative to the folder: digest of its files' names, sizes and modification times} of each video,
  frame folder and image: recorded by a build, so that a folder changed since is noticed."""
  contents = {}
  for item in items:
    files = frame_files(item.path) if item.kind == 'frames' else ['']
    digest = hashlib.sha256()
    for name in files:
      stat = os.stat(os.path.join(item.path, name) if name else item.path)
      digest.update(f'{name}\0{stat.st_size}\0{stat.st_mtime_ns}\0'.encode())
    contents[os.path.relpath(item.path, folder)] = digest.hexdigest()[:16]
  return contents


def contents_changes(before: dict[str, str], now: dict[str, str]) -> str:
  """'added a; removed b; modified c' between two folder_contents (empty when they match)."""
  changes = (
    ('added', sorted(set(now) - set(before))),
    ('removed', sorted(set(before) - set(now))),
    ('modified', sorted(k for k in set(now) & set(before) if now[k] != before[k])),
  )
  return '; '.join(f'{what} {", ".join(names)}' for what, names in changes if names)


def build_name(folder: str) -> str:
  """The build's TFDS config name: the folder's name and a short hash of its resolved path, so that builds of
  several folders live side by side in one data directory."""
  path = os.path.realpath(folder)
  stem = re.sub(r'[^A-Za-z0-9_]+', '_', os.path.basename(path)).strip('_')[:40] or 'folder'
  return f'{stem}_{hashlib.sha256(path.encode()).hexdigest()[:10]}'


def recorded_options(folder: str, options: FolderOptions) -> str:
  """What a build records of its source, compared on reuse: the folder and every option, as JSON."""
  return json.dumps(dict(dataclasses.asdict(options), folder=os.path.realpath(folder)), sort_keys=True)


def prepare(folder: str, data_dir: str | None, options: FolderOptions) -> VideoFolder:
  """Builds the folder's dataset into `data_dir` once and returns the builder. Each folder has its own build
  there (`build_name`); a build with other options, or of a folder whose videos changed since, is refused,
  naming the difference. A build whose folder is gone (the data dir copied to another machine) is reused."""
  options.check()
  builder = VideoFolder(data_dir=data_dir or None, config=build_name(folder), file_format='array_record')
  builder.options = options
  if builder.data_path.exists():
    metadata = builder.info.metadata or {}
    built = metadata.get(OPTIONS_KEY)
    wanted = recorded_options(folder, options)
    if built != wanted:
      before, now = json.loads(built or '{}'), json.loads(wanted)
      changed = ', '.join(
        f'{k}: built {before.get(k)!r}, asked {now[k]!r}' for k in sorted(now) if before.get(k) != now[k]
      )
      raise VideoFolderError(
        f'The video_folder build in {builder.data_path} was made from other options ({changed}). '
        f'Pass another --config.data_dir for this one, or delete {builder.data_path} to '
        'rebuild.'
      )
    if os.path.isdir(folder):
      changes = contents_changes(metadata.get(CONTENTS_KEY, {}), folder_contents(folder, scan(folder)))
      if changes:
        raise VideoFolderError(
          f'{folder} changed since it was built into {builder.data_path} ({changes}): '
          f'delete {builder.data_path} to build it again from the folder as it is now, or '
          'put the files back as they were.'
        )
    return builder
  scan(folder)  # a missing or empty folder fails before TFDS creates anything
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=folder))
  return builder
