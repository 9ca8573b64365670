"""Convolution shapes that every implementation of conv2d is checked on against XLA's: (batch, height, width,
in channels, out channels), kernel size, padding, stride."""

CASES = [
  ((2, 16, 12, 3, 5), 3, 1, 1),  # the generator's 3x3 "same" convolution, a non-square image
  ((2, 13, 9, 4, 6), 7, 3, 1),  # 7x7, odd sizes: bands of one row
  ((1, 8, 8, 6, 2), 1, 0, 1),  # 1x1
  ((2, 10, 10, 3, 4), 4, 2, 1),  # the discriminator's last 4x4 convolution, output larger than the input
  ((3, 11, 7, 2, 3), 3, 0, 1),  # no padding
  ((2, 16, 12, 3, 5), 3, 1, 2),  # the U-Nets' downsampling 3x3 convolution
  ((2, 15, 9, 4, 3), 3, 1, 2),  # stride 2 on odd sizes: the last padded row and column are never read
  ((2, 17, 11, 2, 3), 4, 1, 3),  # a stride that is not the kernel's divisor
  # Fewer output than input channels (the banded gradient lays its windows over the output gradient).
  ((2, 16, 12, 6, 3), 3, 1, 1),  # the generator's 128 -> 64 and 128 -> 32 in small
  ((2, 10, 10, 5, 2), 4, 2, 1),  # 4x4 with padding 2
  ((1, 7, 9, 4, 2), 1, 1, 1),  # padding beyond the kernel: the output gradient is cropped
  ((6, 9, 7, 3, 4), 3, 1, 1),  # a batch that oneDNN convolves in parts (kernel gradients summed)
]
