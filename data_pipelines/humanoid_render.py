"""Poses, cameras, rendering and joint projection for the humanoid motion-capture dataset.

Plays the DeepMimic motion-capture clips that ship with pybullet (`pybullet_data/data/motions/
humanoid3d_*.txt`) on the DeepMimic humanoid (`pybullet_data/humanoid/humanoid.urdf`), renders each frame
with pybullet's CPU TinyRenderer, composites the body over a photo from scikit-image with the renderer's
segmentation, and projects the humanoid's 15 joints into the frame with the camera that rendered it.

World frame: y up (the clips' and the URDF's convention), metres. Image coordinates: x to the right, y down,
in pixels with pixel (row r, column c) centred at (x=c, y=r), so -1 in normalised coordinates is the first
pixel, as in the rest of the project.
"""

import contextlib
import dataclasses
import functools
import json
import math
import os
import sys
from typing import Iterator, NamedTuple

import numpy as np
from PIL import Image
from PIL import ImageFilter
import pybullet
import pybullet_data
from pybullet_utils import bullet_client

# The humanoid's links in URDF order; each link's frame sits on the joint that attaches it, and 'root' is
# the pelvis, so these are also the 15 joints whose positions the dataset annotates.
JOINT_NAMES = (
  'root',
  'chest',
  'neck',
  'right_hip',
  'right_knee',
  'right_ankle',
  'right_shoulder',
  'right_elbow',
  'right_wrist',
  'left_hip',
  'left_knee',
  'left_ankle',
  'left_shoulder',
  'left_elbow',
  'left_wrist',
)
# Index of each joint's parent in JOINT_NAMES (-1 for the root): the skeleton's bones.
JOINT_PARENTS = (-1, 0, 1, 0, 3, 4, 1, 6, 7, 0, 9, 10, 1, 12, 13)
NUM_JOINTS = len(JOINT_NAMES)

CLIP_NAMES = (
  'backflip',
  'cartwheel',
  'crawl',
  'dance_a',
  'dance_b',
  'getup_facedown',
  'getup_faceup',
  'jump',
  'kick',
  'punch',
  'roll',
  'run',
  'spin',
  'spinkick',
  'walk',
)

FPS = 30.0  # Frames per second of the rendered videos; the clips are interpolated to this rate.
FIELD_OF_VIEW = 50.0  # Vertical field of view of the camera, degrees.
# The pybullet DeepMimic environment loads the URDF at a quarter of its size: a body about 1.6 m tall.
_URDF_SCALE = 0.25
_URDF_PATH = os.path.join('humanoid', 'humanoid.urdf')
_HEAD_LINK = JOINT_NAMES.index('neck')  # The neck link's centre of mass is the centre of the head sphere.
# Each frame is rendered at this many times its size in both directions and averaged down: antialiased
# edges and a fractional coverage for compositing.
_SUPERSAMPLE = 2
# The camera aims at the root averaged over this many frames on either side, so the body moves a little in
# the frame instead of the pelvis being pinned to its centre.
_TARGET_HALF_WINDOW = 8
# The backdrop is out of focus: a Gaussian blur of this fraction of the frame's side (3 pixels at 128). The
# photo still differs from video to video, but its fine texture no longer outweighs the body in the images.
BACKDROP_BLUR = 0.025

# A keyframe of the clip files, after the leading duration: root position (3), root orientation (w, x, y, z),
# then the 12 driven joints in this order, each a quaternion (w, x, y, z) or, for knees and elbows, an angle.
_DRIVEN_JOINTS = (
  ('chest', 4),
  ('neck', 4),
  ('right_hip', 4),
  ('right_knee', 1),
  ('right_ankle', 4),
  ('right_shoulder', 4),
  ('right_elbow', 1),
  ('left_hip', 4),
  ('left_knee', 1),
  ('left_ankle', 4),
  ('left_shoulder', 4),
  ('left_elbow', 1),
)
_KEYFRAME_SIZE = 1 + 3 + 4 + sum(size for _, size in _DRIVEN_JOINTS)  # 44 with the duration.


def _photo(loader):
  """Wraps a scikit-image loader so that grey photos come back as RGB: (H, W, 3) uint8."""

  def load():
    import skimage.data  # Imported on use: only building the dataset needs it.

    image = np.asarray(loader(skimage.data))
    if image.ndim == 2:
      image = np.repeat(image[..., None], 3, axis=-1)
    return np.ascontiguousarray(image[..., :3].astype(np.uint8))

  return load


# Background photos shipped inside scikit-image (no download), by name.
PHOTOS = {
  'astronaut': _photo(lambda data: data.astronaut()),
  'brick': _photo(lambda data: data.brick()),
  'camera': _photo(lambda data: data.camera()),
  'chelsea': _photo(lambda data: data.chelsea()),
  'coffee': _photo(lambda data: data.coffee()),
  'coins': _photo(lambda data: data.coins()),
  'grass': _photo(lambda data: data.grass()),
  'gravel': _photo(lambda data: data.gravel()),
  'hubble_deep_field': _photo(lambda data: data.hubble_deep_field()),
  'immunohistochemistry': _photo(lambda data: data.immunohistochemistry()),
  'moon': _photo(lambda data: data.moon()),
  'motorcycle': _photo(lambda data: data.stereo_motorcycle()[0]),
  'retina': _photo(lambda data: data.retina()),
  'rocket': _photo(lambda data: data.rocket()),
}


@dataclasses.dataclass(frozen=True)
class MotionClip:
  """A motion-capture clip: keyframes (N, 43) at times (N,) seconds from 0, and whether it loops."""

  name: str
  times: np.ndarray
  keyframes: np.ndarray
  loops: bool

  @property
  def duration(self) -> float:
    return float(self.times[-1])


@dataclasses.dataclass(frozen=True)
class Pose:
  """The humanoid's pose: root position (3,), root orientation (4,) as (x, y, z, w), and the 12 driven
  joints' positions in _DRIVEN_JOINTS order, each a quaternion (x, y, z, w) or a 1-element angle."""

  root_position: np.ndarray
  root_orientation: np.ndarray
  joints: tuple


@dataclasses.dataclass(frozen=True)
class Camera:
  """A camera orbiting the body: yaw (degrees) at the first frame and its drift (degrees per second), pitch
  (degrees, negative looks down) and how far from the centre the farthest joint may reach, as a fraction of
  the half-frame (sets the distance)."""

  yaw: float
  yaw_rate: float
  pitch: float
  fill: float


@dataclasses.dataclass(frozen=True)
class Backdrop:
  """A square crop of a photo: side as a fraction of the photo's shorter side, position of the crop as
  fractions of the free room (0: top / left, 1: bottom / right), and a left-right flip."""

  photo: str
  side: float
  top: float
  left: float
  flip: bool


@dataclasses.dataclass(frozen=True)
class Light:
  """A directional light: direction towards the light (3,), ambient and diffuse strengths."""

  direction: tuple
  ambient: float
  diffuse: float


@dataclasses.dataclass(frozen=True)
class VideoPlan:
  """Everything that decides one video: the clip and where playback starts (in frames at FPS), the subject
  (an RGB colour in 0..255 for each of the 15 links), the backdrop, the camera and the light."""

  video: int
  clip: str
  first_frame: int
  num_frames: int
  part_colours: tuple
  backdrop: Backdrop
  camera: Camera
  light: Light


class Frame(NamedTuple):
  """One rendered frame: image (S, S, 3) uint8, mask (S, S, 1) uint8 255/0, joints (15, 2) float32 pixels
  (x, y), and its frame number in the clip's playback at FPS."""

  image: np.ndarray
  mask: np.ndarray
  joints: np.ndarray
  frame: int


def _reinstall_hint():
  return 'Reinstall pybullet (pip install --force-reinstall pybullet==3.2.7), which ships these files.'


@functools.lru_cache(maxsize=None)
def load_clip(name: str) -> MotionClip:
  """Reads `humanoid3d_<name>.txt` from pybullet_data."""
  if name not in CLIP_NAMES:
    raise ValueError(f'Unknown motion clip {name!r}; the clips are {", ".join(CLIP_NAMES)}.')
  path = os.path.join(pybullet_data.getDataPath(), 'data', 'motions', f'humanoid3d_{name}.txt')
  if not os.path.isfile(path):
    raise FileNotFoundError(f'Motion clip {path} is missing. {_reinstall_hint()}')
  try:
    with open(path) as f:
      contents = json.load(f)
    frames = np.asarray(contents['Frames'], np.float64)
    loops = contents.get('Loop') == 'wrap'
  except (ValueError, KeyError, TypeError) as error:
    raise ValueError(f'Motion clip {path} is not a DeepMimic clip ({error}). {_reinstall_hint()}') from error
  if frames.ndim != 2 or frames.shape[1] != _KEYFRAME_SIZE or len(frames) < 2:
    raise ValueError(
      f'Motion clip {path} has keyframes of shape {frames.shape}, expected (N >= 2, {_KEYFRAME_SIZE}). '
      f'{_reinstall_hint()}'
    )
  # Column 0 is each keyframe's duration until the next; some clips vary it.
  times = np.concatenate([[0.0], np.cumsum(frames[:-1, 0])])
  return MotionClip(name=name, times=times, keyframes=frames[:, 1:], loops=loops)


def _slerp(q0: np.ndarray, q1: np.ndarray, fraction: float) -> np.ndarray:
  """Spherical interpolation of unit quaternions (4,), along the shorter arc."""
  dot = float(np.dot(q0, q1))
  if dot < 0.0:
    q1, dot = -q1, -dot
  if dot > 0.9995:  # Nearly parallel: sin(angle) underflows; a normalised lerp is exact enough.
    q = q0 + fraction * (q1 - q0)
  else:
    angle = math.acos(dot)
    q = (math.sin((1.0 - fraction) * angle) * q0 + math.sin(fraction * angle) * q1) / math.sin(angle)
  return q / np.linalg.norm(q)


def _wxyz_to_xyzw(q: np.ndarray) -> np.ndarray:
  return np.array([q[1], q[2], q[3], q[0]])


def pose_at(clip: MotionClip, time: float) -> Pose:
  """The clip's pose `time` seconds into its playback.

  Looping clips repeat and, like DeepMimic, carry the root forward by the clip's horizontal displacement
  on each repeat; the others play forwards and backwards in turn, so motion never jumps.
  """
  duration = clip.duration
  if clip.loops:
    cycles = math.floor(time / duration)
    local = time - cycles * duration
  else:
    cycles = 0
    local = time % (2.0 * duration)
    if local > duration:
      local = 2.0 * duration - local
  key = int(np.clip(np.searchsorted(clip.times, local, side='right') - 1, 0, len(clip.times) - 2))
  span = clip.times[key + 1] - clip.times[key]
  fraction = float(np.clip((local - clip.times[key]) / span, 0.0, 1.0)) if span > 0 else 0.0
  a, b = clip.keyframes[key], clip.keyframes[key + 1]
  root = a[0:3] + fraction * (b[0:3] - a[0:3])
  if cycles:
    # Only the horizontal displacement: a clip ending a little higher or lower must not drift vertically.
    shift = clip.keyframes[-1, 0:3] - clip.keyframes[0, 0:3]
    root = root + cycles * np.array([shift[0], 0.0, shift[2]])
  orientation = _wxyz_to_xyzw(_slerp(a[3:7], b[3:7], fraction))
  joints = []
  offset = 7
  for _, size in _DRIVEN_JOINTS:
    if size == 4:
      joints.append(_wxyz_to_xyzw(_slerp(a[offset : offset + 4], b[offset : offset + 4], fraction)).tolist())
    else:
      joints.append([float(a[offset] + fraction * (b[offset] - a[offset]))])
    offset += size
  return Pose(root_position=root, root_orientation=orientation, joints=tuple(joints))


def view_matrix(target, distance: float, yaw: float, pitch: float) -> np.ndarray:
  """The camera's world-to-eye matrix (4, 4), orbiting `target` (3,) with y up; angles in degrees."""
  flat = pybullet.computeViewMatrixFromYawPitchRoll(
    cameraTargetPosition=[float(v) for v in target],
    distance=float(distance),
    yaw=float(yaw),
    pitch=float(pitch),
    roll=0.0,
    upAxisIndex=1,
  )
  return np.asarray(flat, np.float64).reshape(4, 4).T  # pybullet lists matrices column by column.


def projection_matrix() -> np.ndarray:
  """The camera's eye-to-clip matrix (4, 4) for square frames."""
  flat = pybullet.computeProjectionMatrixFOV(fov=FIELD_OF_VIEW, aspect=1.0, nearVal=0.05, farVal=100.0)
  return np.asarray(flat, np.float64).reshape(4, 4).T


def normalized_device_coordinates(points: np.ndarray, view: np.ndarray, projection: np.ndarray):
  """World points (..., 3) to normalised device coordinates (..., 2), x right and y up in [-1, 1]."""
  homogeneous = np.concatenate([points, np.ones(points.shape[:-1] + (1,))], axis=-1)
  clip = homogeneous @ (projection @ view).T
  return clip[..., :2] / clip[..., 3:4]


def project(points: np.ndarray, view: np.ndarray, projection: np.ndarray, size: int) -> np.ndarray:
  """World points (..., 3) to pixel coordinates (..., 2) of a frame `size` pixels wide rendered by
  `HumanoidRenderer.render`.

  In an F-pixel TinyRenderer image, pixel (row r, column c) shows the scene at x_ndc = 2c / F - 1 and
  y_ndc = 1 - 2 (r + 1) / F (measured with the centroid of a rendered sphere, as the tests do); a frame
  averages blocks of _SUPERSAMPLE x _SUPERSAMPLE such pixels.
  """
  ndc = normalized_device_coordinates(points, view, projection)
  fine = size * _SUPERSAMPLE
  fine_x = (ndc[..., 0] + 1.0) * 0.5 * fine
  fine_y = (1.0 - ndc[..., 1]) * 0.5 * fine - 1.0
  # Fine pixel k of a block starting at b * s has centre b * s + k; the block's centre is b * s + (s - 1) / 2.
  half_block = (_SUPERSAMPLE - 1) / 2.0
  return np.stack([(fine_x - half_block) / _SUPERSAMPLE, (fine_y - half_block) / _SUPERSAMPLE], axis=-1)


@contextlib.contextmanager
def _quiet_native_output():
  """Silences what native code prints to stdout and stderr: pybullet's banner on connecting and the URDF
  loader's warnings about joints without an axis, which the humanoid's spherical joints do not need."""
  sys.stdout.flush()  # Python's own buffered output must not be written while the descriptors are away.
  sys.stderr.flush()
  saved = [os.dup(1), os.dup(2)]
  devnull = os.open(os.devnull, os.O_WRONLY)
  try:
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    yield
  finally:
    os.dup2(saved[0], 1)
    os.dup2(saved[1], 2)
    for fd in saved + [devnull]:
      os.close(fd)


class HumanoidRenderer:
  """One headless pybullet world holding the humanoid: poses it, colours it, renders it, reads its joints."""

  def __init__(self):
    urdf = os.path.join(pybullet_data.getDataPath(), _URDF_PATH)
    if not os.path.isfile(urdf):
      raise FileNotFoundError(f'Humanoid model {urdf} is missing. {_reinstall_hint()}')
    with _quiet_native_output():
      self._client = bullet_client.BulletClient(connection_mode=pybullet.DIRECT)
      self._body = self._client.loadURDF(
        urdf, useFixedBase=True, globalScaling=_URDF_SCALE, flags=pybullet.URDF_MAINTAIN_LINK_ORDER
      )
    num_links = self._client.getNumJoints(self._body)
    names = tuple(self._client.getJointInfo(self._body, link)[12].decode() for link in range(num_links))
    if names != JOINT_NAMES:
      raise RuntimeError(f'{urdf} has links {names}, expected {JOINT_NAMES}. {_reinstall_hint()}')
    self._driven_links = [JOINT_NAMES.index(name) for name, _ in _DRIVEN_JOINTS]

  def close(self):
    self._client.disconnect()

  def set_colours(self, colours):
    """Paints link i with colours[i], an RGB triple in 0..255; colours has one triple per joint."""
    if len(colours) != NUM_JOINTS:
      raise ValueError(f'Expected {NUM_JOINTS} part colours, got {len(colours)}.')
    for link, colour in enumerate(colours):
      self._client.changeVisualShape(self._body, link, rgbaColor=[c / 255.0 for c in colour] + [1.0])

  def set_pose(self, pose: Pose):
    self._client.resetBasePositionAndOrientation(
      self._body, pose.root_position.tolist(), pose.root_orientation.tolist()
    )
    self._client.resetJointStatesMultiDof(self._body, self._driven_links, list(pose.joints))

  def joint_positions(self) -> np.ndarray:
    """World positions (15, 3) of the joints, in JOINT_NAMES order."""
    states = self._client.getLinkStates(self._body, list(range(NUM_JOINTS)), computeForwardKinematics=True)
    return np.array([state[4] for state in states], np.float64)  # [4]: the link frame, on its joint.

  def head_centre(self) -> np.ndarray:
    """World position (3,) of the centre of the head."""
    return np.array(self._client.getLinkState(self._body, _HEAD_LINK, computeForwardKinematics=True)[0])

  def render(self, view: np.ndarray, projection: np.ndarray, light: Light, background: Image.Image):
    """Renders the body over `background`, a square RGB image _SUPERSAMPLE times the frame size.

    Returns:
      image (S, S, 3) uint8, the frame;
      coverage (S, S) uint8, the fraction of each pixel the body covers in steps of 255 / _SUPERSAMPLE**2.
    """
    fine = background.width
    _, _, rgba, _, segmentation = self._client.getCameraImage(
      fine,
      fine,
      viewMatrix=view.T.ravel().tolist(),
      projectionMatrix=projection.T.ravel().tolist(),
      renderer=pybullet.ER_TINY_RENDERER,
      lightDirection=list(light.direction),
      lightAmbientCoeff=light.ambient,
      lightDiffuseCoeff=light.diffuse,
      lightSpecularCoeff=0.05,
      shadow=0,
    )
    segmentation = np.reshape(np.asarray(segmentation), (fine, fine))
    body = Image.fromarray(np.where(segmentation == self._body, 255, 0).astype(np.uint8))
    rgb = Image.fromarray(np.reshape(np.asarray(rgba, np.uint8), (fine, fine, 4))).convert('RGB')
    composite = Image.composite(rgb, background, body)
    # Box filtering averages each block of fine pixels: antialiased edges and the body's coverage.
    size = (fine // _SUPERSAMPLE, fine // _SUPERSAMPLE)
    image = np.asarray(composite.resize(size, Image.Resampling.BOX))
    coverage = np.asarray(body.resize(size, Image.Resampling.BOX))
    return image, coverage


@functools.lru_cache(maxsize=None)
def load_photo(name: str) -> np.ndarray:
  """The background photo `name` (a key of PHOTOS) as (H, W, 3) uint8."""
  if name not in PHOTOS:
    raise ValueError(f'Unknown background photo {name!r}; the photos are {", ".join(sorted(PHOTOS))}.')
  try:
    return PHOTOS[name]()
  except Exception as error:
    raise RuntimeError(
      f'scikit-image could not load its sample photo {name!r} ({error}). Reinstall scikit-image, whose '
      'wheel ships these photos.'
    ) from error


def backdrop_image(backdrop: Backdrop, size: int) -> np.ndarray:
  """The backdrop's crop of its photo, resized to (size, size, 3) uint8 and blurred as if out of focus."""
  photo = load_photo(backdrop.photo)
  height, width = photo.shape[:2]
  side = max(1, int(round(backdrop.side * min(height, width))))
  top = int(round(backdrop.top * (height - side)))
  left = int(round(backdrop.left * (width - side)))
  crop = photo[top : top + side, left : left + side]
  if backdrop.flip:
    crop = crop[:, ::-1]
  resized = Image.fromarray(np.ascontiguousarray(crop)).resize((size, size), Image.Resampling.LANCZOS)
  return np.asarray(resized.filter(ImageFilter.GaussianBlur(BACKDROP_BLUR * size)), np.uint8)


def _smooth(points: np.ndarray, half_window: int) -> np.ndarray:
  """Moving average of (N, 3) points over 2 * half_window + 1 frames, repeating the ends."""
  padded = np.concatenate([points[:1].repeat(half_window, 0), points, points[-1:].repeat(half_window, 0)])
  kernel = np.ones(2 * half_window + 1) / (2 * half_window + 1)
  return np.stack([np.convolve(padded[:, axis], kernel, mode='valid') for axis in range(3)], axis=-1)


def _fit_distance(targets, yaws, pitch, points, fill, projection) -> float:
  """The camera distance at which the farthest of `points` (N, P, 3) over all N frames reaches `fill` of
  the half-frame, the camera aiming at targets (N, 3) from yaws (N,) and pitch."""

  def reach(distance):
    views = [view_matrix(target, distance, yaw, pitch) for target, yaw in zip(targets, yaws)]
    return max(np.abs(normalized_device_coordinates(p, v, projection)).max() for p, v in zip(points, views))

  distance = 2.5
  for _ in range(12):
    current = reach(distance)
    if abs(current - fill) < 1e-3 * fill:
      break
    # Image extents shrink about in proportion to the distance.
    distance *= current / fill
  return distance


def render_video(renderer: HumanoidRenderer, plan: VideoPlan, size: int) -> Iterator[Frame]:
  """Renders the video `plan` describes, frame by frame, as (size, size) frames."""
  clip = load_clip(plan.clip)
  frames = range(plan.first_frame, plan.first_frame + plan.num_frames)
  poses = [pose_at(clip, frame / FPS) for frame in frames]
  joints, heads = [], []
  for pose in poses:
    renderer.set_pose(pose)
    joints.append(renderer.joint_positions())
    heads.append(renderer.head_centre())
  joints = np.stack(joints)  # (N, 15, 3)
  outline = np.concatenate([joints, np.stack(heads)[:, None]], axis=1)  # What must stay in the frame.
  targets = _smooth(joints[:, 0], _TARGET_HALF_WINDOW)
  yaws = plan.camera.yaw + plan.camera.yaw_rate * np.arange(plan.num_frames) / FPS
  projection = projection_matrix()
  distance = _fit_distance(targets, yaws, plan.camera.pitch, outline, plan.camera.fill, projection)
  background = Image.fromarray(backdrop_image(plan.backdrop, size * _SUPERSAMPLE))
  renderer.set_colours(plan.part_colours)
  for pose, frame, target, yaw, frame_joints in zip(poses, frames, targets, yaws, joints):
    renderer.set_pose(pose)
    view = view_matrix(target, distance, yaw, plan.camera.pitch)
    image, coverage = renderer.render(view, projection, plan.light, background)
    mask = np.where(coverage >= 128, 255, 0).astype(np.uint8)[..., None]  # At least half the pixel.
    pixels = project(frame_joints, view, projection, size).astype(np.float32)
    yield Frame(image=image, mask=mask, joints=pixels, frame=frame)
