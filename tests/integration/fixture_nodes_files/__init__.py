"""Test-only ComfyUI nodes for the crash and file tests (linked into custom_nodes by those tests only).

WITestNoise makes a large image of random pixels: PNG cannot compress noise, so saving it takes long enough
(about a second) for a test to see the save in progress and SIGKILL ComfyUI in the middle of the write.
WITestText passes an image through and ignores a STRING input, so a sweep can carry any text a user can send
(a lone UTF-16 surrogate) without a node turning it into a file name.
"""
import torch


class WITestNoise:
    CATEGORY = "WI/test"
    FUNCTION = "run"
    RETURN_TYPES = ("IMAGE",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"size": ("INT", {"default": 2048, "min": 8, "max": 8192}),
                             "seed": ("INT", {"default": 0, "min": 0, "max": 2**31})}}

    def run(self, size, seed):
        generator = torch.Generator().manual_seed(seed)
        return (torch.rand((1, size, size, 3), generator=generator),)


class WITestText:
    CATEGORY = "WI/test"
    FUNCTION = "run"
    RETURN_TYPES = ("IMAGE",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "text": ("STRING", {"default": ""})}}

    def run(self, image, text):
        return (image,)


NODE_CLASS_MAPPINGS = {"WITestNoise": WITestNoise, "WITestText": WITestText}
