"""Grid tiles of cells that are not still images (issue 17): an animation's chosen frame with a play badge,
a video without a decoder as a labelled placeholder, an audio waveform (WAV via stdlib ``wave``), a text cell.
"""
from __future__ import annotations

import math
import struct
import wave
from pathlib import Path

import pytest
from PIL import Image

from comfyui_workflow_iterator.core import grid
from comfyui_workflow_iterator.core.grid import GridAxis, GridOptions, compose, tiles
from comfyui_workflow_iterator.core.records import CellRecord, OutputRecord

RED, GREEN, BLUE = (220, 30, 30), (30, 200, 30), (30, 30, 220)


def _animation(path: Path, colours: list[tuple[int, int, int]], fmt: str = "WEBP") -> str:
    frames = [Image.new("RGB", (64, 64), c) for c in colours]
    frames[0].save(path, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, lossless=True)
    return str(path)


def _wav(path: Path, seconds: float = 0.5, rate: int = 8000) -> str:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        n = int(seconds * rate)
        # Silent first half, loud second half: the waveform's right side must be taller than its left.
        w.writeframes(b"".join(struct.pack("<h", int((0 if i < n // 2 else 30000) * math.sin(i / 3))) for i in range(n)))
    return str(path)


def _compose_one(tmp_path: Path, cell: CellRecord, size: tuple[int, int] = (64, 64), **options) -> Image.Image:
    axes = [GridAxis("a", (1,))]
    plan = grid.plan_grid(axes, [cell], size, GridOptions(overview=False, axis_titles=False, **options))
    (page,) = grid.compose_grid(plan, [cell], tmp_path / "out", "g")
    slot = plan.pages[0].slots[0]
    with Image.open(page.path) as im:
        return im.convert("RGB").crop((slot.x, slot.y, slot.x + slot.w, slot.y + slot.h))


def _corner(tile: Image.Image) -> tuple[int, int, int]:
    return tile.getpixel((2, 2))  # type: ignore[return-value]


@pytest.mark.parametrize("fmt", ["WEBP", "PNG", "GIF"])
def test_an_animated_cell_tiles_its_first_frame_by_default_with_a_play_badge(tmp_path: Path, fmt: str) -> None:
    path = _animation(tmp_path / f"a.{fmt.lower()}", [RED, GREEN, BLUE], fmt)
    tile = _compose_one(tmp_path, CellRecord(0, (0,), files=(path,), outputs=(OutputRecord(path, "animated"),)))
    r, g, b = _corner(tile)
    assert r > 180 and g < 80 and b < 80  # frame 0 is red
    centre = tile.getpixel((tile.width // 2, tile.height // 2))
    assert all(c > 200 for c in centre)  # the badge's white triangle sits in the middle


def test_the_video_frame_option_chooses_the_frame_and_clamps_to_the_last(tmp_path: Path) -> None:
    path = _animation(tmp_path / "a.webp", [RED, GREEN, BLUE])
    cell = CellRecord(0, (0,), files=(path,), outputs=(OutputRecord(path, "animated"),))
    assert _corner(_compose_one(tmp_path, cell, video_frame=1))[1] > 150  # green
    assert _corner(_compose_one(tmp_path, cell, video_frame=99))[2] > 150  # past the end: the last, blue


def test_video_frame_is_a_node_option_with_its_default_from_grid_options() -> None:
    spec = grid.node_input_types()["required"]["video_frame"]
    assert spec[0] == "INT" and spec[1]["default"] == 0 and spec[1]["min"] == 0
    assert grid.options_from_node({"video_frame": 5}).video_frame == 5
    with pytest.raises(ValueError, match="video_frame"):
        GridOptions(video_frame=-1)


def test_a_still_image_tile_has_no_badge(tmp_path: Path) -> None:
    path = tmp_path / "s.png"
    Image.new("RGB", (64, 64), RED).save(path)
    tile = _compose_one(tmp_path, CellRecord(0, (0,), files=(str(path),), outputs=(OutputRecord(str(path), "image"),)))
    centre = tile.getpixel((tile.width // 2, tile.height // 2))
    assert centre[0] > 180 and centre[1] < 80


def test_a_video_without_a_decoder_is_a_placeholder_naming_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(tiles, "_av", lambda: None)
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"\0\0\0\x18ftypmp42")
    cell = CellRecord(0, (0,), files=(str(path),), outputs=(OutputRecord(str(path), "video"),))
    placeholder = compose._output_tile(cell, (128, 128), GridOptions())
    assert placeholder == ("video", "clip.mp4")
    assert tiles.media_size(str(path), "video") is None


def test_an_audio_cell_is_a_waveform_louder_where_the_sound_is(tmp_path: Path) -> None:
    path = _wav(tmp_path / "a.wav")
    tile = tiles.audio_tile(path, (200, 100), 12)
    assert tile.size == (200, 100)

    def blue_pixels(x0: int, x1: int) -> int:
        return sum(1 for x in range(x0, x1) for y in range(tile.height) if tile.getpixel((x, y)) == tiles._WAVE_COLOR)

    assert blue_pixels(110, 190) > 10 * max(1, blue_pixels(10, 90))


def test_an_audio_file_that_cannot_be_decoded_is_a_labelled_audio_placeholder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(tiles, "_av", lambda: None)
    path = tmp_path / "song.flac"
    path.write_bytes(b"fLaC" + b"\0" * 40)
    tile = tiles.audio_tile(str(path), (200, 100), 12)
    assert not any(tile.getpixel((x, y)) == tiles._WAVE_COLOR for x in range(200) for y in range(100))
    assert len(tile.getcolors(maxcolors=100_000) or ()) > 2  # text was drawn ("audio", the file name)


def test_an_audio_cell_in_a_grid_is_planned_at_the_audio_tile_size(tmp_path: Path) -> None:
    from comfyui_workflow_iterator.core.batch_outputs import _cell_sizes

    path = _wav(tmp_path / "a.wav")
    cells = [CellRecord(0, (0,), files=(path,), outputs=(OutputRecord(path, "audio"),))]
    assert _cell_sizes(cells) == [tiles.AUDIO_TILE_SIZE]
    tile = _compose_one(tmp_path, cells[0], size=tiles.AUDIO_TILE_SIZE)
    assert any(tile.getpixel((x, tile.height // 2)) == tiles._WAVE_COLOR for x in range(tile.width))


def test_a_text_only_cell_shows_its_text_on_a_placeholder(tmp_path: Path) -> None:
    cell = CellRecord(0, (0,), outputs=(OutputRecord("/t.txt", "text", text="a cat"),))
    assert compose._output_tile(cell, (128, 128), GridOptions()) == ("text", "a cat")


def test_play_badge_keeps_the_tile_size_and_mode() -> None:
    tile = tiles.draw_play_badge(Image.new("RGB", (40, 30), RED))
    assert tile.size == (40, 30) and tile.mode == "RGB" and _corner(tile) == RED
