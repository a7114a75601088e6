"""The report's charts: every label readable, whatever the number of runs and the length of their names."""

import itertools

import matplotlib
import pytest

matplotlib.use("Agg")

from pipeline import plots  # noqa: E402


def _boxes(figure):
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    axis = figure.axes[0]
    labels = [label for label in axis.get_yticklabels() if label.get_text()]
    values = [text for text in axis.texts]  # bar_label's numbers
    return ([label.get_window_extent(renderer) for label in labels],
            [text.get_window_extent(renderer) for text in values], figure.bbox)


@pytest.mark.parametrize("num_runs", [6, 12])
def test_comparison_bars_keep_every_name_and_value_apart(num_runs, tmp_path):
    names = [f"{model}-{index}" for index, model in zip(range(num_runs), itertools.cycle(
        ["transformer", "ngram_bag", "linear", "hybrid_split", "cnn_lstm", "pretrained"]))]
    values = [0.80 + 0.01 * index for index in range(num_runs)]
    figure = plots.bars_figure(names, values, "test accuracy", "models compared")
    labels, numbers, page = _boxes(figure)
    assert [label.get_text() for label in figure.axes[0].get_yticklabels()] == names  # first on top, in order
    assert len(labels) == num_runs and len(numbers) == num_runs
    for first, second in itertools.combinations(labels + numbers, 2):
        assert not first.overlaps(second)
    for box in numbers:  # each value inside the figure, not cut off at its right
        assert box.x1 <= page.x1
    plots.save_figure(figure, tmp_path / "bars.png")
    assert (tmp_path / "bars.png").read_bytes()[:4] == b"\x89PNG"
