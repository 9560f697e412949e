"""publish_results copies the report's figures into docs/figures and rewrites the links."""

from experiments import publish_results


def test_figures_are_copied_and_links_rewritten(tmp_path):
  run = tmp_path / "run"
  (run / "minima").mkdir(parents=True)
  (run / "minima" / "eigen.png").write_bytes(b"\x89PNG fake")
  (run / "REPORT.md").write_text(
      "# Report\n![eigen.png](minima/eigen.png)\nResults: [minima/results.json](minima/results.json)\n")
  out = publish_results.publish(str(run), str(tmp_path / "docs"))
  text = open(out).read()
  assert "![eigen.png](figures/minima_eigen.png)" in text
  assert "`minima/results.json` (in the run folder)" in text
  assert (tmp_path / "docs" / "figures" / "minima_eigen.png").read_bytes() == b"\x89PNG fake"
  # A second run publishes beside the first with its own page and figure names.
  other = publish_results.publish(str(run), str(tmp_path / "docs"), "results_imagenet.md",
                                  "imagenet_")
  assert other.endswith("results_imagenet.md")
  assert "![eigen.png](figures/imagenet_minima_eigen.png)" in open(other).read()
  assert (tmp_path / "docs" / "figures" / "imagenet_minima_eigen.png").exists()
  assert "figures/minima_eigen.png" in open(out).read()
