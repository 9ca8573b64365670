"""One training step for generator and discriminator, as the original's loop body; pmapped over axis 'batch'.

Per step: build input_a / input_b on the device (colour jitter, thin-plate-spline warp), run the model on
(input_a, input_b) with input_b the temporal frame, the warped frame, or both stacked along the batch; the
perceptual loss times vgg_lambda and, with use_gan, the generator's adversarial loss against the current
discriminator; then the discriminator's loss on real targets and on the stopped-gradient reconstruction.
Gradients, spectral-norm vectors and metrics are averaged over devices. Nothing but the axis name is
pmap-specific.
"""

import functools
import json
from typing import Any, Sequence

import jax
from jax import flatten_util
import jax.numpy as jnp
import ml_collections
import optax

from landmarks_jax.data.augment import pairs
from landmarks_jax.model import losses
from landmarks_jax.model.vgg import VGGFeatures
from landmarks_jax.training import config_checks
from landmarks_jax.training import device_layout
from landmarks_jax.training import train_state
from landmarks_jax.training.train_state import TrainState
from landmarks_jax.training.train_state import build_networks

AXIS = device_layout.AXIS
# A metric: 1 when every weight after the update is finite. An overflow can reach the weights before any loss
# turns non-finite, and such weights must never reach a checkpoint.
WEIGHTS_FINITE = 'weights_finite'


def model_inputs(inputs: dict, config: ml_collections.ConfigDict) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(input_a, input_b, target) as the original pairs them for use_temporal / use_warped."""
  a, target = inputs['input_a'], inputs['target']
  if config.use_temporal and config.use_warped:
    return (
      jnp.concatenate([a, a]),
      jnp.concatenate([inputs['input_b'], inputs['input_temporal']]),
      jnp.concatenate([target, target]),
    )
  if config.use_temporal:
    return a, inputs['input_temporal'], target
  return a, inputs['input_b'], target


def step_rng(state: TrainState) -> jax.Array:
  """Randomness of this step on this device."""
  return jax.random.fold_in(jax.random.fold_in(state.rng, state.step), jax.lax.axis_index(AXIS))


def train_step(
  state: TrainState, batch: dict, vgg_params: Any, *, config: ml_collections.ConfigDict
) -> tuple[TrainState, dict]:
  """Updates generator and discriminator once; returns the new state and device-averaged metrics."""
  model, discriminator = build_networks(config)
  vgg = VGGFeatures(config.vgg, config.compute_dtype)
  inputs = pairs.make_training_inputs(step_rng(state), batch, config)
  input_a, input_b, target = model_inputs(inputs, config)
  lsgan = not config.no_lsgan

  def generator_loss(params):
    outputs, updates = model.apply(
      {'params': params, 'spectral': state.generator['spectral']}, input_a, input_b, train=True, mutable=['spectral']
    )
    # The original zeroes the reconstruction where the target is 0 inside its VGG loss, in place, so its
    # adversarial terms see the zeroed image too.
    reconstruction = jnp.where(target == 0, 0.0, outputs['reconstruction'])
    terms = {}
    if config.use_vgg:
      features = lambda x: vgg.apply({'params': vgg_params}, x)
      terms['loss_vgg'] = config.vgg_lambda * losses.perceptual_loss(features, reconstruction, target, config.reduced_w)
    if config.use_gan:
      fake_logits = discriminator.apply(state.discriminator, reconstruction)
      terms['loss_G_GAN'] = losses.gan_loss(fake_logits, real=True, lsgan=lsgan)
    total = sum(terms.values())
    return total, (terms, reconstruction, updates['spectral'])

  (loss_g, (terms, reconstruction, spectral)), g_grads = jax.value_and_grad(generator_loss, has_aux=True)(
    state.generator['params']
  )
  g_params, g_opt_state, g_norm, g_finite = descend(
    train_state.generator_optimizer(config), g_grads, state.generator_opt_state, state.generator['params']
  )
  generator = {'params': g_params, 'spectral': jax.lax.pmean(spectral, AXIS)}
  metrics = dict(terms, loss_G=loss_g, grad_norm_G=g_norm)
  finite = [g_finite] + [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(generator['spectral'])]

  discriminator_vars, d_opt_state = state.discriminator, state.discriminator_opt_state
  if config.use_gan:
    fake = jax.lax.stop_gradient(reconstruction)

    def discriminator_loss(params):
      loss_fake = losses.gan_loss(discriminator.apply({'params': params}, fake), real=False, lsgan=lsgan)
      loss_real = losses.gan_loss(discriminator.apply({'params': params}, target), real=True, lsgan=lsgan)
      return 0.5 * (loss_fake + loss_real), (loss_real, loss_fake)

    (loss_d, (loss_real, loss_fake)), d_grads = jax.value_and_grad(discriminator_loss, has_aux=True)(
      state.discriminator['params']
    )
    d_params, d_opt_state, d_norm, d_finite = descend(
      train_state.discriminator_optimizer(config), d_grads, d_opt_state, state.discriminator['params']
    )
    discriminator_vars = {'params': d_params}
    metrics.update(loss_D=loss_d, loss_D_real=loss_real, loss_D_fake=loss_fake, grad_norm_D=d_norm)
    finite.append(d_finite)

  metrics[WEIGHTS_FINITE] = jnp.all(jnp.stack(finite)).astype(jnp.float32)
  new_state = state.replace(
    step=state.step + 1,
    generator=generator,
    discriminator=discriminator_vars,
    generator_opt_state=g_opt_state,
    discriminator_opt_state=d_opt_state,
  )
  return new_state, jax.lax.pmean(metrics, AXIS)


def descend(tx: optax.GradientTransformation, grads, opt_state, params):
  """One optimizer step on all of a network's parameters raveled into one vector.

  Averages the gradients over the devices, applies `tx`, and returns the new parameters, the new optimizer state
  (kept per parameter array, as checkpoints hold it), the averaged gradient's norm and whether every new parameter
  is finite. Element by element this is `tx.update` and `optax.apply_updates`; on one vector it is a dozen
  operations for the whole network instead of a dozen for each of its hundreds of arrays, which halves the step's
  program and so the time XLA takes to compile it unoptimised (the tests' setting).
  """
  treedef = jax.tree.structure(params)
  like_params = lambda x: jax.tree.structure(x) == treedef
  ravel = lambda x: flatten_util.ravel_pytree(x)[0]
  flat_params, unravel = flatten_util.ravel_pytree(params)
  flat_grads = jax.lax.pmean(ravel(grads), AXIS)
  flat_state = jax.tree.map(lambda x: ravel(x) if like_params(x) else x, opt_state, is_leaf=like_params)
  updates, flat_state = tx.update(flat_grads, flat_state, flat_params)
  new_params = flat_params + updates
  new_state = jax.tree.map(lambda new, old: unravel(new) if like_params(old) else new, flat_state, opt_state)
  return unravel(new_params), new_state, jnp.linalg.norm(flat_grads), jnp.all(jnp.isfinite(new_params))


# What the step never reads: the options a resumed run may change (how long it runs, how often it saves, logs and
# validates, where its files and batches are, the machines) but the dtype it computes in, and the dataset's seed.
# The step's config lacks them (a read would raise), so that runs differing only in them share one step function.
LOOP_SETTINGS = (config_checks.RESUMABLE_OPTIONS - {'compute_dtype'}) | {'dataset_seed'}


def make_p_train_step(config: ml_collections.ConfigDict, devices: Sequence[jax.Device] | None = None):
  """The data-parallel step: (replicated state, sharded batch, replicated VGG params) -> (state, metrics).

  One step function per step configuration (the config less LOOP_SETTINGS) and device set in a process, so that
  another run in it (a resumed run, a test) reuses its trace and compilation.
  """
  settings = config_checks.plain_config(config)
  step_settings = {name: value for name, value in settings.items() if name not in LOOP_SETTINGS}
  return _p_train_step(json.dumps(step_settings, sort_keys=True), tuple(devices) if devices else None)


@functools.lru_cache(maxsize=8)
def _p_train_step(step_settings: str, devices: tuple[jax.Device, ...] | None):
  config = ml_collections.ConfigDict(json.loads(step_settings))
  return device_layout.data_parallel(functools.partial(train_step, config=config), donate_argnums=(0,), devices=devices)
