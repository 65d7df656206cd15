"""pyproject.toml builds valid package metadata and meets the Comfy Registry's rules
(docs.comfy.org/registry/specifications), so a broken or placeholder field fails CI instead of a publish."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from PIL import Image
from pyproject_metadata import StandardMetadata

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
GITHUB = re.compile(r"^https://github\.com/(?P<owner>[A-Za-z0-9-]+)/(?P<repo>[A-Za-z0-9._-]+)$")
# Owners and hosts that only ever appear in templates.
PLACEHOLDERS = {"example", "username", "user", "your-name", "yourname", "owner", "author", "todo"}


def test_metadata_builds_and_names_the_license_readme_and_version():
    metadata = StandardMetadata.from_pyproject(PYPROJECT, ROOT)  # raises on any invalid PEP 621 field
    message = metadata.as_rfc822()
    assert message["Name"] == "workflow-iterator"
    assert Version(message["Version"]) == Version(PYPROJECT["project"]["version"])
    assert message["Description-Content-Type"] == "text/markdown"
    assert "Workflow Iterator" in str(message.get_payload())  # the README became the long description
    license_file = ROOT / PYPROJECT["project"]["license"]["file"]
    assert license_file.is_file() and license_file.read_text().startswith("MIT License")
    assert "License :: OSI Approved :: MIT License" in message.get_all("Classifier")


def test_name_and_version_follow_the_registry_rules():
    name = PYPROJECT["project"]["name"]
    assert len(name) < 100 and re.fullmatch(r"[A-Za-z][A-Za-z0-9]*([._-][A-Za-z0-9]+)*", name), name
    assert "comfyui" not in name.lower()  # the Registry asks node ids not to repeat "ComfyUI"
    assert re.fullmatch(r"\d+\.\d+\.\d+", PYPROJECT["project"]["version"])


def test_repository_urls_are_real_github_urls_of_the_publisher():
    urls = PYPROJECT["project"]["urls"]
    match = GITHUB.match(urls["Repository"])
    assert match, urls["Repository"]
    owner, repo = match["owner"], match["repo"]
    assert owner.lower() not in PLACEHOLDERS and "example" not in urls["Repository"]
    assert owner == PYPROJECT["tool"]["comfy"]["PublisherId"]
    for key in ("Documentation", "Bug Tracker"):
        assert urls[key].startswith(f"https://github.com/{owner}/{repo}"), (key, urls[key])


def test_icon_is_a_file_of_this_repository_within_the_registry_size():
    comfy = PYPROJECT["tool"]["comfy"]
    owner, repo = GITHUB.match(PYPROJECT["project"]["urls"]["Repository"]).group("owner", "repo")
    prefix = f"https://raw.githubusercontent.com/{owner}/{repo}/main/"
    assert comfy["Icon"].startswith(prefix), comfy["Icon"]
    icon = ROOT / comfy["Icon"][len(prefix):]
    assert icon.suffix.lower() in (".png", ".svg", ".jpg", ".gif") and icon.is_file(), icon
    with Image.open(icon) as image:
        assert image.width <= 800 and image.height <= 400, image.size


def test_tool_comfy_names_publisher_display_name_and_comfyui_range():
    comfy = PYPROJECT["tool"]["comfy"]
    assert comfy["PublisherId"] and comfy["DisplayName"]
    spec = SpecifierSet(comfy["requires-comfyui"])
    assert "0.3.64" in spec and "0.8.0" in spec and "0.3.46" not in spec  # validate_prompt's 3-argument form


@pytest.mark.parametrize("field", ["name", "version", "description", "license"])
def test_required_project_fields_are_present(field):
    assert PYPROJECT["project"].get(field)


def test_test_requirements_are_pinned_exactly_and_match_what_runs():
    from importlib.metadata import version

    pins = {}
    for line in (ROOT / "requirements-dev.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, pinned = line.partition("==")
            assert sep and re.fullmatch(r"[0-9][0-9A-Za-z.+-]*", pinned), f"not an exact pin: {line!r}"
            pins[name] = pinned
    assert {"pytest", "hypothesis", "Pillow", "numpy", "aiohttp"} <= set(pins)
    # The running interpreter is the one scripts/test.sh installed them into.
    assert {name: version(name) for name in pins} == pins
