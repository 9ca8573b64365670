"""Video files in and out: what `predict` reads (a video, a frame folder, a folder of them) and the MP4 it writes.

Decoding and encoding go through PyAV, whose wheel ships FFmpeg (H.264, MPEG-4, MJPEG and the usual
containers), so nothing outside Python is needed. The written MP4 is H.264 in yuv420p, the format every player
reads; that format needs an even width and height, so an odd-sized frame is padded by one row or column.
"""

import fractions
import os
from typing import Iterator

import numpy as np

from landmarks_jax.data_pipelines import video_folder

DEFAULT_FPS = 25.0  # Frame folders and still images carry no frame rate.
CRF = 18  # H.264 quality: visually lossless for drawn marks.


def inputs(path: str) -> list[video_folder.Item]:
  """The videos at `path`: one video file, one folder of frames, or a folder of videos and frame folders."""
  path = os.path.expanduser(path)
  if os.path.isfile(path):
    suffix = os.path.splitext(path)[1].lower()
    name = os.path.splitext(os.path.basename(path))[0]
    if suffix in video_folder.VIDEO_SUFFIXES:
      return [video_folder.Item(name, 'video', path)]
    if suffix in video_folder.IMAGE_SUFFIXES:
      return [video_folder.Item(name, 'image', path)]
    raise video_folder.VideoFolderError(
      f'{path} is neither a video ({", ".join(video_folder.VIDEO_SUFFIXES)}) nor an image '
      f'({", ".join(video_folder.IMAGE_SUFFIXES)}); pass a video, a folder of frames or a folder of videos.'
    )
  if not os.path.isdir(path):
    raise video_folder.VideoFolderError(
      f'--input {path} does not exist; pass a video, a folder of frames or a folder of videos.'
    )
  entries = os.listdir(path)
  holds_videos = any(
    os.path.isdir(os.path.join(path, e)) or os.path.splitext(e)[1].lower() in video_folder.VIDEO_SUFFIXES
    for e in entries
  )
  if not holds_videos and any(os.path.splitext(e)[1].lower() in video_folder.IMAGE_SUFFIXES for e in entries):
    return [video_folder.Item(os.path.basename(os.path.normpath(path)), 'frames', path)]
  return [item for item in video_folder.scan(path) if item.kind != 'image'] or video_folder.scan(path)


def stream_info(item: video_folder.Item) -> tuple[float, int | None]:
  """(frames per second, number of frames) from one look at the container or folder: DEFAULT_FPS where none is
  recorded (frame folders, images, some files), None frames where the container does not say (the progress bar
  then counts without a total). A file that cannot be opened gets both defaults; reading it names the problem."""
  if item.kind == 'image':
    return DEFAULT_FPS, 1
  if item.kind == 'frames':
    return DEFAULT_FPS, len(video_folder.frame_files(item.path))
  import av  # pylint: disable=g-import-not-at-top

  try:
    with av.open(item.path) as container:
      if not container.streams.video:
        return DEFAULT_FPS, None
      stream = container.streams.video[0]
      return float(stream.average_rate or DEFAULT_FPS), int(stream.frames) or None
  except Exception:  # pylint: disable=broad-except
    return DEFAULT_FPS, None


def read(item: video_folder.Item) -> Iterator[tuple[int, np.ndarray]]:
  """(frame number, (H, W, 3) uint8) of every frame, streamed; errors name the file."""
  for number, image in video_folder.read_frames(item):
    yield number, np.asarray(image)


class Mp4Writer:
  """Writes (H, W, 3) uint8 frames to an H.264 MP4, whole or not at all (a temporary file, renamed at close)."""

  def __init__(self, path: str, fps: float):
    import av  # pylint: disable=g-import-not-at-top

    self._av = av
    self.path = path
    base, suffix = os.path.splitext(path)
    self._temporary = f'{base}.partial{suffix}'
    self._rate = fractions.Fraction(fps).limit_denominator(1001)
    self._container = av.open(self._temporary, 'w')
    self._stream = None
    self.frames_written = 0

  def write(self, frame: np.ndarray) -> None:
    frame = np.pad(frame, ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2), (0, 0)), mode='edge')
    if self._stream is None:
      self._stream = self._container.add_stream('libx264', rate=self._rate)
      self._stream.width, self._stream.height = frame.shape[1], frame.shape[0]
      self._stream.pix_fmt = 'yuv420p'
      self._stream.options = {'crf': str(CRF)}
    for packet in self._stream.encode(self._av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format='rgb24')):
      self._container.mux(packet)
    self.frames_written += 1

  def close(self) -> None:
    if self._stream is not None:
      for packet in self._stream.encode():
        self._container.mux(packet)
    self._container.close()
    os.replace(self._temporary, self.path)

  def abort(self) -> None:
    self._container.close()
    if os.path.exists(self._temporary):
      os.remove(self._temporary)

  def __enter__(self):
    return self

  def __exit__(self, kind, value, traceback):
    if kind is None:
      self.close()
    else:
      self.abort()
