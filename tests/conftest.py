"""Test setup, before JAX is first imported: two CPU devices for the pmap paths, and a persistent XLA cache
so that a program compiled by one test (or a subprocess) is loaded, not compiled again, by the next.

The cache is new for each test session and removed after it, so entries written by other versions of the code
or of jaxlib are never read. Every compiled or loaded XLA:CPU program holds memory mappings, and a process may
hold at most vm.max_map_count (65530 by default) of them; XLA aborts the process past that. So the tests
compile without XLA:CPU's fusion emitters (about 1,000 mappings per training step instead of 4,800; the step
runs about 6 % slower) and drop every compiled program after each test module (`release_compiled_programs`).
The tests' programs are small and run a few steps each, so compiling them is most of the suite's time: XLA's
CPU backend at optimisation level 0 compiles the tiny training step in about half the time and runs it a little
slower. Subprocesses get the same flags through `subprocess_env.with_devices`.

pytest.ini runs the suite in two worker processes (pytest-xdist, one file per worker at a time; `-n 0` runs it in
this process). The files that take minutes go first, so that neither worker is left with one at the end.
"""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault(
  'XLA_FLAGS',
  '--xla_force_host_platform_device_count=2 --xla_cpu_use_fusion_emitters=false --xla_backend_optimization_level=0',
)
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('CUDA_VISIBLE_DEVICES', '')
if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
  _CACHE = tempfile.mkdtemp(prefix='landmarks_jax_test_xla_cache_')
  atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
  os.environ['JAX_COMPILATION_CACHE_DIR'] = _CACHE
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '1')

import gc  # pylint: disable=g-import-not-at-top,g-bad-import-order

from landmarks_jax.cpu import process_settings  # pylint: disable=g-import-not-at-top

process_settings.apply()  # as the commands do, before JAX starts

import jax  # pylint: disable=g-import-not-at-top
import pytest  # pylint: disable=g-import-not-at-top

# The files that take a minute or more, longest first (measured on a 2-core CPU).
LONG_FILES = (
  'test_train.py',
  'test_train_parity_matrix.py',
  'test_multihost.py',
  'test_run_control.py',
  'test_bench.py',
  'test_train_parity.py',
  'test_video_folder.py',
  'test_import_torch.py',
  'test_evaluate.py',
  'test_video_inputs.py',
)


def pytest_collection_modifyitems(items):
  """Long files first, in LONG_FILES order; each file's tests keep their order."""
  rank = lambda item: LONG_FILES.index(item.path.name) if item.path.name in LONG_FILES else len(LONG_FILES)
  items.sort(key=rank)  # stable


@pytest.fixture(autouse=True, scope='module')
def release_compiled_programs():
  """Drops every compiled program after each test module, and selects the CPU kernels again.

  The whole suite in one process compiles and loads enough programs to pass vm.max_map_count (see the
  module's docstring); programs a later module needs come back from the persistent cache. A module that chose
  cpu_kernels='xla' (the parity tests) leaves the next one the default.
  """
  yield
  from landmarks_jax.cpu import kernels  # pylint: disable=g-import-not-at-top
  from landmarks_jax.training import train_step  # pylint: disable=g-import-not-at-top

  kernels.select('auto')
  train_step._p_train_step.cache_clear()  # pylint: disable=protected-access
  jax.clear_caches()
  gc.collect()


@pytest.fixture(scope='session')
def tiny_mocap_data_dir(tmp_path_factory):
  """The tiny motion-capture dataset of configs/test.py, built once per test session (per worker) and only read."""
  from landmarks_jax.configs import test as test_config  # pylint: disable=g-import-not-at-top
  from landmarks_jax.data import datasets  # pylint: disable=g-import-not-at-top

  config = test_config.get_config()
  config.data_dir = str(tmp_path_factory.mktemp('tiny_mocap_tfds'))
  datasets.prepare_dataset(config)
  return config.data_dir
