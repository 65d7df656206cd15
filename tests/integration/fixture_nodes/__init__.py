"""Test-only ComfyUI nodes (linked into custom_nodes by the integration tests, never shipped as nodes).

WITestSleep passes an image through after a pause that honours ComfyUI's interrupt flag, so a cancel can
land mid-cell; WITestFail raises when its ``fail`` input is true, to make a cell fail at execution time.
WITestExpensive (benchmarks) stands for a costly upstream node: it passes an image through after a fixed
pause, and ComfyUI's cache decides whether it runs again (bench/cache_order_bench.py counts how often).
WITestFresh passes an image through and reports a new IS_CHANGED value on every call, so ComfyUI must run it
in every prompt: a cell that reused another cell's memoised ``is_changed`` would serve it from the cache.
WITestNoDefault passes an image through and has an INT widget that declares no default (every model-free core
node declares one), so a skipped parameter wired into it has nothing to fall back to; tests/comfy_standin.py
declares the same spec.
WITestSaveAudio stands for a custom audio saver (neither test backend has torchaudio, so core SaveAudio does not
load): it writes a short WAV tone whose pitch follows the image's brightness into the output folder and reports
it as ``{"ui": {"audio": [...]}}``, the way core SaveAudio does.
"""
import math
import os
import struct
import time
import wave

import comfy.model_management


class WITestSleep:
    CATEGORY = "WI/test"
    FUNCTION = "run"
    RETURN_TYPES = ("IMAGE",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "seconds": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 60.0, "step": 0.01})}}

    def run(self, image, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            comfy.model_management.throw_exception_if_processing_interrupted()
            time.sleep(0.02)
        return (image,)


class WITestFail:
    CATEGORY = "WI/test"
    FUNCTION = "run"
    RETURN_TYPES = ("IMAGE",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "fail": ("BOOLEAN", {"default": False})}}

    def run(self, image, fail):
        if fail:
            raise RuntimeError("WITestFail was asked to fail")
        return (image,)


class WITestExpensive:
    CATEGORY = "WI/test"
    FUNCTION = "run"
    RETURN_TYPES = ("IMAGE",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "seconds": ("FLOAT", {"default": 0.2, "min": 0.0, "max": 10.0, "step": 0.01})}}

    def run(self, image, seconds):
        time.sleep(seconds)
        return (image,)


class WITestFresh:
    CATEGORY = "WI/test"
    FUNCTION = "run"
    RETURN_TYPES = ("IMAGE",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",)}}

    @classmethod
    def IS_CHANGED(cls, image):
        return time.monotonic_ns()

    def run(self, image):
        return (image,)


class WITestNoDefault:
    CATEGORY = "WI/test"
    FUNCTION = "run"
    RETURN_TYPES = ("IMAGE",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "amount": ("INT", {"min": 0, "max": 100})}}

    def run(self, image, amount):
        return (image,)


class WITestSaveAudio:
    CATEGORY = "WI/test"
    FUNCTION = "run"
    RETURN_TYPES = ()
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "filename_prefix": ("STRING", {"default": "wi_audio"})}}

    def run(self, image, filename_prefix):
        import folder_paths

        folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(filename_prefix, folder_paths.get_output_directory())
        file = f"{name}_{counter:05}_.wav"
        pitch = 200.0 + 800.0 * float(image.mean())
        with wave.open(os.path.join(folder, file), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(b"".join(struct.pack("<h", int(12000 * math.sin(2 * math.pi * pitch * i / 8000))) for i in range(2000)))
        return {"ui": {"audio": [{"filename": file, "subfolder": subfolder, "type": "output"}]}}


NODE_CLASS_MAPPINGS = {"WITestSleep": WITestSleep, "WITestFail": WITestFail, "WITestExpensive": WITestExpensive,
                       "WITestFresh": WITestFresh, "WITestNoDefault": WITestNoDefault, "WITestSaveAudio": WITestSaveAudio}
