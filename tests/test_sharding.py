"""On 8 simulated CPU devices: data-parallel training matches 1 device; a landscape grid and
a block of Hessian-vector products split over the devices match their one-at-a-time loops."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from tests.conftest import ROOT

SCRIPT = textwrap.dedent("""
    import sys, jax, numpy as np
    assert jax.device_count() == 8, jax.devices()
    from tests.train_helpers import tiny_config
    from transjax import runs, train
    out = {}
    for n in (1, 8):
      workdir = f"{sys.argv[1]}/dev{n}"
      result = train.train(tiny_config(num_devices=n, num_steps=12), workdir)
      out[n] = (result, runs.load_run(workdir).params)
    (r1, p1), (r8, p8) = out[1], out[8]
    for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p8)):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(r1["final"]["test_loss"], r8["final"]["test_loss"], rtol=1e-4)
    print("sharded-matches")
""")

ANALYSIS_SCRIPT = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np
    assert jax.device_count() == 8, jax.devices()
    from transjax import functional
    from transjax.analysis import hessian, landscape
    from transjax.models import build_model
    g, p, s = functional.split(build_model("lenet", 10, in_channels=1, input_size=16))
    loss_fn = functional.make_loss_fn(g)
    rng = np.random.default_rng(0)
    batch = {"image": jnp.asarray(rng.normal(size=(8, 16, 16, 1)), jnp.float32),
             "label": jnp.asarray(rng.integers(0, 10, 8))}
    dirs = landscape.random_directions(jax.random.key(0), p, 2)
    axis = landscape.paper_axis(6, 0.1)
    res = landscape.loss_landscape(loss_fn, p, s, batch, dirs, [axis, axis], chunk_size=16)
    assert res.plan.num_devices == 8 and res.plan.chunk_size % 8 == 0, res.plan
    seq = landscape.sequential_landscape(loss_fn, p, s, batch, dirs, [axis, axis])
    np.testing.assert_allclose(res.losses, seq, rtol=1e-5, atol=1e-6)
    op = hessian.HessianOperator(loss_fn, p, s, batch)
    vs = jnp.asarray(rng.normal(size=(8, op.dim)), jnp.float32)
    block = np.asarray(op.matmat(vs))
    one_by_one = np.stack([np.asarray(op.matvec(v)) for v in vs])
    np.testing.assert_allclose(block, one_by_one, rtol=1e-4, atol=1e-5)
    print("analysis-matches")
""")


def _run_on_eight_devices(script, *args):
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-c", script, *args], env=env, cwd=ROOT,
                        capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout


def test_eight_devices_match_one(tmp_path):
  assert "sharded-matches" in _run_on_eight_devices(SCRIPT, str(tmp_path))


def test_sharded_landscape_and_hvp_block_match_one_at_a_time():
  assert "analysis-matches" in _run_on_eight_devices(ANALYSIS_SCRIPT)
