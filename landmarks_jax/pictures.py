"""Pictures of evaluation results: landmarks and joints on frames, masks, animations and heatmaps.

Every function is deterministic, returns uint8 RGB arrays (H, W, 3) and writes a file only when given a path.
Images come as floats in [-1, 1] (the model's range) or uint8. Landmarks are (K, 2) arrays of (x, y) in
[-1, 1] where -1 is the first pixel row/column and pixel i sits at -1 + 2i / size, as on the model's grid.
Joints are (J, 2) full-frame pixels (x, y), placed on a tile through the crop box the tile was cut from.
"""

import colorsys
import math

import numpy as np
from PIL import Image
from PIL import ImageDraw
from PIL import ImageFont
from PIL import features

from landmarks_jax.data import files

SKELETON_COLOR = (255, 255, 255)
LABEL_COLOR = (255, 255, 255)
LABEL_OUTLINE_COLOR = (0, 0, 0)
LANDMARK_RADIUS = 1
JOINT_RADIUS = 2


def landmark_palette(num_colors):
  """Distinct colours for landmarks, the PASCAL VOC label colours from label 1 on (as the PyTorch original).

  Label n's bits are dealt out in turn to red, green and blue, most significant bit first, so the first
  colours are (128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 128), ...

  Returns:
    (num_colors, 3) uint8.
  """
  palette = np.zeros((num_colors, 3), dtype=np.uint8)
  for index in range(num_colors):
    label = index + 1
    for bit in range(8):
      for channel in range(3):
        if label >> (3 * bit + channel) & 1:
          palette[index, channel] |= 0x80 >> bit
  return palette


def joint_colors(num_joints):
  """Bright colours of evenly spaced hue, one per joint: (num_joints, 3) uint8."""
  colors = [colorsys.hsv_to_rgb(j / max(num_joints, 1), 1.0, 1.0) for j in range(num_joints)]
  return np.round(np.array(colors, dtype=np.float64).reshape(-1, 3) * 255).astype(np.uint8)


def to_uint8_image(image):
  """(H, W), (H, W, 1) or (H, W, 3) image, float in [-1, 1] or uint8 -> (H, W, 3) uint8."""
  image = np.asarray(image)
  if image.ndim == 2:
    image = image[..., None]
  if image.ndim != 3 or image.shape[-1] not in (1, 3):
    raise ValueError(f'image must be (H, W), (H, W, 1) or (H, W, 3); got shape {image.shape}.')
  if image.dtype != np.uint8:
    if not np.issubdtype(image.dtype, np.floating):
      raise ValueError(f'image must be float in [-1, 1] or uint8; got dtype {image.dtype}.')
    image = np.round(np.clip((image + 1.0) / 2.0, 0.0, 1.0) * 255.0).astype(np.uint8)
  return np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image


def mask_to_uint8_image(mask):
  """(H, W) or (H, W, 1) mask, float in [0, 1] or uint8 -> (H, W, 3) uint8 grey."""
  mask = np.asarray(mask)
  if mask.ndim == 3 and mask.shape[-1] == 1:
    mask = mask[..., 0]
  if mask.ndim != 2:
    raise ValueError(f'mask must be (H, W) or (H, W, 1); got shape {mask.shape}.')
  if mask.dtype != np.uint8:
    mask = np.round(np.clip(mask, 0.0, 1.0) * 255.0).astype(np.uint8)
  return np.repeat(mask[..., None], 3, axis=-1)


def normalized_to_pixels(coords, height, width):
  """(..., 2) coordinates (x, y) in [-1, 1] -> (..., 2) positions (column, row) on a height x width image."""
  coords = np.asarray(coords, dtype=np.float64)
  return (coords + 1.0) * np.array([width, height]) / 2.0


def frame_to_tile_pixels(joints_px, box, height, width):
  """(..., 2) full-frame pixel joints -> positions on a height x width tile cut from `box` and resized."""
  x_min, y_min, x_max, y_max = (float(v) for v in box)
  scale = np.array([width / (x_max - x_min), height / (y_max - y_min)])
  return (np.asarray(joints_px, dtype=np.float64) - np.array([x_min, y_min])) * scale


def _label_font(size):
  # The built-in bitmap font has one size; FreeType (normally present) allows small labels on small tiles.
  if features.check('freetype2'):
    return ImageFont.load_default(size=size)
  return ImageFont.load_default()


def _dot(draw, center, radius, color):
  column, row = (int(round(v)) for v in center)
  draw.ellipse([column - radius, row - radius, column + radius, row + radius], fill=tuple(int(c) for c in color))


def draw_frame(
  image, landmarks=None, joints_px=None, box=None, skeleton=None, number_landmarks=True, scale=1, font_size=8, radius=1
):
  """Draws joints (with an optional skeleton) and numbered landmarks on one frame.

  Args:
    image: (H, W[, C]) frame, float in [-1, 1] or uint8.
    landmarks: optional (K, 2) landmarks (x, y) in [-1, 1], drawn as small dots in `landmark_palette`
      colours.
    joints_px: optional (J, 2) joints in full-frame pixels, drawn as discs in `joint_colors`.
    box: (4,) crop box (x_min, y_min, x_max, y_max) the frame was cut from; None when `image` is the full
      frame.
    skeleton: optional list of (joint_a, joint_b) index pairs joined by lines.
    number_landmarks: write each landmark's index beside its dot.
    scale: integer enlargement (nearest neighbour) before drawing, so marks stay legible on small frames.
    font_size: label size in pixels of the enlarged frame.
    radius: a multiple of the marks' radii and line width (large frames need larger marks).

  Returns:
    (H * scale, W * scale, 3) uint8.
  """
  tile = to_uint8_image(image)
  height, width = tile.shape[:2]
  if scale != 1:
    tile = np.repeat(np.repeat(tile, scale, axis=0), scale, axis=1)
  # Pixel centre c of the original frame is centre (c + 0.5) * scale - 0.5 of the enlarged one.
  to_canvas = lambda positions: (positions + 0.5) * scale - 0.5
  canvas = Image.fromarray(tile)
  draw = ImageDraw.Draw(canvas)

  if joints_px is not None:
    joints_px = np.asarray(joints_px, dtype=np.float64)
    if joints_px.ndim != 2 or joints_px.shape[-1] != 2:
      raise ValueError(f'joints_px must be (J, 2); got shape {joints_px.shape}.')
    if box is None:
      box = (0.0, 0.0, float(width), float(height))
    points = to_canvas(frame_to_tile_pixels(joints_px, box, height, width))
    for joint_a, joint_b in skeleton or ():
      if not (0 <= joint_a < len(points) and 0 <= joint_b < len(points)):
        raise ValueError(f'skeleton pair ({joint_a}, {joint_b}) names a joint outside 0..{len(points) - 1}.')
      draw.line([tuple(points[joint_a]), tuple(points[joint_b])], fill=SKELETON_COLOR, width=radius)
    for point, color in zip(points, joint_colors(len(points))):
      _dot(draw, point, JOINT_RADIUS * radius, color)

  if landmarks is not None:
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.ndim != 2 or landmarks.shape[-1] != 2:
      raise ValueError(f'landmarks must be (K, 2) (x, y) in [-1, 1]; got shape {landmarks.shape}.')
    points = to_canvas(normalized_to_pixels(landmarks, height, width))
    if number_landmarks:
      font = _label_font(font_size)
      for index, point in enumerate(points):
        position = (
          int(round(point[0])) + (LANDMARK_RADIUS + 1) * radius,
          int(round(point[1])) + LANDMARK_RADIUS * radius,
        )
        draw.text(position, str(index), fill=LABEL_COLOR, font=font, stroke_width=1, stroke_fill=LABEL_OUTLINE_COLOR)
    # Dots last, so no label hides a landmark.
    for point, color in zip(points, landmark_palette(len(points))):
      _dot(draw, point, LANDMARK_RADIUS * radius, color)
  return np.asarray(canvas)


def tile_grid(tiles, columns, padding=2):
  """(N, H, W, 3) uint8 tiles -> one image of ceil(N / columns) rows, black between and after tiles."""
  tiles = np.asarray(tiles)
  if tiles.ndim != 4 or tiles.shape[0] == 0:
    raise ValueError(f'tiles must be a non-empty (N, H, W, 3) array; got shape {tiles.shape}.')
  if columns < 1:
    raise ValueError(f'columns must be at least 1; got {columns}.')
  count, height, width, channels = tiles.shape
  columns = min(columns, count)
  rows = math.ceil(count / columns)
  grid_height = rows * height + (rows - 1) * padding
  grid_width = columns * width + (columns - 1) * padding
  grid = np.zeros((grid_height, grid_width, channels), dtype=np.uint8)
  for index, tile in enumerate(tiles):
    top = (index // columns) * (height + padding)
    left = (index % columns) * (width + padding)
    grid[top : top + height, left : left + width] = tile
  return grid


def _save_atomically(path, save):
  """Calls save(temp_path), then moves the finished file to `path`, so a failure leaves no partial file."""
  files.write_atomically(path, save)


def save_image(path, image):
  """Writes a (H, W, 3) uint8 image; the format follows the file extension (e.g. .png)."""
  picture = Image.fromarray(np.asarray(image, dtype=np.uint8))
  _save_atomically(path, picture.save)


def _optional_item(array, index):
  return None if array is None else array[index]


def landmark_grid(
  images,
  landmarks=None,
  joints_px=None,
  boxes=None,
  skeleton=None,
  columns=8,
  scale=1,
  number_landmarks=True,
  path=None,
):
  """A grid of frames with their regressed joints and raw landmarks, one tile per frame.

  Args:
    images: (N, H, W[, C]) frames, float in [-1, 1] or uint8.
    landmarks: optional (N, K, 2) landmarks in [-1, 1].
    joints_px: optional (N, J, 2) joints in full-frame pixels.
    boxes: optional (N, 4) crop boxes the frames were cut from (None: the frames are full frames).
    skeleton: optional (joint_a, joint_b) pairs.
    columns: tiles per row.
    scale: integer enlargement of each tile.
    number_landmarks: label landmarks with their index.
    path: optional image file to write.

  Returns:
    (rows * H * scale + gaps, columns * W * scale + gaps, 3) uint8.
  """
  tiles = [
    draw_frame(
      image,
      _optional_item(landmarks, i),
      _optional_item(joints_px, i),
      _optional_item(boxes, i),
      skeleton,
      number_landmarks,
      scale,
    )
    for i, image in enumerate(images)
  ]
  grid = tile_grid(np.stack(tiles), columns)
  if path is not None:
    save_image(path, grid)
  return grid


def mask_grid(images, masks, gt_masks=None, columns=4, path=None):
  """A grid of frames, each followed by its predicted foreground mask (and ground-truth mask, if given).

  Args:
    images: (N, H, W[, C]) frames, float in [-1, 1] or uint8.
    masks: (N, H, W[, 1]) predicted masks, float in [0, 1] or uint8.
    gt_masks: optional ground-truth masks of the same shape.
    columns: entries (frame and masks) per row.
    path: optional image file to write.

  Returns:
    uint8 grid image (rows * H + gaps, columns * W * (2 or 3) + gaps, 3).
  """
  if len(masks) != len(images) or (gt_masks is not None and len(gt_masks) != len(images)):
    raise ValueError('images, masks and gt_masks must hold the same number of frames.')
  entries = []
  for index, image in enumerate(images):
    parts = [to_uint8_image(image), mask_to_uint8_image(masks[index])]
    if gt_masks is not None:
      parts.append(mask_to_uint8_image(gt_masks[index]))
    if any(part.shape != parts[0].shape for part in parts):
      raise ValueError(f'Frame {index}: image and masks differ in size ({[p.shape[:2] for p in parts]}).')
    entries.append(np.concatenate(parts, axis=1))
  grid = tile_grid(np.stack(entries), columns)
  if path is not None:
    save_image(path, grid)
  return grid


def landmark_gif(
  path,
  images,
  landmarks=None,
  joints_px=None,
  boxes=None,
  skeleton=None,
  scale=1,
  number_landmarks=True,
  frame_duration_ms=100,
):
  """Writes an animated GIF of one video's frames with landmarks and joints, looping forever.

  PIL merges consecutive identical frames into one longer frame, so a video that does not move yields fewer
  GIF frames than it has.

  Args:
    path: the .gif file to write.
    images: (T, H, W[, C]) frames in time order, float in [-1, 1] or uint8.
    landmarks, joints_px, boxes, skeleton, scale, number_landmarks: as in `landmark_grid`.
    frame_duration_ms: display time of each frame.

  Returns:
    (T, H * scale, W * scale, 3) uint8 frames as drawn (before the GIF's 256-colour quantisation).
  """
  if len(images) == 0:
    raise ValueError('Cannot write a GIF of zero frames.')
  frames = np.stack(
    [
      draw_frame(
        image,
        _optional_item(landmarks, i),
        _optional_item(joints_px, i),
        _optional_item(boxes, i),
        skeleton,
        number_landmarks,
        scale,
      )
      for i, image in enumerate(images)
    ]
  )
  pil_frames = [Image.fromarray(frame) for frame in frames]
  _save_atomically(
    path,
    lambda temp_path: pil_frames[0].save(
      temp_path, format='GIF', save_all=True, append_images=pil_frames[1:], duration=frame_duration_ms, loop=0
    ),
  )
  return frames


def colorize_heatmaps(heatmaps, path=None):
  """Projects K landmark heatmaps to one RGB picture, as the PyTorch original's `project_heatmaps_colorized`.

  The maps are divided by their common maximum, each weights its `landmark_palette` colour, the colours add
  up, and the sum is clipped to 255 and truncated to uint8 as in the original. All-zero maps give black.

  Args:
    heatmaps: (H, W, K) non-negative heatmaps (NHWC, one channel per landmark).
    path: optional image file to write.

  Returns:
    (H, W, 3) uint8.
  """
  heatmaps = np.asarray(heatmaps, dtype=np.float64)
  if heatmaps.ndim != 3:
    raise ValueError(f'heatmaps must be (H, W, K); got shape {heatmaps.shape}.')
  peak = heatmaps.max()
  if peak > 0:
    heatmaps = heatmaps / peak
  colored = heatmaps @ landmark_palette(heatmaps.shape[-1]).astype(np.float64)
  picture = np.clip(colored, 0.0, 255.0).astype(np.uint8)
  if path is not None:
    save_image(path, picture)
  return picture
