"""Pure training functions: TrainState, its layout over a mesh, train_step and eval_step.

Nothing here touches data files, checkpoints or flags, so benchmarks can use it alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx, struct
from jax.sharding import Mesh

from lm.model import mup
from lm.model.config import ExecutionConfig, TransformerConfig
from lm.model.numerics import cross_entropy, cross_entropy_unfused
from lm.model.transformer import make_model
from lm.runtime import sharding
from lm.training import optim
from lm.training.objectives import LossFn, Objective, batch_sums


@struct.dataclass
class TrainState:
  """The training state as a pytree: arrays in training, and the same tree of shape structs
  or shardings in a `StateLayout`."""

  step: Any  # int32 scalar
  params: Any
  opt_state: Any
  rng: Any  # a PRNG key


def token_loss(execution: ExecutionConfig) -> LossFn:
  """The per-token (cross-entropy, log-normaliser) `execution` asks for: fused (optionally
  with a one-pass normaliser on GPUs) or Optax's."""
  if not execution.fused_cross_entropy:
    return cross_entropy_unfused
  one_pass = execution.one_pass_logsumexp
  return lambda logits_BTV, targets_BT: cross_entropy(logits_BTV, targets_BT, one_pass)


def make_train_step(
  graphdef: nnx.GraphDef,
  tx: optax.GradientTransformation,
  schedule: optax.Schedule,
  use_dropout: bool,
  grad_accum_steps: int = 1,
  loss_fn: LossFn = cross_entropy,
  objective: Objective = Objective(),
):
  """Returns the pure `train_step(state, batch) -> (state, metrics)`.

  With `grad_accum_steps > 1` the batch is split into that many microbatches (rows i, i + k,
  i + 2k, ... so each stays spread over the data axis) whose gradients are averaged. The
  step's key `fold_in(rng, step)` drives dropout and MLM masking.
  """

  def loss_and_grads(params, batch, key):
    def loss_of(params):
      rngs = nnx.Rngs(dropout=key) if use_dropout else None  # made inside the grad trace
      sums = batch_sums(
        nnx.merge(graphdef, params),
        batch,
        jax.random.fold_in(key, 1),
        objective,
        rngs=rngs,
        loss_fn=loss_fn,
      )
      weight = jnp.maximum(sums["weight"], 1.0)
      aux = {k: sums[k] / weight for k in ("loss", "correct", "z_loss") if k in sums}
      return (sums["loss"] + sums.get("z_loss", 0.0)) / weight, aux

    (_, aux), grads = jax.value_and_grad(loss_of, has_aux=True)(params)
    aux = {"accuracy" if k == "correct" else k: v for k, v in aux.items()}
    return aux.pop("loss"), aux, grads

  def train_step(state: TrainState, batch: dict[str, jax.Array]):
    key = jax.random.fold_in(state.rng, state.step)
    if grad_accum_steps == 1:
      loss, aux, grads = loss_and_grads(state.params, batch, key)
    else:
      micro = jax.tree.map(
        lambda x: x.reshape(-1, grad_accum_steps, *x.shape[1:]).swapaxes(0, 1), batch
      )

      def accumulate(carry, xs):
        i, batch_i = xs
        out_i = loss_and_grads(state.params, batch_i, jax.random.fold_in(key, i))
        return jax.tree.map(jnp.add, carry, out_i), None

      zeros = jax.tree.map(
        jnp.zeros_like,
        jax.eval_shape(loss_and_grads, state.params, jax.tree.map(lambda x: x[0], micro), key),
      )
      (loss, aux, grads), _ = jax.lax.scan(accumulate, zeros, (jnp.arange(grad_accum_steps), micro))
      loss, aux, grads = jax.tree.map(lambda x: x / grad_accum_steps, (loss, aux, grads))
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new_state = dataclasses.replace(state, step=state.step + 1, params=params, opt_state=opt_state)
    return new_state, {
      "loss": loss,
      "grad_norm": optax.tree.norm(grads),
      "lr": schedule(state.step),
      **aux,
    }

  return train_step


def make_eval_step(graphdef: nnx.GraphDef, objective: Objective = Objective(), seed: int = 0):
  """Returns `eval_step(params, batch) -> {'loss', 'loss_sq', 'weight'[, 'correct']}` sums.

  MLM masks are drawn from a fixed key, so evaluations at different steps compare alike.
  """

  def eval_step(params, batch):
    return batch_sums(nnx.merge(graphdef, params), batch, jax.random.key(seed), objective)

  return eval_step


def eval_sums(
  eval_step, params, batches: Iterable[dict[str, np.ndarray]], mesh: Mesh | None = None
) -> dict[str, float]:
  """`eval_step`'s sums added up over host `batches` (in float64 on the host, in order), each
  batch split over `mesh`'s data axes (or on the default device without a mesh).

  A batch's results are fetched once the next batch is dispatched, so the host prepares one
  while the other runs, as the training loop does. No more are in flight: programs with
  collectives queued without bound (a whole split's worth) starve the CPU runtime's threads,
  and the devices of one program then wait forever for each other.
  """
  totals: dict[str, float] = {}
  pending = None
  for batch in batches:
    placed = (
      jax.tree.map(jnp.asarray, batch) if mesh is None else sharding.global_batch(batch, mesh)
    )
    dispatched = eval_step(params, placed)
    if pending is not None:
      _add_to(totals, jax.device_get(pending))
    pending = dispatched
  if pending is not None:
    _add_to(totals, jax.device_get(pending))
  return totals


def _add_to(totals: dict[str, float], sums: dict[str, Any]) -> None:
  for k, v in sums.items():
    totals[k] = totals.get(k, 0.0) + float(v)


@dataclasses.dataclass
class StateLayout:
  """How a TrainState is built and placed: model, optimizer, init and shardings."""

  model_cfg: TransformerConfig
  execution: ExecutionConfig
  graphdef: nnx.GraphDef
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  init_fn: Any  # key -> TrainState
  shardings: TrainState  # NamedSharding per leaf
  abstract: TrainState  # ShapeDtypeStructs with shardings, for restoring


def state_layout(
  model_cfg: TransformerConfig, execution: ExecutionConfig, optim_cfg, total_steps: int, mesh: Mesh
) -> StateLayout:
  """The TrainState's structure and shardings over `mesh`, built without allocating it."""
  graphdef, abstract_params = nnx.split(
    nnx.eval_shape(lambda: make_model(model_cfg, execution, rngs=nnx.Rngs(0)))
  )
  axes = sharding.logical_axes(abstract_params)
  lr_multipliers = (
    mup.lr_multipliers(model_cfg, axes) if model_cfg.parametrization == "mup" else None
  )
  tx, schedule = optim.make_optimizer(optim_cfg, total_steps, axes, lr_multipliers)

  def init_fn(key: jax.Array) -> TrainState:
    params_key, rng = jax.random.split(key)
    params = nnx.to_pure_dict(
      nnx.state(make_model(model_cfg, execution, rngs=nnx.Rngs(params=params_key)))
    )
    return TrainState(
      step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params), rng=rng
    )

  abstract = jax.eval_shape(init_fn, jax.random.key(0))
  param_sh = sharding.param_shardings(abstract_params, mesh)
  rep = sharding.replicated(mesh)
  opt_sh = sharding.like_params(abstract.opt_state, abstract.params, param_sh, rep)
  state_sh = TrainState(step=rep, params=param_sh, opt_state=opt_sh, rng=rep)
  abstract_sh = jax.tree.map(
    lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, state_sh
  )
  return StateLayout(model_cfg, execution, graphdef, tx, schedule, init_fn, state_sh, abstract_sh)


def jit_train_step(
  layout: StateLayout, train_cfg, mesh: Mesh, objective: Objective = Objective(), num_steps: int = 1
):
  """`make_train_step` jitted over `mesh`: the state sharded as `layout` says and donated, the
  batch split over the data axes.

  With `num_steps > 1`, one program runs that many steps (a `lax.scan` over a stack of
  batches, [num_steps, batch, ...]) and returns their metrics stacked: the same updates as as
  many single steps, for one dispatch and one host round trip.
  """
  train_step = make_train_step(
    layout.graphdef,
    layout.tx,
    layout.schedule,
    layout.model_cfg.dropout > 0,
    train_cfg.grad_accum_steps,
    token_loss(layout.execution),
    objective,
  )
  if num_steps == 1:
    return jax.jit(
      train_step,
      in_shardings=(layout.shardings, sharding.batch_sharding(mesh)),
      out_shardings=(layout.shardings, None),
      donate_argnums=0,
    )

  def train_steps(state: TrainState, batches: dict[str, jax.Array]):
    return jax.lax.scan(train_step, state, batches)

  return jax.jit(
    train_steps,
    in_shardings=(layout.shardings, sharding.batch_sharding(mesh, stacked=True)),
    out_shardings=(layout.shardings, None),
    donate_argnums=0,
  )
