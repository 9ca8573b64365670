"""Pictures of what the model learns, for TensorBoard, as the original's training visualisation shows them.

Per example: target | reconstruction (landmarks drawn) [| background | foreground]; input_a | input_b with their
landmarks; input_a's and input_b's foreground masks; and input_a's part maps colourised.
"""

import numpy as np

from landmarks_jax import pictures

# Reconstructions are drawn at least this large so landmark numbers stay readable.
MIN_TILE = 128


def _scale(size: int) -> int:
  return max(1, -(-MIN_TILE // size))


def _row(tiles: list[np.ndarray]) -> np.ndarray:
  return pictures.tile_grid(tiles, columns=len(tiles))


def _landmarks(centres, index):
  return np.stack([np.asarray(centres[0][index]), np.asarray(centres[1][index])], axis=-1)


def training_images(outputs: dict, num_examples: int = 2) -> dict[str, np.ndarray]:
  """uint8 images (1, H, W, 3) keyed by name, from one forward pass on a batch.

  `outputs` holds numpy arrays: 'target', 'input_a', 'input_b', the model's outputs ('reconstruction',
  'vis_centers', 'input_b_gauss_params', 'input_a_heatmaps', and with masks 'background_recon',
  'decoded_foreground', 'input_a_fg_mask', 'input_b_fg_mask').
  """
  size = outputs['target'].shape[1]
  scale = _scale(size)
  draw = lambda image, marks=None: pictures.draw_frame(image, landmarks=marks, scale=scale)
  has_masks = 'input_a_fg_mask' in outputs
  reconstruction_rows, input_rows, mask_rows, heatmap_rows = [], [], [], []
  for i in range(min(num_examples, outputs['target'].shape[0])):
    marks_a = _landmarks(outputs['vis_centers'], i)
    marks_b = _landmarks(outputs['input_b_gauss_params'][:2], i)
    row = [draw(outputs['target'][i], marks_a), draw(outputs['reconstruction'][i], marks_a)]
    if has_masks:
      row += [draw(outputs['background_recon'][i]), draw(outputs['decoded_foreground'][i])]
      mask_rows.append(
        _row([draw(pictures.mask_to_uint8_image(outputs[k][i])) for k in ('input_a_fg_mask', 'input_b_fg_mask')])
      )
    reconstruction_rows.append(_row(row))
    input_rows.append(_row([draw(outputs['input_a'][i], marks_a), draw(outputs['input_b'][i], marks_b)]))
    heatmap_rows.append(pictures.colorize_heatmaps(outputs['input_a_heatmaps'][i]))

  stack = lambda rows: pictures.tile_grid(rows, columns=1)[None]
  name = 'target_reconstruction_background_foreground' if has_masks else 'target_reconstruction'
  images = {name: stack(reconstruction_rows), 'input_a_b': stack(input_rows), 'raw_heatmap': stack(heatmap_rows)}
  if has_masks:
    images['inputamask_inputbmask'] = stack(mask_rows)
  return images
