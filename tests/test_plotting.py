"""transjax.plotting: contour levels that adapt to the loss range, labelled axes and colour
bars, integer ticks where an axis counts."""

import warnings

import matplotlib
import numpy as np
import pytest

from transjax import plotting


@pytest.mark.parametrize("lo, hi, want_step", [
    (2.30, 2.32, 0.002),    # varies by 0.02: 0.02 / 16 -> 0.002, not two colours
    (0.10, 0.40, 0.02),     # 6 paper levels would be too few: 0.3 / 16 -> 0.02
    (0.0, 1.0, 0.05),       # the paper's spacing
    (0.0, 40.0, 0.5),       # more than 80 levels: a multiple of 0.05
])
def test_contour_levels_adapt_to_the_range(lo, hi, want_step):
  levels, step = plotting.contour_levels(lo, hi)
  assert step == pytest.approx(want_step)
  assert levels[0] <= lo and levels[-1] >= hi - 1e-12
  assert plotting.MIN_CONTOUR_LEVELS <= len(levels) <= plotting.MAX_CONTOUR_LEVELS + 2


def test_a_flat_grid_still_gets_two_levels():
  levels, step = plotting.contour_levels(1.0, 1.0)
  assert len(levels) >= 2 and step == plotting.CONTOUR_SPACING


def test_nice_steps():
  assert [plotting.nice_step(x) for x in (0.0011, 0.0019, 0.024, 0.3, 7.0)] == pytest.approx(
      [0.002, 0.002, 0.025, 0.5, 10.0])


def test_figures_have_labelled_axes_and_colour_bars(tmp_path, monkeypatch):
  saved = []
  monkeypatch.setattr(plotting, "_save", lambda fig, path: saved.append(fig) or path)
  axis = np.linspace(-1, 1, 5)
  losses = 2.3 + 0.01 * np.add.outer(axis**2, axis**2)
  plotting.contour_landscape(str(tmp_path / "a.png"), axis, axis, losses, title="run")
  fig = saved[-1]
  main, bar = fig.axes
  assert main.get_xlabel() and main.get_ylabel() and bar.get_ylabel() == "loss"
  assert "contours every" in main.get_title()
  plotting.eigenvalue_bars(str(tmp_path / "b.png"), {"run": [9.0, 5.0, 2.0, 1.0]})
  ax = saved[-1].axes[0]
  assert isinstance(ax.xaxis.get_major_locator(), matplotlib.ticker.MaxNLocator)
  ticks = [t for t in ax.get_xticks() if 1 <= t <= 4]
  assert ticks and all(float(t).is_integer() for t in ticks)


def test_contour_grid_labels_and_reports_its_spacing(tmp_path):
  axis = np.linspace(-1, 1, 5)
  flat = {"axes": [axis, axis], "losses": 2.3 + 0.01 * np.add.outer(axis**2, axis**2)}
  step = plotting.contour_grid(str(tmp_path / "g.png"), [("a", flat), ("b", flat)], "two")
  assert step < plotting.CONTOUR_SPACING   # a range of 0.02 gets a finer step
  assert (tmp_path / "g.png").exists()


def test_training_curves_without_the_deviation_callback(tmp_path):
  """A run without `train_callbacks.Deviation` has no deviation keys: the figure is still
  drawn, its deviation panel empty and no legend warning for it."""
  records = [{"step": 1, "train_loss": 2.0, "train_error": 0.5},
             {"step": 2, "test_loss": 1.5, "test_error": 0.4, "train_eval_error": 0.3}]
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    path = plotting.training_curves(records, str(tmp_path / "curves.png"))
  assert (tmp_path / "curves.png").stat().st_size > 0 and path.endswith("curves.png")
