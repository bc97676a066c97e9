"""Shared pytest set-up: fake devices, fresh seeds, compile settings, order.

Four fake CPU devices are configured before JAX initialises its backend, so
that data-parallel code is tested as it runs on a multi-device host.
Single-device code is unaffected: it runs on the first device. Tests draw
fresh random inputs every run; the seed is printed so that a failure
replays: `OCCNET_TEST_SEED=<seed> pytest <test>` fixes every seed to it.
`OCCNET_TEST_SEEDS=<start>:<count> pytest <tests>` soaks the tests that draw
a `module_seed` over the seeds start, ..., start + count - 1 (each seed
builds a module's fixtures once; a failing test's id names its seed).

Compilation dominates the suite's time, and many tests compile the same
programs (the `test` config's train step in each stage, its evaluation), in
process or in the `launch.*` processes they start. So XLA compiles with its
cheap optimisation level (tiny programs that run a few steps), and a run
keeps one persistent compilation cache, shared by its xdist workers and
every process they start, and removed when the run ends.
"""

import os
import shutil
import tempfile

import jax
import numpy as np
import pytest

# Read when JAX starts its backend, here and in every process a test starts.
# The first two halve the compile time of the test config's steps. The
# third makes XLA:CPU emit its fusions the older way, another 25-30% off the
# train step's compile (measured with the test config), and no slower to run.
_FAST_COMPILE_FLAGS = ('--xla_backend_optimization_level=0',
                       '--xla_llvm_disable_expensive_passes=true',
                       '--xla_cpu_use_fusion_emitters=false')
_flags = os.environ.get('XLA_FLAGS', '').split()
os.environ['XLA_FLAGS'] = ' '.join(
    _flags + [flag for flag in _FAST_COMPILE_FLAGS if flag not in _flags])
jax.config.update('jax_num_cpu_devices', 4)

# Set by the first process of a run (the xdist controller, or pytest alone);
# its workers and their subprocesses inherit it.
_CACHE_VARIABLE = 'JAX_COMPILATION_CACHE_DIR'
_OWNED_CACHE = pytest.StashKey[str]()


def pytest_configure(config):
  """Points JAX, here and in every process a test starts, at the run's cache."""
  if _CACHE_VARIABLE not in os.environ:
    os.environ[_CACHE_VARIABLE] = tempfile.mkdtemp(prefix='occnet_jax_jit_')
    config.stash[_OWNED_CACHE] = os.environ[_CACHE_VARIABLE]
  # Programs that compile in well under a second are cheaper to compile
  # again than to serialise.
  os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0.2')
  jax.config.update('jax_compilation_cache_dir', os.environ[_CACHE_VARIABLE])
  jax.config.update(
      'jax_persistent_cache_min_compile_time_secs',
      float(os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS']))


def pytest_unconfigure(config):
  """The process that made the run's cache removes it."""
  owned = config.stash.get(_OWNED_CACHE, None)
  if owned:
    shutil.rmtree(owned, ignore_errors=True)


# The modules whose fixtures train models or start processes, slowest
# first. Collected before the rest, so that `make test` (`-n 2 --dist
# loadfile --no-loadscope-reorder`: whole modules, in collection order)
# starts them on both workers at once; xdist's own order (most tests first)
# left them to one worker at the end. Only the order depends on this list.
_SLOW_MODULES = ('test_multiprocess.py', 'test_end_to_end.py',
                 'test_overfit.py', 'test_accelerator.py', 'test_resume.py',
                 'test_other_categories.py', 'test_benchmark.py',
                 'test_faults.py', 'test_parallel.py',
                 'test_detector_interop.py')


def pytest_collection_modifyitems(items):
  """Moves `_SLOW_MODULES` to the front, keeping every other order."""
  rank = {name: index for index, name in enumerate(_SLOW_MODULES)}
  items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def _draw_seed() -> int:
  """$OCCNET_TEST_SEED when set (to replay a failure), else a fresh seed."""
  fixed = os.environ.get('OCCNET_TEST_SEED')
  if fixed is not None:
    return int(fixed)
  return int(np.random.SeedSequence().entropy % 2**32)


@pytest.fixture
def seed() -> int:
  """A fresh random seed per test, printed so that a failure can be replayed."""
  value = _draw_seed()
  print(f'seed = {value}')  # Shown by pytest when the test fails.
  return value


def _soak_seeds() -> list[int]:
  """The seeds $OCCNET_TEST_SEEDS=<start>:<count> names, else none."""
  spec = os.environ.get('OCCNET_TEST_SEEDS')
  if not spec:
    return []
  start, count = map(int, spec.split(':'))
  return list(range(start, start + count))


def pytest_generate_tests(metafunc):
  """Runs the tests that use `module_seed` once per soaked seed."""
  seeds = _soak_seeds()
  if seeds and 'module_seed' in metafunc.fixturenames:
    metafunc.parametrize('module_seed', seeds, indirect=True, scope='module',
                         ids=[f'module_seed={s}' for s in seeds])


@pytest.fixture(scope='module')
def module_seed(request) -> int:
  """A fresh random seed shared by a module's fixtures, printed.

  Under $OCCNET_TEST_SEEDS the seed is the soaked one of this run instead.
  """
  value = getattr(request, 'param', None)
  if value is None:
    value = _draw_seed()
  print(f'module seed = {value}')
  return value


@pytest.fixture
def rng(seed) -> np.random.Generator:
  """A numpy generator seeded by `seed`."""
  return np.random.default_rng(seed)
