"""Summaries, intervals, the report files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pytest
from matplotlib.path import Path as MatplotlibPath
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from ponder.clients.evaluation.configs import Configuration
from ponder.clients.evaluation.plot import Point, footnote, place_labels, plot
from ponder.clients.evaluation.report import (
    holm,
    label,
    markdown,
    mcnemar_exact,
    paired,
    summarise,
    wilson_interval,
    write_csv,
)


def record(config: Configuration, item: int, correct: bool, **more: Any) -> dict[str, Any]:
    return {
        "config": config.name,
        "config_key": config.key,
        "item": item,
        "correct": correct,
        "score": 1.0 if correct else 0.0,
        "latency_s": float(item + 1),
        "sequential_tokens": 100 * (item + 1),
        "all_tokens": 300 * (item + 1),
        "calls": 3,
        **more,
    }


def test_wilson_interval() -> None:
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4)
    assert high == pytest.approx(0.7634, abs=1e-4)
    low, high = wilson_interval(0, 20)
    assert low == 0.0
    assert 0.15 < high < 0.17  # not a zero-width interval at 0
    assert wilson_interval(20, 20)[1] == pytest.approx(1.0)
    assert wilson_interval(0, 0) == (0.0, 0.0)


def test_summaries_count_errors_as_wrong_and_leave_their_tokens_out() -> None:
    a = Configuration("a", "direct")
    b = Configuration("b", "pdr", {"schedule": [2, 1]})
    records = [record(a, i, correct=i < 3) for i in range(4)]
    records.append(record(b, 0, correct=True))
    records.append({"config_key": b.key, "item": 1, "error": "503", "latency_s": 9.0})
    summary_a, summary_b = summarise([a, b], records)
    assert (summary_a.items, summary_a.correct, summary_a.accuracy) == (4, 3, 0.75)
    assert summary_a.latency_mean_s == 2.5
    assert summary_a.latency_p50_s == 2.5
    assert summary_a.sequential_tokens_mean == 250
    assert summary_a.calls_mean == 3
    assert (summary_b.items, summary_b.correct, summary_b.errors) == (2, 1, 1)
    assert summary_b.accuracy == 0.5
    assert summary_b.latency_mean_s == 5.0  # the failed item's wait counts
    assert summary_b.all_tokens_mean == 300  # its unknown tokens do not
    assert summarise([Configuration("c", "cot")], records) == []


def test_report_files(tmp_path: Path) -> None:
    a, b = Configuration("direct", "direct"), Configuration("pdr [4,2,1]", "pdr")
    summaries = summarise([a, b], [record(a, 0, True), record(b, 0, False), record(b, 1, True)])
    write_csv(summaries, tmp_path / "summary.csv")
    lines = (tmp_path / "summary.csv").read_text().splitlines()
    assert lines[0].startswith("config,strategy,items,correct,errors,accuracy,ci_low,ci_high")
    assert len(lines) == 3
    table = markdown(summaries)
    assert "| pdr [4,2,1] | 2 | 50.0% (" in table
    plot(summaries, tmp_path / "plot.png", "test")
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_labels_are_what_the_server_accepts() -> None:
    assert label('pdr {"k": 2}') == "pdr __k_: 2_"
    assert len(label("x" * 200)) == 80
    assert label("") == "_"


def test_mcnemar_exact_p_values() -> None:
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(10, 0) == pytest.approx(2 / 1024)
    assert mcnemar_exact(7, 2) == pytest.approx(0.1796875)  # binom(9, 0.5): 2 * P(X <= 2)


def test_paired_comparison_against_the_baseline_uses_shared_items_only() -> None:
    base, other = Configuration("cot", "cot"), Configuration("pdr", "pdr")
    records = [record(base, i, correct=i < 5) for i in range(10)]
    records += [record(other, i, correct=i in (0, 1, 5, 6, 7, 8)) for i in range(9)]
    result = paired(base, [base, other], records)
    comparison = result[other.key]
    assert (comparison.items, comparison.gained, comparison.lost) == (9, 4, 3)
    assert comparison.difference == pytest.approx(1 / 9)
    low, high = comparison.interval
    assert low < comparison.difference < high
    assert comparison.p_value == pytest.approx(1.0)
    assert result[base.key].gained == result[base.key].lost == 0
    summaries = summarise([base, other], records)
    table = markdown(summaries, [result[base.key], result[other.key]])
    assert "vs cot: difference (95% CI) | McNemar p | Holm p |" in table
    assert "| +11.1% (" in table
    assert "4 gained, 3 lost | 1 | 1 |" in table


def test_holm_adjusts_each_p_value_for_the_family_in_the_order_given() -> None:
    # Step-down: the smallest times 4, the next times 3, ..., never below the one before.
    adjusted = holm([0.04, 0.001, 0.03, 0.5])
    assert adjusted == pytest.approx([0.09, 0.004, 0.09, 0.5])
    assert holm([]) == []
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])  # capped at 1


def test_the_plot_labels_every_point_without_overlap(tmp_path: Path) -> None:
    configs = [Configuration(f"pdr variant {i}", "pdr") for i in range(6)]
    # Six configurations at the same spot: labels must find room or be numbered.
    records = [record(c, 0, correct=True) for c in configs]
    numbered = plot(summarise(configs, records), tmp_path / "same.png", "title")
    assert (tmp_path / "same.png").stat().st_size > 0
    assert all(entry.startswith("[") for entry in numbered)


def labelled_panel(points: list[Point], frontier: list[tuple[float, float]]) -> tuple[Any, Any]:
    """A panel drawn as the report draws one (points, intervals, frontier), not yet labelled."""
    figure, ax = plt.subplots(figsize=(6, 6.5))
    for point in points:
        ax.errorbar(point.x, point.y, yerr=[[point.y - point.low], [point.high - point.y]], fmt="o")
    ax.plot(*zip(*frontier, strict=True), "--")
    ax.set_ylim(-0.02, 0.85)
    ax.margins(x=0.12)
    figure.subplots_adjust(left=0.05, right=0.98, top=0.84, bottom=0.2)
    return figure, ax


def test_labels_cover_no_label_marker_error_bar_or_frontier_where_there_is_room() -> None:
    # SVAMP's latency panel (docs/evaluation.md): cot's interval sits under direct's
    # label's first place, and the frontier runs through self-consistency's.
    points = [
        Point("direct", 24.8, 0.45, 0.356, 0.548),
        Point("cot", 22.4, 0.38, 0.291, 0.478),
        Point("PS+", 29.1, 0.34, 0.255, 0.437),
        Point("self_consistency n=4", 78.4, 0.53, 0.433, 0.625),
        Point("self_consistency n=8 fixed (draw order)", 191.7, 0.58, 0.482, 0.672),
        Point("best_of_n n=4 judge", 126.8, 0.45, 0.356, 0.548),
    ]
    frontier = [(24.8, 0.45), (78.4, 0.53), (191.7, 0.58)]
    figure, ax = labelled_panel(points, frontier)
    try:
        assert place_labels(ax, points, frontier) == []
        figure.canvas.draw()  # measure where everything was drawn, not where it was planned
        renderer = figure.canvas.get_renderer()
        labels = [text.get_window_extent(renderer) for text in ax.texts]
        assert [text.get_text() for text in ax.texts] == [p.name for p in points]
        line = MatplotlibPath(ax.transData.transform(frontier))
        inside = ax.get_window_extent(renderer)
        for i, box in enumerate(labels):
            assert inside.x0 <= box.x0, points[i].name
            assert box.x1 <= inside.x1, points[i].name
            assert inside.y0 <= box.y0, points[i].name
            assert box.y1 <= inside.y1, points[i].name
            assert not line.intersects_bbox(box, filled=False), points[i].name
            assert not any(box.overlaps(other) for other in labels[i + 1 :]), points[i].name
            for point in points:
                x, low = ax.transData.transform((point.x, point.low))
                _, high = ax.transData.transform((point.x, point.high))
                bar = Bbox.from_extents(x - 3, low, x + 3, high)
                assert not box.overlaps(bar), f"{points[i].name} covers {point.name}'s interval"
    finally:
        plt.close(figure)


def test_a_label_takes_its_first_place_when_the_drawn_panel_has_room_for_it() -> None:
    # The rightmost point's short label fits in the panel's margin, up and to the right.
    points = [Point("a", 0.0, 0.2, 0.15, 0.25), Point("cot n=4", 10.0, 0.6, 0.55, 0.65)]
    frontier = [(0.0, 0.2), (10.0, 0.6)]
    figure, ax = labelled_panel(points, frontier)
    try:
        assert place_labels(ax, points, frontier) == []
        figure.canvas.draw()
        renderer = figure.canvas.get_renderer()
        label = next(text for text in ax.texts if text.get_text() == "cot n=4")
        box = label.get_window_extent(renderer)
        x, y = ax.transData.transform((10.0, 0.6))
        assert box.x0 > x
        assert box.y0 > y
    finally:
        plt.close(figure)


def test_a_label_nearer_another_marker_than_its_own_is_joined_to_its_own() -> None:
    # SmolLM2's latency panel (docs/evaluation.md): with the plain rule, sr's label sat
    # left of its marker and under cot's, and read as cot's.
    points = [
        Point("direct", 5.58, 0.01, 0.002, 0.054),
        Point("cot", 10.16, 0.0, 0.0, 0.037),
        Point("successive", 38.53, 0.02, 0.006, 0.07),
        Point("plan_and_solve variant=ps_plus", 11.13, 0.04, 0.016, 0.098),
        Point("self_consistency n=8", 35.97, 0.0, 0.0, 0.037),
        Point("sr rounds=2", 26.63, 0.0, 0.0, 0.037),
        Point("pdr schedule=[4,2,1]", 105.36, 0.01, 0.002, 0.054),
    ]
    frontier = [(5.58, 0.01), (11.13, 0.04)]
    figure, ax = labelled_panel(points, frontier)
    ax.set_ylim(-0.02, 0.17)
    try:
        assert place_labels(ax, points, frontier) == []
        figure.canvas.draw()
        renderer = figure.canvas.get_renderer()
        anchors = [ax.transData.transform((p.x, p.y)) for p in points]
        for text in ax.texts:
            i = next(j for j, p in enumerate(points) if p.name == text.get_text())
            box = text.get_window_extent(renderer)

            def distance(anchor: Any, box: Bbox = box) -> float:
                x, y = anchor
                dx = max(box.x0 - x, 0.0, x - box.x1)
                dy = max(box.y0 - y, 0.0, y - box.y1)
                return float((dx * dx + dy * dy) ** 0.5)

            for j, anchor in enumerate(anchors):
                if j != i and distance(anchor) <= distance(anchors[i]):
                    assert text.arrow_patch is not None, (
                        f"{points[i].name}'s label is as near {points[j].name} with no line"
                    )
    finally:
        plt.close(figure)


def test_a_leader_line_is_drawn_from_the_corner_its_label_faces_the_marker_with() -> None:
    # SVAMP's all-tokens panel (docs/evaluation.md): the global summary's leader was drawn
    # from its label's centre, crossed the label and left it under best_of_n's, where it
    # read as best_of_n's; placing had kept the line (from the corner facing the marker)
    # off every other label.
    points = [
        Point("direct", 263, 0.45, 0.356, 0.548),
        Point("cot", 314, 0.38, 0.291, 0.478),
        Point("PS+", 423, 0.34, 0.255, 0.437),
        Point("self_consistency n=4", 1095, 0.53, 0.433, 0.625),
        Point("self_consistency n=8 fixed (draw order)", 2237, 0.58, 0.482, 0.672),
        Point("best_of_n n=4 judge", 2328, 0.45, 0.356, 0.548),
        Point("sr rounds=2", 1341, 0.39, 0.300, 0.488),
        Point("pdr [4,1] global_summary", 3149, 0.4, 0.309, 0.498),
        Point("pdr [4,1] shared_top_k", 1777, 0.43, 0.337, 0.528),
    ]
    frontier = [(263.0, 0.45), (1095.0, 0.53), (2237.0, 0.58)]
    figure, ax = labelled_panel(points, frontier)
    # The report's panel: a third of its 18 inches, less the gaps between panels.
    figure.set_size_inches(18 / 3.44, 6.5)
    try:
        assert place_labels(ax, points, frontier) == []
        figure.canvas.draw()
        renderer = figure.canvas.get_renderer()
        leaders = [text for text in ax.texts if text.arrow_patch is not None]
        assert len(leaders) >= 3
        texts = {text.get_text(): Text.get_window_extent(text, renderer) for text in ax.texts}
        for text in leaders:
            point = next(p for p in points if p.name == text.get_text())
            x, y = ax.transData.transform((point.x, point.y))
            own = texts[point.name]
            facing = (min(max(x, own.x0), own.x1), min(max(y, own.y0), own.y1))
            assert text.arrow_patch is not None
            start = text.arrow_patch.get_path().vertices[0]
            gap = ((start[0] - facing[0]) ** 2 + (start[1] - facing[1]) ** 2) ** 0.5
            assert gap < 8, f"{point.name}'s leader leaves its label {gap:.0f} px off its corner"
    finally:
        plt.close(figure)


def test_the_note_of_numbered_labels_sits_just_under_the_panels() -> None:
    figure, axes = plt.subplots(1, 3, figsize=(18, 6.5))
    for ax in axes:
        ax.set_xlabel("mean latency per problem (s)")
    figure.subplots_adjust(left=0.05, right=0.98, top=0.84, bottom=0.2)
    try:
        note = footnote(figure, "[12] pdr [4,2,1] shared_top_k")
        renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
        lowest = min(ax.get_tightbbox(renderer).y0 for ax in axes)
        box = note.get_window_extent(renderer)
        assert box.y1 < lowest  # under every axis label
        assert lowest - box.y1 < 20  # and near them: no blank band once the figure is cropped
    finally:
        plt.close(figure)
