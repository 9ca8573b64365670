"""Tests of the humanoid motion-capture dataset: its renderer and projection, and the 'tiny' build."""

import colorsys
import dataclasses
import io
import math
import os
import xml.etree.ElementTree as ElementTree

import numpy as np
from PIL import Image
import pybullet_data
import pytest
from scipy import ndimage
import tensorflow_datasets as tfds

from landmarks_jax.data_pipelines import humanoid_mocap
from landmarks_jax.data_pipelines import humanoid_render

# What the 'tiny' variant promises: 64 px frames, 2 train videos, 1 validation and 1 test, 50 frames each.
TINY_SIZE = 64
TINY_COUNTS = {'train': 100, 'validation': 50, 'test': 50}
# Joints that lie inside their part's geometry (pelvis sphere, hand spheres, foot boxes) rather than where
# two separate primitives meet.
INTERIOR_JOINTS = ('root', 'right_wrist', 'left_wrist', 'right_ankle', 'left_ankle')


def _decode(data):
  return np.asarray(Image.open(io.BytesIO(data)))


def _read(builder):
  """{split: dict of stacked fields}, with the encoded bytes under 'image_bytes' and 'mask_bytes'."""
  decoders = {'image': tfds.decode.SkipDecoding(), 'mask': tfds.decode.SkipDecoding()}
  splits = {}
  for split in humanoid_mocap.SPLITS:
    source = builder.as_data_source(split, decoders=decoders)
    examples = [source[i] for i in range(len(source))]
    numeric = ('video', 'frame', 'frame_index', 'joints', 'train_box', 'eval_box')
    fields = {key: np.stack([e[key] for e in examples]) for key in numeric}
    fields['image_bytes'] = [e['image'] for e in examples]
    fields['mask_bytes'] = [e['mask'] for e in examples]
    fields['image'] = np.stack([_decode(e['image']) for e in examples])
    masks = [_decode(e['mask']) for e in examples]
    fields['mask'] = np.stack([m if m.ndim == 2 else m[..., 0] for m in masks])
    splits[split] = fields
  return splits


@pytest.fixture(scope='module')
def tiny_dir(tmp_path_factory):
  return tmp_path_factory.mktemp('tfds')


@pytest.fixture(scope='module')
def tiny(tiny_dir):
  builder = humanoid_mocap.prepare(tiny_dir, variant='tiny', seed=0)
  return builder, _read(builder)


def _hue_degrees(rgb):
  return 360.0 * colorsys.rgb_to_hsv(*(channel / 255.0 for channel in rgb))[0]


def _circular_distance(a, b):
  difference = abs(a - b) % 360.0
  return min(difference, 360.0 - difference)


def _check_eval_subjects_unseen(subjects):
  """Validation and test subjects share no photo and no hue (within 3 degrees) with any training subject."""
  train_photos = {s['backdrop']['photo'] for s in subjects['train']}
  train_hues = [_hue_degrees(c) for s in subjects['train'] for c in s['part_colours']]
  for split in ('validation', 'test'):
    for subject in subjects[split]:
      assert subject['backdrop']['photo'] not in train_photos
      hues = [_hue_degrees(c) for c in subject['part_colours']]
      closest = min(_circular_distance(h, t) for h in hues for t in train_hues)
      assert closest > 3.0, (split, subject['video'], closest)


def test_splits_counts_and_video_table(tiny):
  builder, data = tiny
  assert set(builder.info.splits.keys()) == set(TINY_COUNTS)
  table = builder.info.metadata['videos']
  for split, count in TINY_COUNTS.items():
    assert builder.info.splits[split].num_examples == count
    assert len(data[split]['video']) == count
    expected_first = 0
    for video, first, num_frames in table[split]:
      assert first == expected_first
      np.testing.assert_array_equal(data[split]['video'][first : first + num_frames], video)
      expected_first += num_frames
    assert expected_first == count
  assert [len(table[split]) for split in humanoid_mocap.SPLITS] == [2, 1, 1]


def test_videos_disjoint_across_splits(tiny):
  _, data = tiny
  videos = [set(data[split]['video'].tolist()) for split in humanoid_mocap.SPLITS]
  assert sum(len(v) for v in videos) == len(set.union(*videos))


def test_frame_index_and_frame_consecutive_within_video(tiny):
  builder, data = tiny
  for split in humanoid_mocap.SPLITS:
    for _, first, num_frames in builder.info.metadata['videos'][split]:
      records = slice(first, first + num_frames)
      np.testing.assert_array_equal(data[split]['frame_index'][records], np.arange(num_frames))
      np.testing.assert_array_equal(np.diff(data[split]['frame'][records]), 1)


def test_eval_subjects_unseen_in_training(tiny):
  builder, _ = tiny
  _check_eval_subjects_unseen(builder.info.metadata['subjects'])


def test_full_plan_eval_subjects_unseen_and_every_clip_trained():
  plans = humanoid_mocap.plan_videos(humanoid_mocap.make_config('full'))
  subjects = {split: [dataclasses.asdict(p) for p in split_plans] for split, split_plans in plans.items()}
  _check_eval_subjects_unseen(subjects)
  assert {p.clip for p in plans['train']} == set(humanoid_render.CLIP_NAMES)
  assert sum(p.num_frames for p in plans['train']) >= 4000
  ids = [p.video for split_plans in plans.values() for p in split_plans]
  assert len(ids) == len(set(ids))


def test_same_seed_same_bytes_other_seed_differs(tiny, tmp_path):
  _, data = tiny
  again = _read(humanoid_mocap.prepare(tmp_path / 'again', variant='tiny', seed=0))
  other = _read(humanoid_mocap.prepare(tmp_path / 'other', variant='tiny', seed=1))
  for split in humanoid_mocap.SPLITS:
    assert again[split]['image_bytes'] == data[split]['image_bytes']
    assert again[split]['mask_bytes'] == data[split]['mask_bytes']
    np.testing.assert_array_equal(again[split]['joints'], data[split]['joints'])
    different = sum(a != b for a, b in zip(other[split]['image_bytes'], data[split]['image_bytes']))
    assert different == len(data[split]['image_bytes'])


def test_boxes_and_frame_size(tiny):
  _, data = tiny
  for split in humanoid_mocap.SPLITS:
    assert data[split]['image'].shape[1:] == (TINY_SIZE, TINY_SIZE, 3)
    assert data[split]['mask'].shape[1:] == (TINY_SIZE, TINY_SIZE)
    boxes, joints = data[split]['train_box'], data[split]['joints']
    np.testing.assert_array_equal(data[split]['eval_box'], boxes)
    # One box a video: the rule's box around all of the video's silhouettes together.
    for video in np.unique(data[split]['video']):
      in_video = data[split]['video'] == video
      expected = humanoid_mocap.body_box(data[split]['mask'][in_video], TINY_SIZE)
      np.testing.assert_array_equal(boxes[in_video], np.broadcast_to(expected, boxes[in_video].shape))
    assert np.all(boxes[:, :2] >= 0) and np.all(boxes[:, 2:] <= TINY_SIZE)
    # Every joint and every mask pixel lies inside its frame's box.
    assert np.all(joints >= boxes[:, None, :2]) and np.all(joints <= boxes[:, None, 2:])
    for box, mask in zip(boxes, data[split]['mask']):
      rows, columns = np.nonzero(mask)
      assert columns.min() >= box[0] and columns.max() + 1 <= box[2]
      assert rows.min() >= box[1] and rows.max() + 1 <= box[3]
    # Square unless clipped at the frame's edge.
    sides = boxes[:, 2:] - boxes[:, :2]
    unclipped = np.all((boxes[:, :2] > 0) & (boxes[:, 2:] < TINY_SIZE), axis=1)
    np.testing.assert_allclose(sides[unclipped, 0], sides[unclipped, 1], rtol=1e-5)


def test_body_box_rule():
  mask = np.zeros((100, 100), np.uint8)
  mask[30:70, 40:60] = 255  # a 20 x 40 silhouette centred on (50, 50)
  np.testing.assert_allclose(humanoid_mocap.body_box(mask, 100), [27.0, 27.0, 73.0, 73.0])
  corner = np.zeros((100, 100), np.uint8)
  corner[0:40, 0:20] = 255  # the same silhouette at the frame's corner: clipped
  np.testing.assert_allclose(humanoid_mocap.body_box(corner, 100), [0.0, 0.0, 33.0, 43.0])
  dot = np.zeros((100, 100), np.uint8)
  dot[50, 50] = 255  # never smaller than 35% of the frame
  box = humanoid_mocap.body_box(dot, 100)
  np.testing.assert_allclose(box[2:] - box[:2], [35.0, 35.0], rtol=1e-6)


def test_body_box_of_a_video_covers_every_frame():
  left, right = np.zeros((2, 100, 100), np.uint8)
  left[30:70, 20:40] = 255
  right[30:70, 60:80] = 255
  # Together they span columns 20..79 and rows 30..69: a 60-pixel side, scaled by 1.15 about (50, 50).
  np.testing.assert_allclose(humanoid_mocap.body_box(np.stack([left, right]), 100), [15.5, 15.5, 84.5, 84.5], rtol=1e-6)


def test_joints_inside_frame_and_on_the_body(tiny):
  _, data = tiny
  interior = [humanoid_render.JOINT_NAMES.index(name) for name in INTERIOR_JOINTS]
  exact_interior, exact_all, near_all = [], [], []
  for split in humanoid_mocap.SPLITS:
    joints = data[split]['joints']
    assert joints.shape[1:] == (15, 2)
    assert np.all(joints >= 0) and np.all(joints <= TINY_SIZE - 1)
    for mask, frame_joints in zip(data[split]['mask'], joints):
      body = mask > 0
      near_body = ndimage.binary_dilation(body, np.ones((3, 3), bool))  # Within one pixel.
      columns, rows = np.round(frame_joints).astype(int).T
      exact_all.append(body[rows, columns])
      near_all.append(near_body[rows, columns])
      exact_interior.append(body[rows[interior], columns[interior]])
      assert near_body[rows[0], columns[0]]  # The root, always.
  # The other joints sit where two separate primitives meet (the chest joint in the gap between the pelvis
  # and chest spheres, shoulders just above the upper-arm capsules), so they may fall a pixel outside.
  assert np.mean(near_all) >= 0.99
  assert np.mean(exact_interior) >= 0.95
  assert np.mean(exact_all) >= 0.7


def test_mask_is_binary_and_body_sized(tiny):
  _, data = tiny
  for split in humanoid_mocap.SPLITS:
    masks = data[split]['mask']
    assert set(np.unique(masks).tolist()) <= {0, 255}
    fractions = (masks > 0).mean(axis=(1, 2))
    assert fractions.min() > 0.01 and fractions.max() < 0.5


def test_mask_covers_everything_that_moves(tiny):
  # The background of a video is one still photo crop: away from the mask (and its antialiased rim),
  # consecutive frames are identical, so no part of the body lies outside the mask.
  builder, data = tiny
  for split in humanoid_mocap.SPLITS:
    images, masks = data[split]['image'], data[split]['mask'] > 0
    for _, first, num_frames in builder.info.metadata['videos'][split]:
      for a in range(first, first + num_frames - 1):
        near_body = ndimage.binary_dilation(masks[a] | masks[a + 1], np.ones((3, 3), bool))
        background = ~near_body
        np.testing.assert_array_equal(images[a][background], images[a + 1][background])
        assert np.any(images[a] != images[a + 1])


def test_backdrop_is_out_of_focus(monkeypatch):
  backdrop = humanoid_render.Backdrop(photo='gravel', side=0.5, top=0.5, left=0.5, flip=False)
  blurred = humanoid_render.backdrop_image(backdrop, 128).astype(np.float64)
  monkeypatch.setattr(humanoid_render, 'BACKDROP_BLUR', 0.0)
  sharp = humanoid_render.backdrop_image(backdrop, 128).astype(np.float64)
  # Same picture on the whole (means agree), but most of its pixel-to-pixel texture is gone.
  assert abs(blurred.mean() - sharp.mean()) < 2.0
  texture = lambda image: np.abs(np.diff(image, axis=1)).mean()
  assert texture(blurred) < 0.3 * texture(sharp)


def test_consecutive_frames_move(tiny):
  builder, data = tiny
  for split in humanoid_mocap.SPLITS:
    joints = data[split]['joints']
    for _, first, num_frames in builder.info.metadata['videos'][split]:
      steps = np.abs(np.diff(joints[first : first + num_frames], axis=0)).max(axis=(1, 2))
      assert np.all(steps > 0.05)


def test_joint_names_and_parents_follow_the_urdf(tiny):
  builder, _ = tiny
  with open(os.path.join(pybullet_data.getDataPath(), 'humanoid', 'humanoid.urdf'), 'rb') as f:
    urdf = ElementTree.fromstring(f.read().rstrip(b'\0\r\n'))  # The file ends in a stray NUL byte.
  joints = urdf.findall('joint')
  names = [joint.get('name') for joint in joints]
  assert builder.info.metadata['joint_names'] == names
  assert len(names) == 15
  # Each joint attaches a link named like the joint; its parent joint is the one attaching its parent link.
  parent_link = {joint.find('child').get('link'): joint.find('parent').get('link') for joint in joints}
  expected_parents = [names.index(parent_link[name]) if parent_link[name] in names else -1 for name in names]
  assert builder.info.metadata['joint_parents'] == expected_parents


def test_projection_matches_the_rendered_image():
  renderer = humanoid_render.HumanoidRenderer()
  try:
    renderer.set_pose(humanoid_render.pose_at(humanoid_render.load_clip('walk'), 0.3))
    colours = [(0, 0, 0)] * 15
    colours[humanoid_render.JOINT_NAMES.index('neck')] = (255, 255, 255)  # Only the head is bright.
    renderer.set_colours(colours)
    flat_light = humanoid_render.Light(direction=(0.0, 1.0, 0.0), ambient=1.0, diffuse=0.0)
    head = renderer.head_centre()
    projection = humanoid_render.projection_matrix()
    for size, yaw, pitch, distance in ((64, 30.0, -10.0, 2.5), (128, 250.0, -30.0, 3.0)):
      background = Image.new('RGB', (2 * size, 2 * size))
      # Aimed off the head, so its image is away from the centre.
      target = renderer.joint_positions()[0]
      view = humanoid_render.view_matrix(target, distance, yaw, pitch)
      image, _ = renderer.render(view, projection, flat_light, background)
      weight = image[..., 0].astype(np.float64)
      rows, columns = np.mgrid[:size, :size]
      centroid = np.array([(weight * columns).sum(), (weight * rows).sum()]) / weight.sum()
      projected = humanoid_render.project(head, view, projection, size)
      assert np.abs(projected - np.array([size, size]) / 2).max() > 5
      assert np.all(projected > 8) and np.all(projected < size - 8)  # The whole head is in the frame.
      np.testing.assert_allclose(projected, centroid, atol=0.15)
  finally:
    renderer.close()


def test_looping_and_back_and_forth_playback():
  walk = humanoid_render.load_clip('walk')
  assert walk.loops
  a, b = humanoid_render.pose_at(walk, 0.4), humanoid_render.pose_at(walk, 0.4 + walk.duration)
  shift = walk.keyframes[-1, :3] - walk.keyframes[0, :3]
  np.testing.assert_allclose(b.root_position - a.root_position, [shift[0], 0.0, shift[2]], atol=1e-9)
  np.testing.assert_allclose(np.concatenate(b.joints), np.concatenate(a.joints), atol=1e-9)
  kick = humanoid_render.load_clip('kick')
  assert not kick.loops
  forward = humanoid_render.pose_at(kick, 0.5)
  backward = humanoid_render.pose_at(kick, 2 * kick.duration - 0.5)
  np.testing.assert_allclose(backward.root_position, forward.root_position, atol=1e-9)
  np.testing.assert_allclose(np.concatenate(backward.joints), np.concatenate(forward.joints), atol=1e-9)
  # At a keyframe the pose is that keyframe's: the knee angle (column 19 after the duration) for instance.
  keyframe = 10
  knee = humanoid_render.pose_at(kick, kick.times[keyframe]).joints[3][0]
  assert math.isclose(knee, kick.keyframes[keyframe, 19], abs_tol=1e-9)


def test_prepare_reuses_the_built_data(tiny, tiny_dir):
  builder, _ = tiny
  files = sorted(builder.data_path.iterdir())
  stamps = [os.stat(p).st_mtime_ns for p in files]
  again = humanoid_mocap.prepare(tiny_dir, variant='tiny', seed=0)
  assert os.fspath(again.data_path) == os.fspath(builder.data_path)
  assert [os.stat(p).st_mtime_ns for p in files] == stamps


def test_bad_variant_and_seed_are_refused():
  with pytest.raises(ValueError, match='variant'):
    humanoid_mocap.make_config('huge')
  with pytest.raises(ValueError, match='seed'):
    humanoid_mocap.make_config('tiny', seed=-1)
