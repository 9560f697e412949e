"""Tests for transjax.analysis.deviation and transjax.analysis.embedding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from transjax import functional
from transjax import params as params_lib
from transjax.analysis import deviation as deviation_lib
from transjax.models import build_model


def _lenet_params(seed=0, head="linear"):
  _, p, _ = functional.split(build_model("lenet", 10, in_channels=1, input_size=28,
                                         head=head, seed=seed))
  return p


def test_deviation_matches_numpy_per_layer_and_sum():
  p, p0 = _lenet_params(0), _lenet_params(1)
  out = deviation_lib.to_floats(deviation_lib.deviation(p, p0, 100))
  leaves = dict(params_lib.named_leaves(p))
  leaves0 = dict(params_lib.named_leaves(p0))
  for layer in ("conv1", "conv2", "fc1", "fc2", "fc"):
    sq = sum(np.sum((np.asarray(leaves[f"{layer}/{k}"]) - np.asarray(leaves0[f"{layer}/{k}"])) ** 2)
             for k in ("kernel", "bias"))
    np.testing.assert_allclose(out["per_layer"][layer], np.sqrt(sq) / 10.0, rtol=1e-5)
  assert set(out["per_layer"]) == {"conv1", "conv2", "fc1", "fc2", "fc"}
  np.testing.assert_allclose(out["last_layer"], out["per_layer"]["fc"], rtol=1e-6)
  np.testing.assert_allclose(out["sum"], sum(out["per_layer"].values()), rtol=1e-5)


def test_deviation_mlp_head_is_whole_head_and_bn_excluded_from_layers():
  p, p0 = _lenet_params(0, "mlp"), _lenet_params(1, "mlp")
  out = deviation_lib.to_floats(deviation_lib.deviation(p, p0, 1))
  assert "fc/bn" not in out["per_layer"]
  head_sq = sum(np.sum((np.asarray(a) - np.asarray(b)) ** 2)
                for (n, a), (_, b) in zip(params_lib.named_leaves(p), params_lib.named_leaves(p0))
                if n.startswith("fc/"))
  np.testing.assert_allclose(out["last_layer"], np.sqrt(head_sq), rtol=1e-5)


def test_deviation_is_jittable_and_zero_at_start():
  p = _lenet_params(0)
  out = jax.jit(deviation_lib.deviation)(p, p, 50)
  assert float(out["sum"]) == 0.0


def test_deviation_mask_restricts_and_empty_mask_errors():
  p, p0 = _lenet_params(0), _lenet_params(1)
  out = deviation_lib.deviation(p, p0, 10, mask=params_lib.mask_for(p, ["fc"]))
  assert set(out["per_layer"]) == {"fc"}
  with pytest.raises(ValueError, match="selects no parameter"):
    deviation_lib.deviation(p, p0, 10, mask=jax.tree.map(lambda _: False, p))


# ------------------------------------------------------------------ embedding

from transjax.analysis import embedding  # noqa: E402


def test_pairwise_distances_blocked_match_numpy():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(7, 40)).astype(np.float32)
  d = embedding.pairwise_distances(x, block_size=3)
  ref = np.linalg.norm(x[:, None] - x[None], axis=-1)
  np.testing.assert_allclose(d, ref, atol=1e-4)
  assert (d >= 0).all() and np.all(np.diag(d) == 0)


def test_tsne_deterministic_for_fixed_seed():
  runs = [_lenet_params(i) for i in range(5)]
  a = embedding.embed_weights(runs, seed=3)
  b = embedding.embed_weights(runs, seed=3)
  assert a["embedding"].shape == (5, 2)
  np.testing.assert_array_equal(a["embedding"], b["embedding"])
  assert a["perplexity"] == 4.0


def test_different_architectures_name_runs_and_parameter():
  runs = [_lenet_params(0), _lenet_params(1, head="mlp")]
  with pytest.raises(embedding.ArchitectureMismatchError,
                     match=r"'lenet-a' and 'lenet-mlp' differ first at parameter fc/bias"):
    embedding.flatten_weights(runs, ["lenet-a", "lenet-mlp"])
