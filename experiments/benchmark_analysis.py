r"""Benchmark of the analysis instruments against the tools a researcher uses today.

    python -m experiments.benchmark_analysis --output=runs/benchmark_analysis.json

Every comparison is measured in the same run on the same weights: LeNet-5 (61,706
parameters) trained here for `--train_steps` SGD steps on MNIST and copied into an
identical PyTorch LeNet, on the first 256 MNIST test images. Every Hessian method reports
its HVP count and wall time per HVP beside its wall time, and each peer runs at its best
configuration (ARPACK's OpenBLAS on one thread, the faster of 1 and 2 torch threads).
The peers need `pip install -e ".[bench]"`; without it they are recorded as not measured.
1. 2-D filter-normalised landscape (51 x 51, biases not moved): transjax's chunked vmap
   (timed on a second grid, its compilation reused; the first grid's time is recorded too)
   against the PyTorch point loop `p.data = theta + a d1 + b d2` on the same directions
   (values must agree) and `loss_landscapes.random_plane` (its own directions; time
   only). Goal: >= 3x the point loop.
2. Top-20 Hessian eigenvalues: transjax Lanczos (tol 1e-3 on the relative Ritz
   residual) against PyHessian 0.1 `eigenvalues(top_n=20, maxIter=100, tol=1e-3)` and
   `scipy.sparse.linalg.eigsh(k=20, tol=1e-6)` on a PyTorch double-backward HVP. The top
   eigenvalues must agree to 1e-3 relative. Goal: faster than eigsh, >= 5x PyHessian.
3. One HVP, transjax against PyTorch (and against one gradient).
4. Per-layer spectrum (--layer): top-k of one layer with the activations below it
   computed once (`hessian.layer_top_k`) against PyHessian with requires_grad=False on
   the other parameters.
5. EfficientNet-Lite0 (`--lite0`, the `imagenet` preset's network: its ImageNet weights,
   a fresh 10-class head, BatchNorm on its running statistics, 64 CIFAR-10 test images at
   64 px): one HVP against PyTorch's double backward on the same weights in an
   `nn.Module` (eval logits checked to 1e-4), top-5 eigenvalues against eigsh and
   PyHessian, and the landscape of one block (`--lite0_block`, an 11 x 11 grid like the
   preset's per-layer landscapes) against the PyTorch point loop. Goal: >= 3x the loop.
Data: MNIST from $TRANSJAX_DATA_DIR or ../shared/data (beside the repository) when present,
else synthetic (named in the output); CIFAR-10 likewise for Lite0.
"""

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging

from transjax import cli
from transjax import functional
from transjax.analysis import hessian, landscape, subset
from transjax.models import build_model


def _define_flags():
  """The binary's flags, by name (`cli.BinaryFlags`: defined when it runs, not on import)."""
  return dict(
      output=flags.DEFINE_string("output", "runs/benchmark_analysis.json", "Where to write JSON."),
      resolution=flags.DEFINE_integer("resolution", 51, "Landscape grid side."),
      num_samples=flags.DEFINE_integer("num_samples", 256, "Fixed sample set size."),
      top_k=flags.DEFINE_integer("top_k", 20, "Number of Hessian eigenvalues."),
      tol=flags.DEFINE_float("tol", 1e-3, "Tolerance of Lanczos and PyHessian."),
      eigsh_tol=flags.DEFINE_float("eigsh_tol", 1e-6, "Tolerance of the eigsh peer."),
      layer=flags.DEFINE_string("layer", "conv2", "Layer of the per-layer spectrum ('' skips)."),
      peers=flags.DEFINE_bool("peers", True, "Time the PyTorch peers (needs .[bench])."),
      power_iteration=flags.DEFINE_bool("power_iteration", False,
                                        "Also time transjax's own power iteration."),
      train_steps=flags.DEFINE_integer("train_steps", 300, "SGD steps (batch 64) that train "
                                       "LeNet on MNIST before it is measured; 0 keeps the "
                                       "random initialisation."),
      lite0=flags.DEFINE_bool("lite0", True, "Also measure EfficientNet-Lite0 (section 5; "
                              "needs the .[imagenet] weights; a few minutes)."),
      lite0_size=flags.DEFINE_integer("lite0_size", 64, "Lite0's input side in pixels."),
      lite0_samples=flags.DEFINE_integer("lite0_samples", 64, "Lite0's number of images."),
      lite0_top_k=flags.DEFINE_integer("lite0_top_k", 5, "Lite0's number of eigenvalues."),
      lite0_block=flags.DEFINE_string("lite0_block", "blocks/8", "The Lite0 block (a parameter "
                                      "path prefix) whose landscape is timed."),
      lite0_resolution=flags.DEFINE_integer("lite0_resolution", 11, "Lite0 landscape grid side."),
      data_dir=flags.DEFINE_string("data_dir", None, "MNIST folder (default: "
                                   "$TRANSJAX_DATA_DIR, then ../shared/data beside the repository)."))


_FLAGS = cli.BinaryFlags(_define_flags)


def load_batch(n: int, data_dir: str | None, name: str = "mnist", split: str = "test", *,
               size: int | None = None, mean=None, std=None):
  """(batch, description): the first n images of a dataset on the [0, 1] scale (resized
  to `size`, normalised by mean/std when given) when found, else synthetic noise with a
  notice naming the folder tried and how to give one."""
  from transjax import data  # pylint: disable=import-outside-toplevel
  from transjax.data import transforms  # pylint: disable=import-outside-toplevel
  d = data.find_data_dir(data_dir)
  why = f"no data folder found ({data.sources.DATA_DIR_SEARCH})"
  if d is not None:
    try:
      ds = data.load(name, split, data_dir=d)
      ds = ds.with_transform(f"first {n}", images=ds.images[:n], labels=ds.labels[:n])
      if size is not None:
        ds = transforms.resize(ds, size, size)
      images = transforms.to_unit_float(ds.images)
      if mean is not None:
        images = (images - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
      return ({"image": jnp.asarray(images, jnp.float32), "label": jnp.asarray(ds.labels)},
              ds.provenance.describe(ds.name))
    except Exception as e:  # pylint: disable=broad-except
      why = f"not loaded from {d}: {e}"
  logging.warning("notice: %s %s %s. Timing on synthetic Gaussian images instead, recorded "
                  "as such in the JSON; to time real images pass --data_dir=<folder holding "
                  "%s/> or set TRANSJAX_DATA_DIR.", name, split, why, name)
  rng = np.random.default_rng(0)
  shape = (n, size or 28, size or 28, 1 if name in ("mnist", "fashion_mnist") else 3)
  return ({"image": jnp.asarray(rng.normal(size=shape), jnp.float32),
           "label": jnp.asarray(rng.integers(0, 10, n))}, "synthetic Gaussian images (stand-in)")


def trained_lenet(steps: int, data_dir: str | None):
  """(graphdef, params, state, note): LeNet trained for `steps` SGD steps (batch 64,
  the training defaults) on MNIST's training images, so that every method measures the
  spectrum of a network that learned something; the same weights go to the peers."""
  from transjax import optim, train  # pylint: disable=import-outside-toplevel
  from transjax.config import training_defaults  # pylint: disable=import-outside-toplevel
  g, p, s = functional.split(build_model("lenet", 10, in_channels=1, input_size=28))
  if steps <= 0:
    return g, p, s, "random initialisation (seed 0)"
  batch_size = 64
  data, desc = load_batch(steps * batch_size, data_dir, "mnist", "train")
  tx = optim.make_optimizer(training_defaults(), steps, jax.tree.map(lambda _: True, p))
  step = jax.jit(train.make_train_step(functional.make_loss_fn(g), tx,
                                       jax.tree.map(lambda _: True, s)))
  ts = {"step": jnp.zeros((), jnp.int32), "params": p, "state": s,
        "opt_state": tx.init(p), "nonfinite_step": jnp.full((), -1, jnp.int32)}
  n = int(data["label"].shape[0])
  for i in range(steps):
    lo = (i * batch_size) % max(n - batch_size + 1, 1)
    ts, metrics = step(ts, {k: v[lo:lo + batch_size] for k, v in data.items()})
  return (g, ts["params"], ts["state"],
          f"trained {steps} SGD steps (batch 64) on {desc}; final batch loss "
          f"{float(metrics['loss']):.3f}")


def _timed(fn, *args):
  jax.block_until_ready(fn(*args))  # compile
  t = time.perf_counter()
  jax.block_until_ready(fn(*args))
  return time.perf_counter() - t


# Landscape values of the two float32 implementations of the same function differ by
# summation order only: ~1e-7 relative per op through 5 layers (measured max 5e-7 on
# losses ~2.3); 1e-4 relative is far above that and far below any real difference.
LANDSCAPE_RTOL = 1e-4
EIGEN_RTOL = 1e-3


def _ratio(ours_s, peer: dict) -> float | None:
  return peer["seconds"] / ours_s if peer.get("measured", True) and "seconds" in peer else None


def _krylov_steps(k: int, dim: int) -> int:
  """Lanczos's step cap here: the library's default (`hessian.lanczos_steps`, 8k + 40),
  at least 200, at most the dimension; for the table's k = 20 it is 200."""
  return min(dim, max(hessian.lanczos_steps(k, dim), 200))


def _max_rel(a, b, n) -> float:
  a, b = np.asarray(a[:n], np.float64), np.asarray(b[:n], np.float64)
  return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-30)))


def _per_hvp(d: dict) -> dict:
  """Adds wall seconds per HVP (the method's own work included) to a result."""
  if d.get("hvp_count"):
    d["seconds_per_hvp"] = d["seconds"] / d["hvp_count"]
  return d


_SKIPPED = {"measured": False, "reason": "peers off or not installed (pip install -e '.[bench]')"}


def _compare_eigenvalues(lz, peers, torch_workload, top_k: int, tol: float,
                         eigsh_tol: float) -> dict:
  """Our Lanczos result beside eigsh's and PyHessian's on the same weights and images:
  times, HVP counts, time per HVP, agreement and ratios."""
  out = {"transjax_hvps": lz.hvp_count, "transjax_s": lz.seconds,
         "transjax_converged": lz.converged,
         "transjax_s_per_hvp": lz.seconds / max(lz.hvp_count, 1),
         "transjax_eigenvalues": lz.eigenvalues.tolist()}
  if torch_workload is not None:
    es = _per_hvp(peers.eigsh_top_k(*torch_workload, top_k, eigsh_tol))
    ph = _per_hvp(peers.pyhessian_top_k(*torch_workload, top_k, tol))
    for d in (es, ph):
      d["measured"] = True
      d["max_rel_diff_topk"] = _max_rel(lz.eigenvalues, d["eigenvalues"], top_k)
      d["max_rel_diff_top1"] = _max_rel(lz.eigenvalues, d["eigenvalues"], 1)
    es["agree"] = es["max_rel_diff_topk"] <= EIGEN_RTOL
    ph["agree_top1"] = ph["max_rel_diff_top1"] <= EIGEN_RTOL
  else:
    es, ph = dict(_SKIPPED), dict(_SKIPPED)
  out.update(eigsh_torch=es, pyhessian=ph, ratio_vs_eigsh=_ratio(lz.seconds, es),
             ratio_vs_pyhessian=_ratio(lz.seconds, ph))
  return out


def benchmark(output: str, resolution: int, num_samples: int, top_k: int, tol: float,
              data_dir: str | None, *, eigsh_tol: float = 1e-6, layer: str = "conv2",
              with_peers: bool = True, power_iteration: bool = False,
              train_steps: int = 0, lite0: dict | None = None) -> dict:
  batch, data_desc = load_batch(num_samples, data_dir)
  g, p, s, weights = trained_lenet(train_steps, data_dir)
  loss_fn = functional.make_loss_fn(g)
  size = int(np.shape(batch["image"])[1])
  out = {"data": data_desc, "weights": weights, "backend": jax.default_backend(),
         "devices": jax.device_count(), "num_samples": num_samples,
         "load_average": os.getloadavg()}
  peers = None
  if with_peers:
    from experiments import peers as peers_mod  # pylint: disable=import-outside-toplevel
    peers = peers_mod if peers_mod.available() else None
    if peers is None:
      out["peers"] = peers_mod.not_measured("PyTorch, PyHessian, loss-landscapes")
  if peers is not None:
    torch_model = peers.lenet_from_transjax(p, size)
    tx, ty = peers.torch_batch(batch)
    out["peers"] = {"measured": True, "torch_threads": peers.pick_threads(torch_model, tx, ty)}
  skipped = _SKIPPED

  # 1. Landscape.
  dirs = landscape.random_directions(jax.random.key(0), p, 2)
  axis = landscape.paper_axis(resolution, 0.01)
  n_points = resolution**2
  land = {"grid": f"{resolution}x{resolution}", "points": n_points}
  # The first grid includes compiling its chunk function; the timed one reuses it (as
  # every later grid of the model in a process does).
  first = landscape.loss_landscape(loss_fn, p, s, batch, dirs, [axis, axis])
  res = landscape.loss_landscape(loss_fn, p, s, batch, dirs, [axis, axis])
  land.update(transjax_s=res.seconds, transjax_points_per_s=res.points_per_second,
              transjax_first_grid_s=first.seconds, chunk=res.plan.chunk_size)
  if peers is not None:
    t = time.perf_counter()
    ref = peers.landscape_point_loop(torch_model, tx, ty, dirs, [axis, axis],
                                     lambda d: peers.lenet_state_dict(d, torch_model.size))
    loop = {"measured": True, "seconds": time.perf_counter() - t}
    loop["points_per_s"] = n_points / loop["seconds"]
    diff = np.abs(res.losses - ref) / np.maximum(np.abs(ref), 1e-30)
    loop.update(max_rel_diff=float(np.nanmax(diff)), rtol=LANDSCAPE_RTOL,
                agree=bool(np.nanmax(diff) <= LANDSCAPE_RTOL))
    t = time.perf_counter()
    peers.loss_landscapes_random_plane(torch_model, tx, ty, resolution, 1.0)
    plane = {"measured": True, "seconds": time.perf_counter() - t}
    plane["points_per_s"] = n_points / plane["seconds"]
  else:
    loop, plane = dict(skipped), dict(skipped)
  land["torch_point_loop"], land["loss_landscapes_random_plane"] = loop, plane
  land["ratio_vs_point_loop"] = _ratio(res.seconds, loop)
  land["ratio_vs_point_loop_first_grid"] = _ratio(first.seconds, loop)
  land["ratio_vs_random_plane"] = _ratio(res.seconds, plane)
  out["landscape"] = land

  # 2. Eigenvalues.
  eig = {"k": top_k, "tol": tol, "eigsh_tol": eigsh_tol}
  op = hessian.HessianOperator(loss_fn, p, s, batch)
  steps = _krylov_steps(top_k, op.dim)
  t = time.perf_counter()
  hessian.lanczos_top_k(op, top_k, tol=1e30, max_steps=steps)  # compile
  eig["transjax_compile_s"] = time.perf_counter() - t
  lz = hessian.lanczos_top_k(op, top_k, tol=tol, max_steps=steps)
  eig.update(_compare_eigenvalues(lz, peers, (torch_model, tx, ty) if peers else None,
                                  top_k, tol, eigsh_tol))
  if power_iteration:
    pw = hessian.power_iteration_top_k(op, top_k, tol=tol, max_iters=100)
    eig["transjax_power_iteration"] = {"hvps": pw.hvp_count, "seconds": pw.seconds}
  out["eigenvalues"] = eig

  # 3. One HVP (and one gradient).
  sub = subset.partition(p)
  # The batch is an argument: closed over, its images are constants that XLA folds
  # through conv1's Toeplitz rows at compile time (it warned of 1.25 s once).
  grad = jax.jit(lambda sub, b: jax.grad(subset.restricted_loss(loss_fn, p, s, b))(sub))
  tg = min(_timed(grad, sub, batch) for _ in range(5))
  v = jnp.ones((op.dim,), op.dtype)
  th = min(_timed(op.matvec, v) for _ in range(5))
  hv = {"grad_s": tg, "hvp_s": th, "hvp_over_grad": th / tg}
  if peers is not None:
    hv["torch"] = {"measured": True, "seconds": peers.torch_hvp_seconds(torch_model, tx, ty)}
  else:
    hv["torch"] = dict(skipped)
  hv["ratio_vs_torch"] = _ratio(th, hv["torch"])
  out["hvp"] = hv

  # 4. Per-layer spectrum.
  if layer:
    lay = {"layer": layer, "k": top_k, "tol": tol}
    t = time.perf_counter()
    lop = hessian.HessianOperator(loss_fn, p, s, batch, mask=layer, reuse_primal=True)
    steps = _krylov_steps(top_k, lop.dim)
    hessian.lanczos_top_k(lop, top_k, tol=1e30, max_steps=steps)
    lay["transjax_setup_and_compile_s"] = time.perf_counter() - t
    lr = hessian.lanczos_top_k(lop, top_k, tol=tol, max_steps=steps)
    lay.update(dim=lop.dim, transjax_s=lr.seconds, transjax_hvps=lr.hvp_count,
               transjax_eigenvalues=lr.eigenvalues.tolist())
    if peers is not None:
      lph = peers.pyhessian_top_k(torch_model, tx, ty, top_k, tol, only=[layer])
      lph.update(measured=True, max_rel_diff_top1=_max_rel(lr.eigenvalues, lph["eigenvalues"], 1))
    else:
      lph = dict(skipped)
    lay["pyhessian"] = lph
    lay["ratio_vs_pyhessian"] = _ratio(lr.seconds, lph)
    out["layer_spectrum"] = lay

  if lite0 is not None:
    out["lite0"] = benchmark_lite0(data_dir=data_dir, tol=tol, eigsh_tol=eigsh_tol,
                                   with_peers=with_peers, **lite0)

  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  with open(output, "w") as fh:
    json.dump(out, fh, indent=2)
  return out


# Lite0's eval logits, transjax against the PyTorch module on the same weights: float32
# through 18 conv + BatchNorm layers differ by summation order (~1e-6 measured); a wrong
# weight mapping differs by O(1).
LITE0_LOGIT_ATOL = 1e-4


def lite0_workload(size: int, num_samples: int, data_dir: str | None):
  """(loss_fn, params, state, batch, note): EfficientNet-Lite0 with its ImageNet weights
  and a fresh 10-class head (seed 0), on the first CIFAR-10 test images resized to `size`
  and normalised as the weights expect."""
  from transjax.weights import named as imagenet  # pylint: disable=import-outside-toplevel
  model = build_model("efficientnet_lite0", 10, input_size=size)
  _, note = imagenet.initial_weights("imagenet:efficientnet_lite0", "efficientnet_lite0", model,
                                     skip_head=True)
  g, p, s = functional.split(model)
  batch, desc = load_batch(num_samples, data_dir, "cifar10", "test", size=size,
                           mean=imagenet.INPUT_MEAN, std=imagenet.INPUT_STD)
  return functional.make_loss_fn(g), p, s, batch, f"{note}; {desc}"


def benchmark_lite0(*, size: int, num_samples: int, top_k: int, block: str, resolution: int,
                    tol: float, eigsh_tol: float, data_dir: str | None,
                    with_peers: bool) -> dict:
  """Section 5: one HVP, top-k eigenvalues and one block's landscape of Lite0, transjax
  against PyTorch on the same weights and images (BatchNorm on running statistics)."""
  loss_fn, p, s, batch, note = lite0_workload(size, num_samples, data_dir)
  out = {"model": "efficientnet_lite0", "input": f"{size}x{size}x3", "num_samples": num_samples,
         "weights_and_data": note, "block": block}
  peers = None
  if with_peers:
    from experiments import peers as peers_mod  # pylint: disable=import-outside-toplevel
    peers = peers_mod if peers_mod.available() else None
  skipped = _SKIPPED
  if peers is not None:
    torch_model = peers.torch_efficientnet_from_transjax(p, s).eval()
    tx, ty = peers.torch_batch(batch)
    import torch  # pylint: disable=import-outside-toplevel
    with torch.no_grad():
      theirs = torch_model(tx).numpy()
    ours = np.asarray(functional.make_apply_fn(loss_fn.graphdef)(p, s, batch["image"], False)[0])
    diff = float(np.max(np.abs(theirs - ours)))
    if diff > LITE0_LOGIT_ATOL:
      raise RuntimeError(f"the PyTorch Lite0 is not transjax's function: logits differ by "
                         f"{diff:.2e} (> {LITE0_LOGIT_ATOL}); the weight mapping is wrong.")
    out["peers"] = {"measured": True, "logits_max_abs_diff": diff,
                    "torch_threads": peers.pick_threads(torch_model, tx, ty)}

  # One HVP.
  op = hessian.HessianOperator(loss_fn, p, s, batch)
  v = jnp.asarray(np.random.default_rng(0).standard_normal(op.dim), op.dtype)
  t = time.perf_counter()
  jax.block_until_ready(op.matvec(v))
  hv = {"transjax_compile_s": time.perf_counter() - t,
        "transjax_s": min(_timed(op.matvec, v) for _ in range(3))}
  hv["torch"] = ({"measured": True, "seconds": peers.torch_hvp_seconds(torch_model, tx, ty, 3)}
                 if peers is not None else dict(skipped))
  hv["ratio_vs_torch"] = _ratio(hv["transjax_s"], hv["torch"])
  out["hvp"] = hv

  # Top-k eigenvalues.
  eig = {"k": top_k, "tol": tol, "eigsh_tol": eigsh_tol}
  lz = hessian.lanczos_top_k(op, top_k, tol=tol)
  eig.update(_compare_eigenvalues(lz, peers, (torch_model, tx, ty) if peers else None,
                                  top_k, tol, eigsh_tol))
  out["eigenvalues"] = eig

  # One block's landscape (the preset's per-layer landscapes), the paper's filter-normalised
  # random directions restricted to the block.
  mask = subset.resolve_mask(p, block)
  dirs = landscape.random_directions(jax.random.key(0), p, 2, mask=mask)
  axis = landscape.paper_axis(resolution, 0.02)
  land = {"grid": f"{resolution}x{resolution}", "points": resolution**2}
  first = landscape.loss_landscape(loss_fn, p, s, batch, dirs, [axis, axis])
  res = landscape.loss_landscape(loss_fn, p, s, batch, dirs, [axis, axis])
  land.update(transjax_s=res.seconds, transjax_first_grid_s=first.seconds,
              transjax_points_per_s=res.points_per_second)
  if peers is not None:
    t = time.perf_counter()
    ref = peers.landscape_point_loop(torch_model, tx, ty, dirs, [axis, axis],
                                     peers.efficientnet_state_dict)
    loop = {"measured": True, "seconds": time.perf_counter() - t}
    loop["points_per_s"] = resolution**2 / loop["seconds"]
    rel = np.abs(res.losses - ref) / np.maximum(np.abs(ref), 1e-30)
    loop.update(max_rel_diff=float(np.nanmax(rel)), rtol=LANDSCAPE_RTOL,
                agree=bool(np.nanmax(rel) <= LANDSCAPE_RTOL))
  else:
    loop = dict(skipped)
  land["torch_point_loop"] = loop
  land["ratio_vs_point_loop"] = _ratio(res.seconds, loop)
  land["ratio_vs_point_loop_first_grid"] = _ratio(first.seconds, loop)
  out["landscape"] = land
  return out


def _fmt(x, spec=".2f") -> str:
  return "not measured" if x is None else format(x, spec) + "x"


def _eigen_cell(name: str, d: dict) -> str:
  if not d.get("measured", True):
    return f"{name} not measured"
  return (f"{name} {d['seconds']:.1f} s, {d['hvp_count']} HVPs "
          f"({1e3 * d['seconds'] / max(d['hvp_count'], 1):.0f} ms/HVP)")


def _print_eigen(e: dict, pyhessian_goal: str, eigsh_goal: str) -> None:
  ph, es = e["pyhessian"], e["eigsh_torch"]
  ours = (f"{e['transjax_s']:.1f} s, {e['transjax_hvps']} HVPs "
          f"({1e3 * e['transjax_s_per_hvp']:.0f} ms/HVP)")
  print(f"{'top-' + str(e['k']) + ' eigenvalues tol ' + str(e['tol']):34s} "
        f"{_eigen_cell('PyHessian', ph):44s} {ours:30s} {_fmt(e['ratio_vs_pyhessian'])}  "
        f"{pyhessian_goal}")
  print(f"{'':34s} {_eigen_cell('eigsh', es):44s} {'':30s} {_fmt(e['ratio_vs_eigsh'])}  "
        f"{eigsh_goal}")


def print_lite0(o: dict) -> None:
  print(f"EfficientNet-Lite0 {o['input']}, {o['num_samples']} images: {o['weights_and_data']}")
  if o.get("peers", {}).get("measured"):
    print(f"  PyTorch module's eval logits differ from transjax's by "
          f"{o['peers']['logits_max_abs_diff']:.1e} (torch threads {o['peers']['torch_threads']})")
  h, e, l = o["hvp"], o["eigenvalues"], o["landscape"]
  th = h["torch"]
  print(f"{'one HVP (BN running stats)':34s} "
        f"{('torch ' + format(th['seconds'], '.2f') + ' s') if th['measured'] else 'not measured':44s} "
        f"{format(h['transjax_s'], '.2f') + ' s (compile ' + format(h['transjax_compile_s'], '.0f') + ' s)':30s} "
        f"{_fmt(h['ratio_vs_torch'])}  (goal >= 1x)")
  _print_eigen(e, "(reported)", "(reported)")
  lp = l["torch_point_loop"]
  print(f"{'landscape of ' + o['block'] + ' ' + l['grid']:34s} "
        f"{('torch point loop ' + format(lp['points_per_s'], '.1f') + ' points/s') if lp['measured'] else 'not measured':44s} "
        f"{format(l['transjax_points_per_s'], '.1f') + ' points/s':30s} "
        f"{_fmt(l['ratio_vs_point_loop'])}  (goal >= 3x; first grid with compilation "
        f"{_fmt(l['ratio_vs_point_loop_first_grid'])})")
  if lp["measured"]:
    print(f"{'':34s} values agree: {lp['agree']} (max rel diff {lp['max_rel_diff']:.1e})")


def print_table(o: dict) -> None:
  print(f"data: {o['data']}; backend {o['backend']} x{o['devices']}; {o['num_samples']} "
        f"samples; load average {o['load_average']}")
  print(f"LeNet weights (both sides): {o['weights']}")
  l, e, h = o["landscape"], o["eigenvalues"], o["hvp"]
  lp, rp = l["torch_point_loop"], l["loss_landscapes_random_plane"]
  print(f"{'workload':34s} {'peer':44s} {'transjax':30s} transjax/peer")
  print(f"{'landscape ' + l['grid']:34s} "
        f"{'torch point loop ' + (format(lp['points_per_s'], '.0f') + ' points/s' if lp['measured'] else 'not measured'):44s} "
        f"{format(l['transjax_points_per_s'], '.0f') + ' points/s':30s} {_fmt(l['ratio_vs_point_loop'])}  (goal >= 3x)")
  if rp["measured"]:
    print(f"{'':34s} {'loss_landscapes.random_plane ' + format(rp['points_per_s'], '.0f') + ' points/s':44s} {'':30s} {_fmt(l['ratio_vs_random_plane'])}")
  if lp["measured"]:
    print(f"{'':34s} first grid, with compilation: {l['transjax_first_grid_s']:.1f} s, "
          f"{_fmt(l['ratio_vs_point_loop_first_grid'])} the point loop")
    print(f"{'':34s} values agree: {lp['agree']} (max rel diff {lp['max_rel_diff']:.1e}, rtol {lp['rtol']:.0e})")
  _print_eigen(e, "(goal >= 5x)", "(goal > 1x)")
  ph, es = e["pyhessian"], e["eigsh_torch"]
  if es["measured"]:
    print(f"{'':34s} eigsh top-{e['k']} agree to 1e-3: {es['agree']} "
          f"(max rel {es['max_rel_diff_topk']:.1e}); PyHessian top-1 rel diff {ph['max_rel_diff_top1']:.1e}")
  th = h["torch"]
  print(f"{'one HVP':34s} {('torch ' + format(1e3 * th['seconds'], '.1f') + ' ms') if th['measured'] else 'not measured':44s} "
        f"{format(1e3 * h['hvp_s'], '.1f') + ' ms':30s} {_fmt(h['ratio_vs_torch'])}  (HVP/grad {h['hvp_over_grad']:.2f})")
  if "layer_spectrum" in o:
    y = o["layer_spectrum"]
    lph = y["pyhessian"]
    print(f"{'top-' + str(y['k']) + ' of ' + y['layer'] + ' (' + str(y['dim']) + ' params)':34s} "
          f"{('PyHessian ' + format(lph['seconds'], '.1f') + ' s, ' + str(lph['hvp_count']) + ' HVPs') if lph['measured'] else 'PyHessian not measured':44s} "
          f"{format(y['transjax_s'], '.2f') + ' s, ' + str(y['transjax_hvps']) + ' HVPs':30s} {_fmt(y['ratio_vs_pyhessian'])}")
  if "lite0" in o:
    print_lite0(o["lite0"])


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  f = _FLAGS
  o = benchmark(f.output, f.resolution, f.num_samples, f.top_k, f.tol, f.data_dir,
                eigsh_tol=f.eigsh_tol, layer=f.layer, with_peers=f.peers,
                power_iteration=f.power_iteration, train_steps=f.train_steps,
                lite0=(dict(size=f.lite0_size, num_samples=f.lite0_samples,
                            top_k=f.lite0_top_k, block=f.lite0_block,
                            resolution=f.lite0_resolution) if f.lite0 else None))
  print_table(o)
  print(f"-> {f.output}")


if __name__ == "__main__":
  _FLAGS.define()
  app.run(lambda argv: cli.run_or_exit(main, argv), flags_parser=cli.parse_flags)
