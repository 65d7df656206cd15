"""Tests for core/grid.py: plan geometry, label fitting, legend, placeholders, size limits, composition."""
from __future__ import annotations

import itertools
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from comfyui_workflow_iterator.core import grid
from comfyui_workflow_iterator.core.grid import compose, inputs, labels
from comfyui_workflow_iterator.core.grid import text as grid_text
from comfyui_workflow_iterator.core.grid import GridAxis, GridCell, GridOptions

GOLDEN = Path(__file__).resolve().parent / "golden"


# ----------------------------------------------------------------------------------------- helpers
def _solid(path: Path, size: tuple[int, int], colour: tuple[int, int, int]) -> str:
    Image.new("RGB", size, colour).save(path)
    return str(path)


def _colour(k: int) -> tuple[int, int, int]:
    return ((k * 67) % 200 + 30, (k * 131) % 200 + 30, (k * 29) % 200 + 30)


def _matrix_cells(tmp_path: Path, axes: list[GridAxis], size: tuple[int, int] = (64, 64)) -> list[GridCell]:
    cells = []
    for k, coords in enumerate(itertools.product(*(range(len(a.values)) for a in axes))):
        f = _solid(tmp_path / f"c{k}.png", size, _colour(k))
        cells.append(GridCell(index=k, coords=coords, files=(f,)))
    return cells


def _text_fits(t: grid.TextBlock) -> bool:
    limit = t.h if t.rotate else t.w
    return all(grid_text.text_width(line, t.font_size) <= limit + 0.5 for line in t.lines)


def _overlap(a: grid.CellSlot, b: grid.CellSlot) -> bool:
    return a.x < b.x + b.w and b.x < a.x + a.w and a.y < b.y + b.h and b.y < a.y + a.h


def _headers(page: grid.PagePlan) -> list[grid.TextBlock]:
    return [t for t in page.texts if t.role == "header"]


# ----------------------------------------------------------------------------------------- geometry
def test_two_axes_plan_puts_first_axis_on_rows_and_second_on_columns() -> None:
    axes = [GridAxis("cfg", (3, 5, 7), "INT"), GridAxis("steps", (10, 20), "INT")]
    plan = grid.plan_grid(axes, 6, (100, 80), GridOptions(cell_gap=5))
    (page,) = plan.pages
    assert len(page.slots) == 6
    by_coords = {s.coords: s for s in page.slots}
    # rows follow cfg (axis 0), columns follow steps (axis 1), gap between them
    assert by_coords[(1, 0)].y - by_coords[(0, 0)].y == 80 + 5
    assert by_coords[(0, 1)].x - by_coords[(0, 0)].x == 100 + 5
    assert by_coords[(0, 0)].x == by_coords[(2, 0)].x
    assert all(s.w == 100 and s.h == 80 for s in page.slots)
    assert not any(_overlap(a, b) for a, b in itertools.combinations(page.slots, 2))


def test_column_headers_sit_above_their_column_and_row_headers_left_of_their_row() -> None:
    axes = [GridAxis("cfg", (3, 5), "INT"), GridAxis("sampler", ("euler", "ddim", "lms"), "COMBO")]
    plan = grid.plan_grid(axes, 6, (120, 90))
    page = plan.pages[0]
    slots = {s.coords: s for s in page.slots}
    texts = {t.lines: t for t in _headers(page)}
    for j, name in enumerate(("euler", "ddim", "lms")):
        t = texts[(f"sampler: {name}",)]
        assert t.x == slots[(0, j)].x and t.w == slots[(0, j)].w
        assert t.y + t.h <= slots[(0, j)].y
    for i, v in enumerate((3, 5)):
        t = texts[(f"cfg: {v}",)]
        assert t.y == slots[(i, 0)].y and t.h == slots[(i, 0)].h
        assert t.x + t.w <= slots[(i, 0)].x


def test_axis_titles_are_drawn_across_the_top_and_down_the_left() -> None:
    axes = [GridAxis("cfg", (3, 5), "INT"), GridAxis("steps", (10, 20), "INT")]
    page = grid.plan_grid(axes, 4, (100, 100)).pages[0]
    titles = [t for t in page.texts if t.role == "axis"]
    top = next(t for t in titles if not t.rotate)
    left = next(t for t in titles if t.rotate)
    assert top.lines == ("steps",) and left.lines == ("cfg",)
    assert top.y < min(s.y for s in page.slots)
    assert left.x < min(s.x for s in page.slots)


def test_x_and_y_axis_options_choose_the_axes() -> None:
    axes = [GridAxis("a", (1, 2), "INT"), GridAxis("b", (1, 2, 3), "INT")]
    page = grid.plan_grid(axes, 6, (50, 50), GridOptions(x_axis="a", y_axis="b")).pages[0]
    slots = {s.coords: s for s in page.slots}
    assert slots[(1, 0)].x > slots[(0, 0)].x  # a varies across
    assert slots[(0, 1)].y > slots[(0, 0)].y  # b varies down


def test_axis_option_naming_no_axis_falls_back_to_automatic_placement_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Issue 11.5: a parameter skipped for a bad value is not an axis; naming it as y_axis used to raise
    # "y_axis: no axis named 'broken'" at the end of the sweep instead of drawing the grid.
    axes = [GridAxis("cfg", (3, 5, 7), "INT"), GridAxis("steps", (10, 20), "INT")]
    with caplog.at_level("WARNING"):
        plan = grid.plan_grid(axes, 6, (40, 40), GridOptions(y_axis="broken"))
    auto = grid.plan_grid(axes, 6, (40, 40), GridOptions())
    assert [(s.x, s.y, s.coords) for s in plan.pages[0].slots] == [(s.x, s.y, s.coords) for s in auto.pages[0].slots]
    (warning,) = plan.warnings
    assert "y_axis" in warning and "'broken'" in warning and "placed automatically" in warning
    assert warning in caplog.text


def test_valid_axis_choice_is_kept_when_the_other_names_no_axis() -> None:
    axes = [GridAxis("a", (1, 2, 3), "INT"), GridAxis("b", (1, 2), "INT"), GridAxis("c", (1, 2), "INT")]
    plan = grid.plan_grid(axes, 12, (20, 20), GridOptions(x_axis="a", y_axis="gone"))
    slots = {s.coords: s for s in plan.pages[0].slots}
    assert slots[(1, 0, 0)].x > slots[(0, 0, 0)].x  # a still runs across, as asked
    assert any("'gone'" in w for w in plan.warnings)


def test_queue_time_check_reports_an_axis_option_naming_no_axis() -> None:
    report = grid.check_grid_size([GridAxis("a", (1, 2))], image_size=(64, 64), options=GridOptions(x_axis="nope"))
    assert report.pages == 1 and any("x_axis 'nope'" in w for w in report.warnings)


def test_single_axis_wraps_into_rows() -> None:
    axes = [GridAxis("seed", tuple(range(20)), "SEED")]
    page = grid.plan_grid(axes, 20, (128, 128), GridOptions(wrap_columns=6)).pages[0]
    rows = sorted({s.y for s in page.slots})
    assert len(rows) == 4
    xs = sorted({s.x for s in page.slots})
    assert len(xs) == 6
    # reading order follows the axis order
    ordered = sorted(page.slots, key=lambda s: (s.y, s.x))
    assert [s.coords[0] for s in ordered] == list(range(20))
    labels = [t.lines for t in _headers(page)]
    assert ("seed: 0",) in labels and ("seed: 19",) in labels


def test_linear_mode_labels_list_every_axis_value() -> None:
    axes = [GridAxis("cfg", (3.0, 5.0), "FLOAT"), GridAxis("steps", (10, 20), "INT")]
    page = grid.plan_grid(axes, 2, (128, 128), mode="linear").pages[0]
    assert [t.lines for t in _headers(page)] == [("cfg: 3.0", "steps: 10"), ("cfg: 5.0", "steps: 20")]
    assert [s.index for s in page.slots] == [0, 1]


def test_three_axes_as_pages_one_page_per_outer_value_plus_overview() -> None:
    axes = [GridAxis("model", ("a.safetensors", "b.safetensors"), "COMBO"),
            GridAxis("cfg", (3, 5), "INT"), GridAxis("steps", (10, 20, 30), "INT")]
    plan = grid.plan_grid(axes, 12, (64, 64), GridOptions(multi_axis="pages"))
    grid_pages = plan.grid_pages
    assert [p.title for p in grid_pages] == ["model: a", "model: b"]
    assert plan.pages[-1].kind == "overview"
    assert all(len(p.slots) == 6 for p in grid_pages)
    assert {s.coords[0] for s in grid_pages[1].slots} == {1}


def test_three_axes_as_subgrids_one_image_with_every_cell() -> None:
    axes = [GridAxis("z", (1, 2, 3), "INT"), GridAxis("y", (1, 2), "INT"), GridAxis("x", (1, 2), "INT")]
    plan = grid.plan_grid(axes, 12, (64, 64), GridOptions(multi_axis="subgrids"))
    (page,) = plan.pages
    assert sorted(s.coords for s in page.slots) == sorted(itertools.product(range(3), range(2), range(2)))
    titles = [t.lines[0] for t in page.texts if t.role == "subgrid_title"]
    assert titles == ["z: 1", "z: 2", "z: 3"]
    assert not any(_overlap(a, b) for a, b in itertools.combinations(page.slots, 2))


def test_four_axes_subgrids_nest_outer_axes_as_rows_and_columns() -> None:
    axes = [GridAxis("w", (1, 2), "INT"), GridAxis("z", (1, 2, 3), "INT"),
            GridAxis("y", (1, 2), "INT"), GridAxis("x", (1, 2), "INT")]
    page = grid.plan_grid(axes, 24, (32, 32), GridOptions(multi_axis="subgrids")).pages[0]
    titles = [t for t in page.texts if t.role == "subgrid_title"]
    assert len(titles) == 6
    assert len({t.x for t in titles}) == 3 and len({t.y for t in titles}) == 2


def test_display_order_follows_coords_not_completion_order(tmp_path: Path) -> None:
    axes = [GridAxis("a", (1, 2), "INT"), GridAxis("b", (1, 2), "INT")]
    cells = _matrix_cells(tmp_path, axes)
    plan = grid.plan_grid(axes, 4, (64, 64), GridOptions(axis_titles=False))
    (page,) = grid.compose_grid(plan, list(reversed(cells)), tmp_path / "out", "g")
    img = Image.open(page.path).convert("RGB")
    for s in plan.pages[0].slots:
        k = next(c.index for c in cells if c.coords == s.coords)
        assert img.getpixel((s.x + s.w // 2, s.y + s.h // 2)) == _colour(k)


# ------------------------------------------------------------------------------------------ labels
def test_float_values_are_formatted_compactly() -> None:
    assert grid.format_value(0.1 + 0.2, "FLOAT") == "0.3"
    assert grid.format_value(7.0, "FLOAT") == "7.0"
    assert grid.format_value(1e-5, "FLOAT") == "1e-05"
    assert grid.format_value(12345678.9, "FLOAT") == "1.23457e+07"
    assert grid.format_value(True, "BOOLEAN") == "true"
    assert grid.format_value(42, "SEED") == "42"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("SDXL/juggernautXL_v9.safetensors", "juggernautXL_v9"),
        ("C:\\models\\loras\\detail.pt", "detail"),
        ("sd15.ckpt", "sd15"),
        ("red/blue hair, a portrait", "red/blue hair, a portrait"),
    ],
)
def test_paths_show_as_base_names_without_extension(value: str, shown: str) -> None:
    assert grid.format_value(value, "COMBO") == shown


def test_long_common_prefix_is_elided() -> None:
    axis = GridAxis("lora", ("my_style_collection_v2_epoch_10", "my_style_collection_v2_epoch_20"), "COMBO")
    assert labels.axis_labels(axis, GridOptions()) == ["…10", "…20"]


def test_label_shrinks_before_wrapping() -> None:
    text = "sampler: dpmpp_2m_sde"
    width = grid_text.text_width(text, 28) * 0.8
    lines, size = grid.fit_label([text], width, max_lines=3, max_size=28, min_size=12)
    assert lines == (text,) and 12 <= size < 28


def test_label_wraps_when_smallest_font_is_still_too_wide() -> None:
    text = "prompt: a castle on a hill at sunset"
    lines, size = grid.fit_label([text], 120, max_lines=4, max_size=20, min_size=12)
    assert len(lines) > 1
    assert " ".join(lines) == text
    assert all(grid_text.text_width(line, size) <= 120 for line in lines)


def test_very_long_word_is_broken_between_characters() -> None:
    lines = grid.wrap_text("x" * 300, 100, 14)
    assert "".join(lines) == "x" * 300
    assert all(grid_text.text_width(line, 14) <= 100 for line in lines)


@pytest.mark.parametrize("value", ["Ελληνικά κείμενα", "Привет, мир", "emoji 🎨🚀 ok", "日本語のテキスト"])
def test_unicode_labels_are_measured_and_fit(value: str, tmp_path: Path) -> None:
    axes = [GridAxis("text", (value, "plain"), "STRING")]
    plan = grid.plan_grid(axes, 2, (96, 96))
    page = plan.pages[0]
    assert all(_text_fits(t) for t in page.texts)
    grid.compose_grid(plan, [], tmp_path, "u")  # drawing glyphs outside the font must not raise


def test_all_texts_fit_their_boxes_and_page() -> None:
    axes = [GridAxis("cfg", tuple(x / 10 for x in range(30, 90, 7)), "FLOAT"),
            GridAxis("sampler", ("euler", "dpmpp_2m_sde_gpu", "uni_pc_bh2"), "COMBO")]
    page = grid.plan_grid(axes, 27, (80, 80)).pages[0]
    for t in page.texts:
        assert _text_fits(t), t
        assert 0 <= t.x and t.x + t.w <= page.width and 0 <= t.y and t.y + t.h <= page.height


def test_long_prompt_moves_to_numbered_legend() -> None:
    prompt = "a photo of " + ", ".join(f"detail number {k}" for k in range(40))
    axes = [GridAxis("prompt", (prompt, "a dog"), "STRING"), GridAxis("cfg", (3, 5), "INT")]
    plan = grid.plan_grid(axes, 4, (128, 128))
    page = plan.pages[0]
    assert plan.legend == ((1, f"prompt: {prompt}"),)
    headers = [t.lines for t in _headers(page)]
    assert any("prompt: [1]" in " ".join(lines) for lines in headers)
    legend = [t for t in page.texts if t.role == "legend"]
    assert len(legend) == 1
    assert " ".join(legend[0].lines).replace(" ", "") == f"[1] prompt: {prompt}".replace(" ", "")
    assert legend[0].y >= max(s.y + s.h for s in page.slots)
    assert all(_text_fits(t) for t in page.texts)


def test_short_values_stay_inline() -> None:
    axes = [GridAxis("prompt", ("a cat", "a dog"), "STRING")]
    plan = grid.plan_grid(axes, 2, (256, 256))
    assert plan.legend == ()


# ------------------------------------------------------------------------------------- placeholders
@pytest.mark.parametrize(
    ("status", "error", "files", "reason"),
    [("failed", "CUDA out of memory", True, "failed"), ("cancelled", None, True, "cancelled"),
     ("done", None, False, "missing"), ("queued", None, False, "queued")],
)
def test_placeholder_tiles_say_why(tmp_path: Path, status: str, error: str | None, files: bool, reason: str) -> None:
    axes = [GridAxis("a", (1, 2), "INT")]
    good = _solid(tmp_path / "good.png", (80, 80), (10, 200, 10))
    cells = [GridCell(index=0, coords=(0,), files=(good,)),
             GridCell(index=1, coords=(1,), status=status, error=error, files=(good,) if files else ())]
    plan = grid.plan_grid(axes, 2, (80, 80))
    (page,) = grid.compose_grid(plan, cells, tmp_path / "out", "g")
    img = Image.open(page.path).convert("RGB")
    s0, s1 = sorted(plan.pages[0].slots, key=lambda s: s.coords)
    assert img.getpixel((s0.x + 2, s0.y + 2)) == (10, 200, 10)
    assert img.getpixel((s1.x + 1, s1.y + 1)) == grid.PLACEHOLDER_COLORS[reason]
    # the tile carries text (dark pixels) in its middle band
    band = np.asarray(img.crop((s1.x, s1.y + s1.h // 4, s1.x + s1.w, s1.y + 3 * s1.h // 4)))
    assert (band.min(axis=2) < 150).any()


def test_missing_cell_without_record_gets_placeholder(tmp_path: Path) -> None:
    axes = [GridAxis("a", (1, 2), "INT"), GridAxis("b", (1,), "INT")]
    plan = grid.plan_grid(axes, 2, (64, 64))
    (page,) = grid.compose_grid(plan, [], tmp_path, "g")
    img = Image.open(page.path).convert("RGB")
    s = plan.pages[0].slots[0]
    assert img.getpixel((s.x + 1, s.y + 1)) == grid.PLACEHOLDER_COLORS["missing"]


def test_unreadable_file_gets_placeholder(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    axes = [GridAxis("a", (1,), "INT")]
    plan = grid.plan_grid(axes, 1, (64, 64))
    (page,) = grid.compose_grid(plan, [GridCell(index=0, coords=(0,), files=(str(bad),))], tmp_path, "g")
    s = plan.pages[0].slots[0]
    assert Image.open(page.path).convert("RGB").getpixel((s.x + 1, s.y + 1)) == grid.PLACEHOLDER_COLORS["unreadable"]


# ------------------------------------------------------------------------------------ size safety
def _big_axes(n: int) -> list[GridAxis]:
    return [GridAxis("y", tuple(range(n)), "INT"), GridAxis("x", tuple(range(n)), "INT")]


def _check_within(plan: grid.GridPlan, side: int, mp: float) -> None:
    for p in plan.pages:
        assert p.width <= side and p.height <= side and p.megapixels <= mp


def test_jpeg_side_limit_downscales_cells() -> None:
    opts = GridOptions(format="jpeg", max_megapixels=100_000)
    plan = grid.plan_grid(_big_axes(70), 4900, (1024, 1024), opts)  # ~72k px a side at full size
    _check_within(plan, 65_500, 100_000)
    assert plan.downscaled and len(plan.grid_pages) == 1
    assert 0.8 < plan.scale < 1.0
    assert any("JPEG" in w and "downscaled" in w for w in plan.warnings)


def test_webp_side_limit_downscales_cells() -> None:
    plan = grid.plan_grid(_big_axes(20), 400, (1024, 1024), GridOptions(format="webp"))
    _check_within(plan, 16_383, 200)
    assert plan.downscaled and plan.slot_size[0] <= 800
    assert any("WEBP" in w for w in plan.warnings)


def test_png_megapixel_budget_downscales_cells() -> None:
    opts = GridOptions(format="png", max_megapixels=50)
    plan = grid.plan_grid(_big_axes(10), 100, (1024, 1024), opts)  # ~110 MP at full size
    _check_within(plan, 2**31, 50)
    assert plan.downscaled
    assert any("50 MP" in w for w in plan.warnings)


def test_grid_within_limits_is_untouched() -> None:
    plan = grid.plan_grid(_big_axes(4), 16, (512, 512), GridOptions(format="webp"))
    assert not plan.downscaled and plan.warnings == () and len(plan.pages) == 1


def test_split_into_pages_when_downscale_would_go_below_minimum() -> None:
    opts = GridOptions(format="webp", min_cell_size=512)
    plan = grid.plan_grid(_big_axes(40), 1600, (1024, 1024), opts)
    _check_within(plan, 16_383, 200)
    assert plan.split and len(plan.grid_pages) > 1
    assert plan.slot_size == (512, 512)
    assert plan.pages[-1].kind == "overview"
    covered = sorted(s.coords for p in plan.grid_pages for s in p.slots)
    assert covered == sorted(itertools.product(range(40), range(40)))
    assert any("split into" in w for w in plan.warnings)


def test_oversize_split_keeps_full_size_cells() -> None:
    opts = GridOptions(format="webp", oversize="split")
    plan = grid.plan_grid(_big_axes(20), 400, (1024, 1024), opts)
    assert plan.slot_size == (1024, 1024) and plan.split
    _check_within(plan, 16_383, 200)


def test_jpeg_split_for_a_long_single_row() -> None:
    opts = GridOptions(format="jpeg", oversize="split", wrap_columns=200, max_megapixels=100_000)
    plan = grid.plan_grid([GridAxis("seed", tuple(range(200)), "SEED")], 200, (512, 512), opts)
    _check_within(plan, 65_500, 100_000)
    assert len(plan.grid_pages) >= 2
    assert sum(len(p.slots) for p in plan.grid_pages) == 200


def test_subgrids_too_big_fall_back_to_pages() -> None:
    axes = [GridAxis("z", tuple(range(8)), "INT")] + _big_axes(12)
    opts = GridOptions(format="webp", multi_axis="subgrids", min_cell_size=512)
    plan = grid.plan_grid(axes, 8 * 144, (1024, 1024), opts)
    _check_within(plan, 16_383, 200)
    assert plan.layout == "pages" and len(plan.grid_pages) >= 8


def test_check_grid_size_reports_for_the_queue() -> None:
    rep = grid.check_grid_size(_big_axes(20), image_size=(1024, 1024), options=GridOptions(format="webp"))
    d = rep.as_dict()
    assert d["width"] <= 16_383 and d["pages"] == 1 and d["downscale"] < 1 and d["warnings"]


def test_check_grid_size_with_per_cell_sizes_uses_the_largest() -> None:
    axes = [GridAxis("width", (512, 1024), "INT")]
    rep = grid.check_grid_size(axes, image_size=[(512, 512), (1024, 512)], options=GridOptions())
    plan = grid.plan_grid(axes, 2, [(512, 512), (1024, 512)])
    assert plan.slot_size == (1024, 512) and rep.width == plan.width


def test_cell_max_size_downscales_without_warning() -> None:
    plan = grid.plan_grid(_big_axes(2), 4, (1024, 768), GridOptions(cell_max_size=256))
    assert plan.slot_size == (256, 192) and plan.warnings == ()


def test_images_only_plans_and_writes_nothing(tmp_path: Path) -> None:
    plan = grid.plan_grid(_big_axes(2), 4, (64, 64), GridOptions(images_only=True))
    assert plan.pages == ()
    assert grid.compose_grid(plan, [], tmp_path, "g") == []
    assert list(tmp_path.iterdir()) == []
    assert grid.check_grid_size(_big_axes(2), image_size=(64, 64), options=GridOptions(images_only=True)).pages == 0


# ---------------------------------------------------------------------------------- composition
def test_mixed_cell_sizes_are_centred_in_uniform_slots(tmp_path: Path) -> None:
    axes = [GridAxis("shape", ("wide", "tall"), "STRING")]
    wide = _solid(tmp_path / "w.png", (100, 50), (200, 0, 0))
    tall = _solid(tmp_path / "t.png", (50, 100), (0, 0, 200))
    cells = [GridCell(index=0, coords=(0,), files=(wide,)), GridCell(index=1, coords=(1,), files=(tall,))]
    plan = grid.plan_grid(axes, cells, [(100, 50), (50, 100)])
    assert plan.slot_size == (100, 100)
    (page,) = grid.compose_grid(plan, cells, tmp_path / "o", "g")
    img = Image.open(page.path).convert("RGB")
    sw, st_ = sorted(plan.pages[0].slots, key=lambda s: s.coords)
    bg = (255, 255, 255)
    assert img.getpixel((sw.x + 50, sw.y + 50)) == (200, 0, 0)
    assert img.getpixel((sw.x + 50, sw.y + 10)) == bg and img.getpixel((sw.x + 50, sw.y + 90)) == bg
    assert img.getpixel((sw.x + 50, sw.y + 26)) == (200, 0, 0) and img.getpixel((sw.x + 50, sw.y + 74)) == (200, 0, 0)
    assert img.getpixel((st_.x + 50, st_.y + 50)) == (0, 0, 200)
    assert img.getpixel((st_.x + 10, st_.y + 50)) == bg and img.getpixel((st_.x + 90, st_.y + 50)) == bg


def test_cells_larger_than_slot_are_downscaled_to_fit(tmp_path: Path) -> None:
    axes = [GridAxis("a", (1,), "INT")]
    f = _solid(tmp_path / "big.png", (400, 200), (0, 120, 0))
    plan = grid.plan_grid(axes, 1, (400, 200), GridOptions(cell_max_size=100))
    (page,) = grid.compose_grid(plan, [GridCell(index=0, coords=(0,), files=(f,))], tmp_path / "o", "g")
    s = plan.pages[0].slots[0]
    assert (s.w, s.h) == (100, 50)
    img = Image.open(page.path).convert("RGB")
    assert img.getpixel((s.x + 1, s.y + 1)) == (0, 120, 0) and img.getpixel((s.x + 98, s.y + 48)) == (0, 120, 0)


def test_rgba_cells_are_flattened_on_the_background(tmp_path: Path) -> None:
    p = tmp_path / "a.png"
    Image.new("RGBA", (32, 32), (255, 0, 0, 0)).save(p)
    axes = [GridAxis("a", (1,), "INT")]
    plan = grid.plan_grid(axes, 1, (32, 32), GridOptions(background="#102030"))
    (page,) = grid.compose_grid(plan, [GridCell(index=0, coords=(0,), files=(str(p),))], tmp_path / "o", "g")
    s = plan.pages[0].slots[0]
    assert Image.open(page.path).convert("RGB").getpixel((s.x + 5, s.y + 5)) == (16, 32, 48)


def test_pages_and_overview_files_are_written(tmp_path: Path) -> None:
    axes = [GridAxis("z", (1, 2), "INT"), GridAxis("y", (1, 2), "INT"), GridAxis("x", (1, 2), "INT")]
    cells = _matrix_cells(tmp_path, axes, (48, 48))
    plan = grid.plan_grid(axes, 8, (48, 48))
    pages = grid.compose_grid(plan, cells, tmp_path / "out", "sweep")
    assert [Path(p.path).name for p in pages] == ["sweep_p01.png", "sweep_p02.png", "sweep_overview.png"]
    assert pages[-1].kind == "overview"
    for p in pages:
        with Image.open(p.path) as im:
            assert im.size == (p.width, p.height)


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_other_formats_are_written(tmp_path: Path, fmt: str) -> None:
    axes = [GridAxis("a", (1, 2), "INT")]
    cells = _matrix_cells(tmp_path, axes)
    plan = grid.plan_grid(axes, 2, (64, 64), GridOptions(format=fmt))
    (page,) = grid.compose_grid(plan, cells, tmp_path / "o", "g", sweep={"axes": ["a"]})
    with Image.open(page.path) as im:
        assert im.format == fmt.upper()


def test_big_grid_does_not_trip_the_decompression_bomb_guard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)
    axes = _big_axes(5)
    cells = _matrix_cells(tmp_path, axes, (32, 32))
    plan = grid.plan_grid(axes, 25, (32, 32))
    assert plan.width * plan.height > 2 * 5000
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (page,) = grid.compose_grid(plan, cells, tmp_path / "o", "g")
    assert os.path.getsize(page.path) > 0


def test_cells_are_decoded_with_a_bounded_read_ahead(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """At most workers + 1 cells exist at once (decoding or being pasted): raster plus a few cells."""
    in_flight = {"now": 0, "max": 0}

    class CountingPool:
        def submit(self, fn, slot):  # type: ignore[no-untyped-def]
            import concurrent.futures

            in_flight["now"] += 1
            in_flight["max"] = max(in_flight["max"], in_flight["now"])
            fut: concurrent.futures.Future[Image.Image] = concurrent.futures.Future()
            fut.set_result(fn(slot))
            return fut

    axes = _big_axes(5)
    cells = _matrix_cells(tmp_path, axes, (16, 16))
    plan = grid.plan_grid(axes, 25, (16, 16))
    by_key = {c.coords: inputs.as_cell(c) for c in cells}
    for _slot, tile in compose._tiles(plan.pages[0].slots, by_key, "matrix", plan.options, CountingPool(), 2):  # type: ignore[arg-type]
        in_flight["now"] -= 1
        tile.close()
    assert in_flight["max"] <= 3


def test_status_dict_is_converted() -> None:
    status = {
        "mode": "matrix",
        "axes": [{"name": "cfg", "type": "FLOAT", "values": [3.0, 5.0]}],
        "cells": [
            {"index": 1, "coords": [1], "values": {"cfg": 5.0}, "status": "failed", "error": "x", "files": []},
            {"index": 0, "coords": [0], "values": {"cfg": 3.0}, "status": "done", "error": None, "files": ["/a/b.png"]},
        ],
    }
    axes, cells, mode = grid.axes_and_cells_from_status(status)
    assert axes == (GridAxis("cfg", (3.0, 5.0), "FLOAT"),)
    assert [c.index for c in cells] == [0, 1]
    assert cells[0] == GridCell(index=0, coords=(0,), status="done", files=("/a/b.png",))
    assert cells[1].status == "failed" and cells[1].error == "x" and mode == "matrix"


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"cell_gap": -1}, "cell_gap"), ({"label_font_size": 2}, "label_font_size"),
     ({"min_font_size": 40}, "min_font_size"), ({"format": "gif"}, "format"),
     ({"multi_axis": "cube"}, "multi_axis"), ({"quality": 0}, "quality"),
     ({"max_megapixels": 0}, "max_megapixels"), ({"background": "notacolour"}, "background"),
     ({"x_axis": "a", "y_axis": "a"}, "y_axis"), ({"wrap_columns": 0}, "wrap_columns"),
     ({"cell_max_size": 4}, "cell_max_size"), ({"oversize": "crop"}, "oversize")],
)
def test_bad_options_raise_value_error_naming_the_option(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        GridOptions(**kwargs)  # type: ignore[arg-type]


def test_options_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        GridOptions("x")  # type: ignore[misc]


# ------------------------------------------------------------------------------------------ golden
def _golden_grid(tmp_path: Path) -> Path:
    axes = [GridAxis("cfg", (3.5, 7.0), "FLOAT"), GridAxis("sampler", ("euler", "Ελληνικά"), "COMBO")]
    cells = []
    for k, coords in enumerate(itertools.product(range(2), range(2))):
        arr = np.zeros((64, 64, 3), np.uint8)
        arr[..., 0] = np.linspace(0, 255, 64, dtype=np.uint8)[None, :]
        arr[..., 1] = 60 * k
        arr[..., 2] = np.linspace(255, 0, 64, dtype=np.uint8)[:, None]
        p = tmp_path / f"g{k}.png"
        Image.fromarray(arr).save(p)
        status = "failed" if k == 3 else "done"
        cells.append(GridCell(index=k, coords=coords, status=status, error="boom" if k == 3 else None, files=(str(p),)))
    plan = grid.plan_grid(axes, 4, (64, 64), GridOptions(label_font_size=16, min_font_size=10))
    (page,) = grid.compose_grid(plan, cells, tmp_path / "out", "golden")
    return Path(page.path)


def test_golden_image_matches(tmp_path: Path) -> None:
    path = _golden_grid(tmp_path)
    golden = GOLDEN / "grid_2x2.png"
    if os.environ.get("WI_UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        Image.open(path).save(golden)
    assert golden.exists(), "golden image missing; regenerate with WI_UPDATE_GOLDEN=1"
    got = np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)
    want = np.asarray(Image.open(golden).convert("RGB"), dtype=np.int16)
    assert got.shape == want.shape
    # FreeType versions anti-alias slightly differently; layout changes move whole blocks and fail this.
    assert np.abs(got - want).mean() < 2.0


# -------------------------------------------------------------------------------------- properties
_label_text = st.text(alphabet=st.characters(codec="utf-8", categories=("L", "N", "P", "Zs")), min_size=1, max_size=60)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    xs=st.lists(_label_text, min_size=1, max_size=5, unique=True),
    ys=st.lists(_label_text, min_size=1, max_size=4, unique=True),
    w=st.integers(32, 300),
    h=st.integers(32, 300),
)
def test_property_texts_fit_and_slots_do_not_overlap(xs: list[str], ys: list[str], w: int, h: int) -> None:
    axes = [GridAxis("y", tuple(ys), "STRING"), GridAxis("x", tuple(xs), "STRING")]
    plan = grid.plan_grid(axes, len(xs) * len(ys), (w, h), GridOptions(label_font_size=20, min_font_size=10))
    page = plan.pages[0]
    assert len(page.slots) == len(xs) * len(ys)
    for t in page.texts:
        assert _text_fits(t)
        assert t.x >= 0 and t.y >= 0 and t.x + t.w <= page.width and t.y + t.h <= page.height
    for a, b in itertools.combinations(page.slots, 2):
        assert not _overlap(a, b)


def test_long_outer_axis_value_titles_use_the_legend() -> None:
    prompt = "a very long prompt " * 30
    axes = [GridAxis("prompt", (prompt, "short"), "STRING"), GridAxis("y", (1, 2), "INT"), GridAxis("x", (1, 2), "INT")]
    for multi in ("pages", "subgrids"):
        plan = grid.plan_grid(axes, 8, (64, 64), GridOptions(multi_axis=multi))
        first = plan.grid_pages[0]
        titles = [t.lines[0] for t in first.texts if t.role in ("page_title", "subgrid_title")]
        assert titles[0] == "prompt: [1]"
        assert any(t.role == "legend" for t in first.texts)
        assert all(_text_fits(t) for t in first.texts)


def test_huge_value_plans_quickly_and_stays_readable() -> None:
    axes = [GridAxis("prompt", ("word " * 20_000, "x" * 50_000), "STRING")]
    plan = grid.plan_grid(axes, 2, (128, 128))
    page = plan.pages[0]
    assert [n for n, _ in plan.legend] == [1, 2]
    assert all(_text_fits(t) for t in page.texts)
    assert all(len(text) < 1200 for _, text in plan.legend)  # capped: the full text lives in batch.json


def test_jpeg_cells_are_decoded_reduced_to_fit(tmp_path: Path) -> None:
    p = tmp_path / "big.jpg"
    Image.new("RGB", (800, 400), (30, 90, 200)).save(p, quality=95)
    axes = [GridAxis("a", (1,), "INT")]
    plan = grid.plan_grid(axes, 1, (800, 400), GridOptions(cell_max_size=100))
    (page,) = grid.compose_grid(plan, [GridCell(index=0, coords=(0,), files=(str(p),))], tmp_path / "o", "g")
    s = plan.pages[0].slots[0]
    got = Image.open(page.path).convert("RGB").getpixel((s.x + s.w // 2, s.y + s.h // 2))
    assert all(abs(a - b) <= 3 for a, b in zip(got, (30, 90, 200)))


def test_linear_labels_use_the_cells_own_coords() -> None:
    axes = [GridAxis("cfg", (3, 5, 7), "INT"), GridAxis("steps", (10, 20), "INT")]
    cells = [GridCell(index=0, coords=(0, 0)), GridCell(index=1, coords=(1, 1)), GridCell(index=2, coords=(2, 1))]
    page = grid.plan_grid(axes, cells, (128, 128), mode="linear").pages[0]
    assert [t.lines for t in _headers(page)] == [("cfg: 3", "steps: 10"), ("cfg: 5", "steps: 20"), ("cfg: 7", "steps: 20")]
