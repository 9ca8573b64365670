"""Tests for the evaluation pictures."""

import numpy as np
from PIL import Image
import pytest

from landmarks_jax import pictures

BLACK_FRAME = -np.ones((32, 32, 3), dtype=np.float32)


def test_palette_deals_label_bits_to_red_green_blue():
  palette = pictures.landmark_palette(9)
  assert palette.dtype == np.uint8
  # Labels 1..9: bits 0/1/2 set the top bit of r/g/b, bits 3/4/5 the next one.
  np.testing.assert_array_equal(
    palette,
    [
      [128, 0, 0],
      [0, 128, 0],
      [128, 128, 0],
      [0, 0, 128],
      [128, 0, 128],
      [0, 128, 128],
      [128, 128, 128],
      [64, 0, 0],
      [192, 0, 0],
    ],
  )


def test_to_uint8_image_maps_minus_one_to_black_and_one_to_white():
  image = np.array([[-1.0, 0.0, 1.0, 3.0]], dtype=np.float32)
  out = pictures.to_uint8_image(image)
  assert out.shape == (1, 4, 3) and out.dtype == np.uint8
  np.testing.assert_array_equal(out[0, :, 0], [0, 128, 255, 255])
  uint8_frame = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
  np.testing.assert_array_equal(pictures.to_uint8_image(uint8_frame), uint8_frame)


def test_landmarks_are_drawn_at_their_pixels_in_palette_colours():
  # On a 32-pixel grid pixel i sits at -1 + 2i / 32: (0, 0) is pixel (16, 16); x = -0.6875, y = 0.25 is
  # column 5, row 20.
  landmarks = np.array([[0.0, 0.0], [-0.6875, 0.25]])
  out = pictures.draw_frame(BLACK_FRAME, landmarks=landmarks)
  assert out.shape == (32, 32, 3) and out.dtype == np.uint8
  np.testing.assert_array_equal(out[16, 16], [128, 0, 0])
  np.testing.assert_array_equal(out[20, 5], [0, 128, 0])
  assert not out[0:4, 0:4].any()  # Far from both marks the frame stays black.


def test_enlarged_frame_keeps_landmarks_in_place():
  out = pictures.draw_frame(BLACK_FRAME, landmarks=np.array([[0.0, 0.0]]), scale=2, number_landmarks=False)
  assert out.shape == (64, 64, 3)
  np.testing.assert_array_equal(out[32, 32], [128, 0, 0])


def test_joints_go_through_the_crop_box_with_a_skeleton():
  # Box (100, 200)-(164, 264) is 64 px wide, shown on 32 px: frame pixel (150, 250) -> tile (25, 25),
  # (108, 208) -> (4, 4) and (148, 208) -> (24, 4).
  joints = np.array([[150.0, 250.0], [108.0, 208.0], [148.0, 208.0]])
  out = pictures.draw_frame(BLACK_FRAME, joints_px=joints, box=[100.0, 200.0, 164.0, 264.0], skeleton=[(1, 2)])
  colors = pictures.joint_colors(3)
  np.testing.assert_array_equal(out[25, 25], colors[0])
  np.testing.assert_array_equal(out[4, 4], colors[1])
  np.testing.assert_array_equal(out[4, 24], colors[2])
  np.testing.assert_array_equal(out[4, 14], pictures.SKELETON_COLOR)  # Midway along the bone.
  assert len({tuple(c) for c in colors}) == 3


def test_landmark_grid_places_tiles_row_by_row(tmp_path):
  images = np.stack([BLACK_FRAME] * 3)
  landmarks = np.zeros((3, 1, 2))
  path = tmp_path / 'grid.png'
  grid = pictures.landmark_grid(images, landmarks, columns=2, path=str(path))
  # Two rows of two 32-px tiles with 2-px gaps.
  assert grid.shape == (66, 66, 3) and grid.dtype == np.uint8
  np.testing.assert_array_equal(grid[34 + 16, 16], [128, 0, 0])  # Third tile: second row, first column.
  assert not grid[34:, 34:].any()  # No fourth tile.
  np.testing.assert_array_equal(np.asarray(Image.open(path)), grid)


def test_mask_grid_puts_masks_beside_frames():
  images = np.stack([BLACK_FRAME] * 2)
  masks = np.ones((2, 32, 32, 1), dtype=np.float32)
  gt_masks = np.zeros((2, 32, 32), dtype=np.uint8)
  grid = pictures.mask_grid(images, masks, gt_masks, columns=4)
  assert grid.shape == (32, 2 * 96 + 2, 3)
  assert not grid[:, 0:32].any()
  assert (grid[:, 32:64] == 255).all()
  assert not grid[:, 64:96].any()
  with pytest.raises(ValueError, match='differ in size'):
    pictures.mask_grid(images, np.ones((2, 16, 16)))


def test_gif_has_one_frame_per_video_frame(tmp_path):
  images = np.stack([np.full((16, 16, 3), value, dtype=np.uint8) for value in (0, 80, 160, 240)])
  landmarks = np.zeros((4, 2, 2))
  path = tmp_path / 'video.gif'
  frames = pictures.landmark_gif(str(path), images, landmarks, number_landmarks=False)
  assert frames.shape == (4, 16, 16, 3)
  with Image.open(path) as gif:
    assert gif.format == 'GIF'
    assert gif.n_frames == 4


def test_one_hot_heatmap_takes_its_landmarks_colour():
  heatmaps = np.zeros((4, 3, 5))
  heatmaps[2, 1, 3] = 0.4  # Normalised by the maximum to 1.
  out = pictures.colorize_heatmaps(heatmaps)
  assert out.shape == (4, 3, 3) and out.dtype == np.uint8
  np.testing.assert_array_equal(out[2, 1], pictures.landmark_palette(5)[3])
  out[2, 1] = 0
  assert not out.any()


def test_heatmap_colours_scale_with_the_common_maximum_and_clip():
  heatmaps = np.zeros((1, 2, 3))
  heatmaps[0, 0] = [1.0, 0.5, 0.0]  # (128, 0, 0) + 0.5 * (0, 128, 0)
  heatmaps[0, 1] = [1.0, 1.0, 1.0]  # (128, 0, 0) + (0, 128, 0) + (128, 128, 0) = (256, 256, 0) -> 255
  np.testing.assert_array_equal(pictures.colorize_heatmaps(heatmaps)[0], [[128, 64, 0], [255, 255, 0]])
  assert not pictures.colorize_heatmaps(np.zeros((2, 2, 3))).any()
