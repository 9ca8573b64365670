"""The training state (generator and discriminator variables, both optimizer states, RNG) and optimizers."""

from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from landmarks_jax.model import initialization
from landmarks_jax.model.discriminator import MultiscaleDiscriminator
from landmarks_jax.model.landmark_model import LandmarkModel
from landmarks_jax.model.landmark_model import model_from_config

# Adam's defaults in torch.optim.Adam, which the original uses for both networks.
ADAM_B1, ADAM_B2, ADAM_EPS = 0.9, 0.999, 1e-8
CLIP_NORM = 1.0
# torch.nn.utils.clip_grad_norm_ divides by the norm plus this, where optax.clip_by_global_norm divides by the norm.
TORCH_CLIP_EPS = 1e-6


@flax.struct.dataclass
class TrainState:
  """Everything a training run carries from step to step. The optimizers are not in it: the step builds them from
  its config (`generator_optimizer`, `discriminator_optimizer`), so that two states of one configuration have
  equal pytree structures and a step traced for one runs the other without tracing again."""

  step: jax.Array
  generator: Any  # {'params': ..., 'spectral': ...}
  discriminator: Any  # {'params': ...}, or {} without use_gan
  generator_opt_state: optax.OptState
  discriminator_opt_state: optax.OptState
  rng: jax.Array


def clip_scale(grad_norm):
  """The factor clip_grad_norm_(max_norm=CLIP_NORM) multiplies every gradient by, as torch computes it."""
  return jnp.minimum(1.0, CLIP_NORM / (grad_norm + TORCH_CLIP_EPS))


def clip_like_torch() -> optax.GradientTransformation:
  """torch's clip_grad_norm_ on all of a network's gradients together, which the original calls before each Adam
  step. Its 1e-6 matters: after clipping, weight decay is added and Adam divides by sqrt(v) + 1e-8, so a
  gradient scaled by 1e-6 / norm less moves some elements' updates far more than that."""

  def clip(grads, params=None):
    del params
    scale = clip_scale(optax.tree.norm(grads))
    return jax.tree.map(lambda g: g * scale, grads)

  return optax.stateless(clip)


def generator_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """Clip (unless no_grad_clip), then torch-style Adam: weight decay added to the gradient, not decoupled."""
  parts = [] if config.no_grad_clip else [clip_like_torch()]
  parts += [
    optax.add_decayed_weights(config.weight_decay),
    optax.scale_by_adam(b1=ADAM_B1, b2=ADAM_B2, eps=ADAM_EPS),
    optax.scale(-config.learning_rate),
  ]
  return optax.chain(*parts)


def discriminator_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """Clip (unless no_grad_clip), then Adam without weight decay, as the original's discriminator."""
  parts = [] if config.no_grad_clip else [clip_like_torch()]
  parts += [optax.scale_by_adam(b1=ADAM_B1, b2=ADAM_B2, eps=ADAM_EPS), optax.scale(-config.learning_rate)]
  return optax.chain(*parts)


def build_networks(config: ml_collections.ConfigDict) -> tuple[LandmarkModel, MultiscaleDiscriminator]:
  return model_from_config(config), MultiscaleDiscriminator(
    config.ndf, config.n_layers_D, config.num_D, config.get('compute_dtype', 'float32')
  )


def sample_image(config: ml_collections.ConfigDict) -> jax.ShapeDtypeStruct:
  return jax.ShapeDtypeStruct((1, config.img_size, config.img_size, 3), jnp.float32)


def variable_shapes(config: ml_collections.ConfigDict) -> tuple[Any, Any]:
  """The generator's and the discriminator's variables as shapes only (their init under `jax.eval_shape`): what a
  checkpoint must fit, found without computing anything."""
  model, discriminator = build_networks(config)
  image = sample_image(config)
  key = jax.random.PRNGKey(0)
  return (
    jax.eval_shape(lambda x: model.init(key, x, x), image),
    jax.eval_shape(lambda x: discriminator.init(key, x), image),
  )


def create_train_state(config: ml_collections.ConfigDict, seed: int | None = None) -> TrainState:
  """A fresh state: the original's initialisation, drawn from `seed` (default config.seed)."""
  seed = config.seed if seed is None else seed
  model, discriminator = build_networks(config)
  image = sample_image(config)
  generator = initialization.init_variables(model, seed, image, image)
  disc = initialization.init_variables(discriminator, seed + 1, image) if config.use_gan else {}
  return TrainState(
    step=jnp.zeros((), jnp.int32),
    generator=generator,
    discriminator=disc,
    generator_opt_state=generator_optimizer(config).init(generator['params']),
    discriminator_opt_state=discriminator_optimizer(config).init(disc.get('params', {})),
    rng=jax.random.PRNGKey(seed),
  )
