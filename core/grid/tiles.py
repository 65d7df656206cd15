"""Grid tiles of cells that are not still images: a chosen frame of an animation or video with a play badge,
and a labelled waveform of an audio output.

Pillow reads animated WEBP/PNG/GIF frames. Video frames (mp4, webm) and compressed audio (FLAC, MP3, Opus)
need PyAV (``av``), which newer ComfyUI versions require and 0.3.64's venv has too; it is optional here:
imported inside :func:`_video_frame` / :func:`_decode_audio` only, and without it (or for a file it cannot
read) the tile is a placeholder naming the file. WAV is decoded with the standard library's ``wave``.

Plain Python over Pillow and numpy; must not import torch, ``comfy*``, ``server``, ``nodes``,
``folder_paths`` or aiohttp; ``av`` only lazily.
"""
from __future__ import annotations

import logging
import os
import wave
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from .text import font, line_height, wrap_text

logger = logging.getLogger(__name__)

__all__ = ["AUDIO_TILE_SIZE", "audio_tile", "draw_play_badge", "media_frame", "media_size"]

#: The size an audio cell's tile is planned at (a wide strip, like a player).
AUDIO_TILE_SIZE: tuple[int, int] = (512, 192)
_WAVE_COLOR = (52, 101, 164)
_TILE_BG = (246, 246, 246)
_TEXT = (70, 70, 70)


def _av() -> Any | None:
    """PyAV when installed (a ComfyUI requirement in newer versions), else None."""
    try:
        import av  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    return av


def _video_frame(path: str, frame: int) -> Image.Image | None:
    """Frame ``frame`` (or the last one, for a shorter video) of a video file, decoded with PyAV; None when
    PyAV is missing or cannot read it."""
    av = _av()
    if av is None:
        return None
    try:
        with av.open(path) as container:
            last = None
            for number, decoded in enumerate(container.decode(video=0)):
                last = decoded
                if number >= frame:
                    break
            return None if last is None else last.to_image().convert("RGB")
    except Exception as exc:  # PyAV raises its own error types (av.error.*), all bad-file cases here
        logger.warning("WI grid: cannot decode a frame of %s: %s", path, exc)
        return None


def media_frame(path: str, kind: str, frame: int) -> Image.Image | None:
    """The picture a visual output's tile shows: a still image itself, frame ``frame`` (clamped to the last)
    of an animation or video. None when the video cannot be decoded here (no PyAV).

    Raises:
        OSError, ValueError: an image file Pillow cannot read.
    """
    if kind == "video":
        return _video_frame(path, frame)
    with Image.open(path) as im:
        frames = int(getattr(im, "n_frames", 1))
        if kind == "animated" and frames > 1:
            im.seek(min(frame, frames - 1))
        out = im.convert("RGBA" if im.mode in ("RGBA", "LA", "P", "PA") else "RGB")
    if out.mode == "RGBA":
        flat = Image.new("RGB", out.size, (255, 255, 255))
        flat.paste(out, (0, 0), out.getchannel("A"))
        return flat
    return out


def media_size(path: str, kind: str) -> tuple[int, int] | None:
    """The planned tile size of an output: its pixel size (video: its first frame's), audio's fixed strip;
    None when unknown."""
    if kind == "audio":
        return AUDIO_TILE_SIZE
    if kind == "video":
        first = _video_frame(path, 0)
        return None if first is None else first.size
    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, ValueError):
        return None


def draw_play_badge(tile: Image.Image) -> Image.Image:
    """A round play badge in the tile's centre, so a still frame reads as "this cell moves"."""
    side = min(tile.size)
    radius = max(8, side // 8)
    cx, cy = tile.width // 2, tile.height // 2
    overlay = Image.new("RGBA", tile.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=(0, 0, 0, 150),
                 outline=(255, 255, 255, 230), width=max(1, radius // 10))
    r = radius * 0.55
    draw.polygon([(cx - r * 0.6, cy - r), (cx - r * 0.6, cy + r), (cx + r, cy)], fill=(255, 255, 255, 240))
    out = tile.convert("RGBA")
    out.alpha_composite(overlay)
    return out.convert("RGB")


def _wav_samples(path: str) -> np.ndarray | None:
    """Mono samples in [-1, 1] of a PCM WAV file (stdlib ``wave``), or None when it is not one."""
    try:
        with wave.open(path, "rb") as w:
            width, channels, count = w.getsampwidth(), w.getnchannels(), w.getnframes()
            raw = w.readframes(count)
    except (wave.Error, EOFError, OSError):
        return None
    if width == 1:
        data = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width in (2, 4):
        data = np.frombuffer(raw, dtype=np.int16 if width == 2 else np.int32).astype(np.float32) / float(2 ** (8 * width - 1))
    else:
        return None
    usable = data.size - data.size % max(1, channels)
    return data[:usable].reshape(-1, max(1, channels)).mean(axis=1) if usable else None


def _decode_audio(path: str) -> np.ndarray | None:
    """Mono samples of any audio file PyAV reads (FLAC, MP3, Opus), or None."""
    av = _av()
    if av is None:
        return None
    try:
        chunks = []
        with av.open(path) as container:
            for decoded in container.decode(audio=0):
                array = decoded.to_ndarray().astype(np.float32)
                chunks.append(array.mean(axis=0) if array.ndim == 2 and array.shape[0] < array.shape[1] else array.reshape(-1))
        return np.concatenate(chunks) if chunks else None
    except Exception as exc:  # PyAV's own error types
        logger.warning("WI grid: cannot decode the audio of %s: %s", path, exc)
        return None


def _samples(path: str) -> np.ndarray | None:
    samples = _wav_samples(path) if path.lower().endswith(".wav") else None
    return samples if samples is not None else _decode_audio(path)


def audio_tile(path: str, size: tuple[int, int], font_size: int) -> Image.Image:
    """A labelled waveform of an audio file (peaks per pixel column), or, when it cannot be decoded here, a
    placeholder saying "audio" with the file name."""
    w, h = max(16, size[0]), max(16, size[1])
    tile = Image.new("RGB", (w, h), _TILE_BG)
    draw = ImageDraw.Draw(tile)
    name = os.path.basename(path)
    label_size = max(8, min(font_size, h // 6))
    label_h = line_height(label_size)
    samples = _samples(path)
    if samples is None or samples.size == 0:
        lines = ["audio", *wrap_text(name, w - 8, label_size)[:2]]
        y = max(0, (h - len(lines) * label_h) // 2)
        for line in lines:
            draw.text((w / 2, y), line, font=font(label_size), fill=_TEXT, anchor="ma")
            y += label_h
        return tile
    top, bottom = 4, h - label_h - 6
    mid, half = (top + bottom) / 2, max(1.0, (bottom - top) / 2)
    columns = np.array_split(np.abs(samples), w) if samples.size >= w else [np.abs(samples)] * w
    peak = max(float(samples.max(initial=0.0)), float(-samples.min(initial=0.0)), 1e-9)
    for x, column in enumerate(columns):
        level = float(column.max(initial=0.0)) / peak if column.size else 0.0
        draw.line([(x, mid - level * half), (x, mid + level * half)], fill=_WAVE_COLOR)
    label = wrap_text(name, w - 8, label_size)[0] if name else "audio"
    draw.text((w / 2, h - label_h - 2), label, font=font(label_size), fill=_TEXT, anchor="ma")
    return tile
