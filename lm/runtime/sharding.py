"""Device mesh from config, logical-axis rules, and placement of params and batches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from flax import nnx
from flax.linen import spmd
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from lm.runtime.hardware import Device

MESH_AXES = ("data", "fsdp", "tensor")

# Logical axis -> mesh axes. Parameters are sharded over `fsdp` on their model dimension
# (ZeRO-3 style) and over `tensor` on heads / MLP / vocabulary (Megatron style).
LOGICAL_RULES: tuple[tuple[str, Any], ...] = (
  ("batch", ("data", "fsdp")),
  ("vocab", "tensor"),
  ("heads", "tensor"),
  ("kv_heads", "tensor"),
  ("mlp", "tensor"),
  ("embed", "fsdp"),
  ("head_dim", None),
)


def mesh_shape(mesh_cfg, num_devices: int) -> tuple[int, int, int]:
  """Resolves the (data, fsdp, tensor) shape; one axis may be -1 to take the rest."""
  shape = [int(mesh_cfg[a]) for a in MESH_AXES]
  if shape.count(-1) > 1:
    raise ValueError("config.mesh: at most one of data/fsdp/tensor may be -1")
  if -1 in shape:
    known = int(np.prod([s for s in shape if s != -1]))
    if num_devices % known:
      raise ValueError(
        f"config.mesh: {dict(zip(MESH_AXES, shape))} cannot fill {num_devices} "
        f"devices; the fixed axes must divide {num_devices}"
      )
    shape[shape.index(-1)] = num_devices // known
  if int(np.prod(shape)) != num_devices:
    raise ValueError(
      f"config.mesh: data*fsdp*tensor = {int(np.prod(shape))} "
      f"({dict(zip(MESH_AXES, shape))}) must equal the {num_devices} devices; "
      "set one axis to -1 to fill"
    )
  data, fsdp, tensor = shape
  return data, fsdp, tensor


def make_mesh(mesh_cfg, devices: Sequence[Device] | None = None) -> Mesh:
  """Builds the (data, fsdp, tensor) mesh over `devices` (default: all devices)."""
  devices = list(jax.devices() if devices is None else devices)
  shape = mesh_shape(mesh_cfg, len(devices))
  return jax.make_mesh(
    shape, MESH_AXES, axis_types=(jax.sharding.AxisType.Auto,) * 3, devices=devices
  )


def logical_axes(state: nnx.State) -> Any:
  """The tree of logical axis-name tuples of a model's (abstract) state, as a pure dict."""

  def names(v):
    return P(*v.get_metadata().get("logical_axes", (None,) * len(v.shape)))

  tree = jax.tree.map(names, state, is_leaf=lambda x: isinstance(x, nnx.Variable))
  return nnx.to_pure_dict(tree)


def param_shardings(state: nnx.State, mesh: Mesh) -> Any:
  """NamedShardings for a model's params (pure dict), from their logical axes and the rules."""
  specs = spmd.logical_to_mesh(logical_axes(state), LOGICAL_RULES)
  return jax.tree.map(lambda s: NamedSharding(mesh, s), specs, is_leaf=lambda x: isinstance(x, P))


def _keys(path) -> tuple:
  return tuple(getattr(k, "key", getattr(k, "idx", getattr(k, "name", None))) for k in path)


def like_params(tree: Any, params: Any, param_shardings: Any, other: NamedSharding) -> Any:
  """Shardings for a tree that holds copies of the params (an optimizer's state): a leaf whose
  key path ends with a parameter's path and whose shape is that parameter's gets its sharding
  (Adam's moments, Muon's momentum); any other leaf (counts, Adafactor's factored statistics)
  gets `other`."""
  by_path = {
    _keys(path): (leaf.shape, sh)
    for (path, leaf), sh in zip(
      jax.tree_util.tree_leaves_with_path(params), jax.tree.leaves(param_shardings)
    )
  }

  def pick(path, leaf):
    keys = _keys(path)
    for start in range(len(keys)):
      shape, sh = by_path.get(keys[start:], (None, None))
      if shape is not None and shape == leaf.shape:
        return sh
    return other

  return jax.tree_util.tree_map_with_path(pick, tree)


def batch_sharding(mesh: Mesh, stacked: bool = False) -> NamedSharding:
  """Sharding of a [batch, ...] array (`stacked`: [steps, batch, ...]): batch split over the
  data and fsdp axes."""
  return NamedSharding(mesh, P(None, ("data", "fsdp")) if stacked else P(("data", "fsdp")))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def global_batch(
  local: dict[str, np.ndarray], mesh: Mesh, stacked: bool = False
) -> dict[str, jax.Array]:
  """Assembles each process's rows of the batch (`stacked`: of each of a stack of batches,
  [steps, rows, ...]) into one global array per key."""
  sharding = batch_sharding(mesh, stacked)
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local.items()}


def host_copy(tree: Any) -> Any:
  """A pytree of arrays as host numpy arrays (gathered from every device)."""
  return jax.tree.map(np.asarray, jax.device_get(tree))
