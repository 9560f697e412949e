r"""Ranks candidate pretrained models for a target dataset by a transferability score.

    python -m experiments.rank_models --target=usps --split=train \
        --candidates=imagenet:efficientnet_lite0,runs/lenet_mnist,runs/lenet_fashion \
        --score=logme --num_samples=500 --image_size=64 --output=runs/rank_usps.json

Prints the candidates best first with the score and the seconds each took (features, score),
and writes the same as JSON to --output. Scores: transjax.transferability.SCORES (LogME,
SFDA, NLEEP, LEEP, NCE, H-score, GBC, TransRate, PARC, the k-NN control and the paper's
theory scores); docs/transferability.md says what each computes.
"""

from absl import app, flags

from transjax import cli
from transjax.transferability import SCORES

# Defined here as in transferability.candidates.NTK_SCORES, so --help needs no model import.
_NTK_SCORES = ["ntk_deviation", "ntk_generalisation"]


def _define_flags():
  """The binary's flags, by name (`cli.BinaryFlags`: defined when it runs, not on import)."""
  holders = dict(
      target=flags.DEFINE_string(
          "target", None, "Target dataset, as transjax.data reads it: a known name (usps, "
          "mnist, fashion_mnist, cifar10, digits, ...), 'synthetic(...)', 'tfds:<name>' or "
          "'folder:<path>' (an image folder)."),
      split=flags.DEFINE_string(
          "split", "train", "Split of the target to score on: train, test, or a TFDS-style "
          "slice such as 'train[:2000]'."),
      candidates=flags.DEFINE_list(
          "candidates", None, "Comma-separated candidates: 'imagenet:<name>' (pip-installed "
          "ImageNet weights), run folders (their final checkpoint) or weights files (see "
          "--weights_model)."),
      score=flags.DEFINE_enum(
          "score", "logme", [*SCORES, *_NTK_SCORES], "Transferability score to rank by "
          "(higher = better transfer); ntk_* are the theory scores on the network's own "
          "empirical NTK (see --ntk_layers)."),
      ntk_layers=flags.DEFINE_list(
          "ntk_layers", ["fc"], "Layers free in the ntk_* scores' kernel, e.g. fc (the head) "
          "or fc1,fc2,fc; the source head's outputs count, so keep them small for 1000-class "
          "heads."),
      num_samples=flags.DEFINE_integer(
          "num_samples", 500, "Target samples scored, drawn stratified by class with --seed; "
          "0 scores the whole split."),
      seed=flags.DEFINE_integer(
          "seed", 0, "Seed of the target sample (and of the data's seeded transforms)."),
      image_size=flags.DEFINE_integer(
          "image_size", 224, "Input side for imagenet: candidates and weights files (smaller "
          "is faster on a CPU); run folders use their own."),
      weights_model=flags.DEFINE_string(
          "weights_model", None, "Model that weights-file candidates fit, e.g. "
          "efficientnet_lite0 or resnet50."),
      batch_size=flags.DEFINE_integer(
          "batch_size", 128, "Images per forward pass when extracting features."),
      data_dir=flags.DEFINE_string(
          "data_dir", None, "Local data folder (default $TRANSJAX_DATA_DIR)."),
      output=flags.DEFINE_string(
          "output", "ranking.json", "JSON file the ranking is written to."))
  flags.mark_flags_as_required(["target", "candidates"])
  return holders


_FLAGS = cli.BinaryFlags(_define_flags)


def main(argv):
  del argv
  from transjax.transferability import candidates  # pylint: disable=import-outside-toplevel
  f = _FLAGS
  result = cli.run_or_exit(
      candidates.rank_to_file, {"name": f.target, "split": f.split}, f.candidates, f.score,
      f.output, data_dir=f.data_dir, seed=f.seed, num_samples=f.num_samples or None,
      image_size=f.image_size, weights_model=f.weights_model, batch_size=f.batch_size,
      ntk_layers=f.ntk_layers)
  print(candidates.format_ranking(result))
  print(f"written to {f.output}")


if __name__ == "__main__":
  _FLAGS.define()
  app.run(main, flags_parser=cli.parse_flags)
