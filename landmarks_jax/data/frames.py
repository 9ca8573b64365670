"""One record of a frame dataset, decoded, cropped and resized: the examples the input pipeline batches.

Pixels stay uint8 from the decoder to the device (a quarter of float32's bytes to move); the step converts
them there (`pixels.py`). The crop goes through PIL as the PyTorch original's does (`Image.crop`, a mirror,
then torchvision's `Resize`, which on PIL images is `Image.resize` with the bilinear filter).

A JPEG whose crop is at least twice the model's input size is decoded at 1/2, 1/4 or 1/8 of its size by the
JPEG decoder's own DCT scaling (`reduced_decode`, on by default), which skips most of the decoding work; the
crop is then taken from the smaller image. Its pixels differ slightly from a full decode followed by the
resize (docs/training.md says by how much); `reduced_decode=False` decodes every frame in full, as the
original does. Nothing here imports JAX or TensorFlow.
"""

import functools
import io
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from PIL import Image

from landmarks_jax import user_errors

Example = dict[str, np.ndarray]
DECODE_SCALES = (8, 4, 2)  # The reductions libjpeg's DCT scaling offers (PIL's `draft`), largest first.


class RecordError(user_errors.UserError, ValueError):
  """A record that cannot be read, decoded or cropped; the message names its index, video and frame."""


def crop_resize(image: Image.Image, box: Sequence[float], size: int, flip: bool = False) -> np.ndarray:
  """Crops by a float box, optionally mirrors, and resizes to size x size with PIL's bilinear filter.

  The crop goes through `Image.crop` itself, as in the original: Pillow rounds each box coordinate with
  Python's `round` (checked in Pillow 13), to the nearest integer with ties to even, so a box of
  (2.5, 3.5, ...) starts at column 2 and row 4. The mirror comes before the resize as in the original.

  Returns:
    (size, size, C) uint8.
  """
  image = image.crop(tuple(float(v) for v in box))
  if flip:
    image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
  resized = np.asarray(image.resize((size, size), Image.Resampling.BILINEAR))
  return resized if resized.ndim == 3 else resized[..., None]


def normalized_joints(joints: np.ndarray, box: np.ndarray, flip: bool) -> np.ndarray:
  """(J, 2) joints in [-1, 1] over the box, ((x - x_min) / w - 0.5) * 2 as the original's training target."""
  x_min, y_min, x_max, y_max = (float(v) for v in box)
  joints = np.asarray(joints, np.float64)
  x = ((joints[:, 0] - x_min) / (x_max - x_min) - 0.5) * 2
  y = ((joints[:, 1] - y_min) / (y_max - y_min) - 0.5) * 2
  if flip:
    x = -x
  return np.stack([x, y], axis=-1).astype(np.float32)


def signed_float(images: np.ndarray) -> np.ndarray:
  """uint8 images as float32 in [-1, 1] (ToTensor then Normalize(0.5, 0.5)), on the host."""
  return np.asarray(images, np.float32) / 127.5 - 1.0


def unit_float(images: np.ndarray) -> np.ndarray:
  """uint8 masks as float32 in [0, 1], on the host."""
  return np.asarray(images, np.float32) / 255.0


def _as_bytes(data: Any) -> bytes:
  if isinstance(data, np.ndarray):
    data = data.item()
  return bytes(data)


def decode_scale(image_size: tuple[int, int], box: Sequence[float], out_size: int) -> int:
  """The largest DCT reduction (8, 4, 2, else 1) that leaves the box at least out_size pixels on each side."""
  box_width, box_height = float(box[2]) - float(box[0]), float(box[3]) - float(box[1])
  for scale in DECODE_SCALES:
    if min(box_width, box_height) / scale >= out_size and min(image_size) // scale >= 1:
      return scale
  return 1


def decode(
  data: Any, mode: str, box: Sequence[float] | None = None, out_size: int = 0, reduced: bool = False
) -> tuple[Image.Image, np.ndarray | None]:
  """Decodes an image as `mode`; with `reduced`, a JPEG at the largest reduction that keeps the box at least
  out_size pixels wide. Returns the image and the box in its pixels (scaled with it; None without a box)."""
  image = Image.open(io.BytesIO(_as_bytes(data)))
  scale = 1
  if reduced and box is not None and image.format == 'JPEG':
    scale = decode_scale(image.size, box, out_size)
    if scale > 1:
      # PIL picks the scale from whole quotients; the decoder then covers the frame with ceil(size / scale).
      image.draft(mode, (image.size[0] // scale, image.size[1] // scale))
      scale = round(image.decoderconfig[0]) if image.decoderconfig else 1
  image.load()
  if image.mode != mode:  # an RGB JPEG is used as decoded: convert() would copy it
    image = image.convert(mode)
  scaled_box = None if box is None else np.asarray(box, np.float64) / scale
  return image, scaled_box


def describe(record: int, example: Mapping[str, Any] | None, table: Any = None) -> str:
  """'record R (video V, frame F)' from the record itself, or from the video table when it could not be read."""
  if example is not None and 'video' in example and 'frame' in example:
    return f'record {record} (video {int(example["video"])}, frame {int(example["frame"])})'
  if table is not None and 0 <= record < len(table.video):
    return f'record {record} (video {int(table.video[record])}, frame index {int(table.frame_index[record])})'
  return f'record {record}'


def _read(source: Sequence[Mapping[str, Any]], record: int, table: Any) -> Mapping[str, Any]:
  example = None
  try:
    example = source[record]
  except Exception as error:  # pylint: disable=broad-except
    raise RecordError(
      f'Cannot read {describe(record, example, table)}: {error}. The dataset may be corrupt; '
      'delete its folder in the data dir and build it again.'
    ) from error
  if table is not None and (
    int(example['video']) != table.video[record] or int(example['frame_index']) != table.frame_index[record]
  ):
    raise RecordError(
      f'{describe(record, example, table)} has frame_index {int(example["frame_index"])}, but the video '
      f'table places it at video {int(table.video[record])} position {int(table.frame_index[record])}; '
      'the dataset metadata does not match its records; rebuild the dataset.'
    )
  return example


def _crop(
  example: Mapping[str, Any], key: str, mode: str, box: np.ndarray, size: int, flip: bool, reduced: bool
) -> np.ndarray:
  image, scaled_box = decode(example[key], mode, box, size, reduced)
  return crop_resize(image, scaled_box, size, flip)


def _named(function: Callable[..., Example]) -> Callable[..., Example]:
  """Makes any error of an example function (a bad image, a bad crop box) a RecordError naming the record."""

  @functools.wraps(function)
  def wrapper(source, record, *args, table=None, **kwargs):
    try:
      return function(source, record, *args, table=table, **kwargs)
    except RecordError:
      raise
    except Exception as error:  # pylint: disable=broad-except
      example = None
      try:
        example = source[record]
      except Exception:  # pylint: disable=broad-except
        pass
      raise RecordError(
        f'Cannot decode or crop {describe(record, example, table)}: {error}. The dataset may be '
        'corrupt; delete its folder in the data dir and build it again.'
      ) from error

  return wrapper


@_named
def training_example(
  source: Sequence[Mapping[str, Any]],
  record: int,
  partner: int,
  flip: bool,
  img_size: int,
  with_mask: bool,
  *,
  table: Any = None,
  reduced: bool = False,
) -> Example:
  """A training pair: the frame and its temporal partner, both cropped by the frame's train_box.

  Returns:
    'target', 'input_temporal' (S, S, 3) uint8; 'joints' (J, 2) float32 normalised to the box; 'mask'
    (S, S, 1) uint8 with `with_mask`; 'index', 'temporal_index', 'video' int32 scalars.
  """
  example = _read(source, record, table)
  other = _read(source, partner, table)
  box = np.asarray(example['train_box'], np.float32)
  out = {
    'target': _crop(example, 'image', 'RGB', box, img_size, flip, reduced),
    'input_temporal': _crop(other, 'image', 'RGB', box, img_size, flip, reduced),
    'joints': normalized_joints(example['joints'], box, flip),
    'index': np.int32(record),
    'temporal_index': np.int32(partner),
    'video': np.int32(example['video']),
  }
  if with_mask:
    out['mask'] = _crop(example, 'mask', 'L', box, img_size, flip, reduced)
  return out


@_named
def eval_example(
  source: Sequence[Mapping[str, Any]],
  record: int,
  img_size: int,
  with_mask: bool,
  *,
  table: Any = None,
  reduced: bool = False,
) -> Example:
  """A frame cropped by its eval_box.

  Returns:
    'image' (S, S, 3) uint8; 'joints' (J, 2) float32 full-image pixels; 'box' (4,) float32; 'mask' (S, S, 1)
    uint8 with `with_mask`; 'video', 'frame', 'index' int32 scalars.
  """
  example = _read(source, record, table)
  box = np.asarray(example['eval_box'], np.float32)
  out = {
    'image': _crop(example, 'image', 'RGB', box, img_size, False, reduced),
    'joints': np.asarray(example['joints'], np.float32),
    'box': box,
    'video': np.int32(example['video']),
    'frame': np.int32(example['frame']),
    'index': np.int32(record),
  }
  if with_mask:
    out['mask'] = _crop(example, 'mask', 'L', box, img_size, False, reduced)
  return out


def has_mask(source: Sequence[Mapping[str, Any]]) -> bool:
  """Whether the records carry a foreground mask."""
  return len(source) > 0 and 'mask' in source[0]
