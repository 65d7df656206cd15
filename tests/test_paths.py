"""core/paths.py: the one naming rule (batch ids and folders, cell files, single saves) and resolve_inside."""
from __future__ import annotations

import os
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comfyui_workflow_iterator.core import iteration_state, paths

HEX_SUFFIX = re.compile(r"_[0-9a-f]{8}\Z")


# ------------------------------------------------------------------------------------------------ batch ids


@pytest.mark.parametrize("length", [1, 50, 55, 56, 57, 60, 63, 64, 65, 70, 100, 300])
def test_a_batch_id_keeps_its_whole_suffix_and_is_its_own_folder_name(length: int) -> None:
    batch_id = paths.new_batch_id("n" * length)
    assert HEX_SUFFIX.search(batch_id), batch_id
    assert len(batch_id) <= paths.MAX_COMPONENT
    assert paths.batch_folder_name(batch_id) == batch_id
    assert paths.batch_subfolder("WI", batch_id) == f"WI/{batch_id}"


@pytest.mark.parametrize("length", [57, 63, 70, 200])
def test_two_batches_with_the_same_long_name_never_share_a_folder(length: int) -> None:
    name = "portrait sweep " + "x" * length
    first, second = paths.new_batch_id(name), paths.new_batch_id(name)
    assert first != second
    assert paths.batch_subfolder("WI", first) != paths.batch_subfolder("WI", second)


@pytest.mark.parametrize(
    ("name", "readable"),
    [("sweep", "sweep"), ("my sweep / cfg", "my_sweep_cfg"), ("  lead", "lead"), ("__x__", "x"), ("-a-", "a"),
     ("ünï cödé", "n_c_d"), ("", "batch"), ("!!!", "batch"), ("x" * 100, "x" * 55)],
)
def test_the_readable_part_is_safe_bounded_and_never_starts_or_ends_with_a_separator(name: str, readable: str) -> None:
    assert paths.sanitize_batch_name(name) == readable
    assert paths.new_batch_id(name)[: -9] == readable


def test_an_older_73_character_id_keeps_its_suffix_in_its_folder() -> None:
    old_a, old_b = "a" * 64 + "_0123abcd", "a" * 64 + "_89abcdef"  # what the previous release generated
    folder_a, folder_b = paths.batch_folder_name(old_a), paths.batch_folder_name(old_b)
    assert folder_a.endswith("_0123abcd") and folder_b.endswith("_89abcdef")
    assert len(folder_a) <= paths.MAX_COMPONENT and folder_a != folder_b


def test_the_manager_and_the_hook_share_the_rule() -> None:
    assert iteration_state.new_batch_id is paths.new_batch_id
    assert iteration_state.sanitize_batch_name is paths.sanitize_batch_name
    batch_id = iteration_state.IterationStateManager().create_batch(
        batch_name="y" * 90, mode="matrix", combinations=_one_combination()).batch_id
    assert len(batch_id) <= paths.MAX_COMPONENT and HEX_SUFFIX.search(batch_id)


def _one_combination():
    from comfyui_workflow_iterator.core import combination_engine

    return combination_engine.cartesian([combination_engine.Axis(name="a", values=(1,), type="INT")])


# ------------------------------------------------------------------------------------------------ cell files


def test_two_save_nodes_of_one_cell_get_two_names() -> None:
    values = {"radius": 1.0}
    names = {paths.cell_filename(0, values, 0, node_id=node) for node in ("20", "21")}
    assert names == {"c00000_radius-1.0_n20_0.png", "c00000_radius-1.0_n21_0.png"}


def test_a_subgraph_node_id_cannot_collide_with_another_node_and_image_number() -> None:
    # "5:3" (a node inside a subgraph) image 0 versus node "5" image 3: the separator tells them apart.
    assert paths.cell_filename(2, {"a": 1}, 0, node_id="5:3") != paths.cell_filename(2, {"a": 1}, 3, node_id="5")
    assert paths.node_part("5:3") == "n5-3"


def test_long_values_are_cut_but_the_node_and_image_number_survive() -> None:
    values = {f"k{i}": "v" * 40 for i in range(10)}
    name = paths.cell_filename(12345, values, 7, node_id="123:456:789")
    assert len(name) <= paths.MAX_CELL_FILENAME
    assert name.startswith("c12345_") and name.endswith("_n123-456-789_7.png")


def test_a_name_of_the_rule_splits_back_into_its_stem_and_image_number() -> None:
    stem = paths.cell_file_stem(3, {"a": 1}, "9")
    assert paths.split_cell_filename(paths.cell_filename(3, {"a": 1}, 12, node_id="9")) == (stem, 12)
    assert paths.split_cell_filename(paths.cell_filename(3, {"a": 1}, 0, node_id="90"))[0] != stem
    assert paths.split_cell_filename(stem + "_x.png") is None
    assert paths.split_cell_filename("grid_1.png") is None and paths.split_cell_filename("c00001_n5_0.jpg") is None


# ------------------------------------------------------------------------------------------------ single saves


def test_the_single_counter_is_the_highest_existing_plus_one_not_the_file_count() -> None:
    names = ["WI_00001.png", "WI_00003.png", "other_00009.png", "WI_00002.png.part", "WI_x.png"]
    assert paths.next_single_counter("WI", names) == 4
    assert paths.next_single_counter("WI", []) == 1
    assert paths.single_filename("WI", 4) == "WI_00004.png"


def test_the_single_counter_does_not_mistake_a_longer_prefix_for_its_own() -> None:
    assert paths.next_single_counter("WI", ["WI_b_00007.png", "WIx_00008.png"]) == 1


# ------------------------------------------------------------------------------------------------ roots


def test_resolve_inside_follows_links_and_refuses_one_that_leaves_the_root(tmp_path) -> None:
    (tmp_path / "out" / "WI" / "b").mkdir(parents=True)
    (tmp_path / "out" / "other").mkdir()
    (tmp_path / "out" / "other" / "secret.png").write_bytes(b"x")
    os.symlink("../../other/secret.png", tmp_path / "out" / "WI" / "b" / "sibling.png")
    batch = paths.resolve_inside(str(tmp_path / "out"), "WI/b")
    assert paths.resolve_inside(str(tmp_path / "out"), "WI/b", "sibling.png").endswith("other/secret.png")
    with pytest.raises(ValueError, match="leaves its root"):
        paths.resolve_inside(batch, "sibling.png")


# ------------------------------------------------------------------------------------------------ properties

_NODE_IDS = st.lists(st.integers(0, 999), min_size=1, max_size=3).map(lambda parts: ":".join(map(str, parts)))


@settings(max_examples=300, deadline=None)
@given(name=st.text(max_size=200))
def test_any_name_gives_an_id_that_is_its_own_safe_folder_and_keeps_its_suffix(name: str) -> None:
    batch_id = paths.new_batch_id(name)
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", batch_id) and HEX_SUFFIX.search(batch_id)
    assert paths.batch_folder_name(batch_id) == batch_id == paths.safe_component(batch_id)


@settings(max_examples=300, deadline=None)
@given(index=st.integers(0, 10**5), values=st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=4),
       a=st.tuples(_NODE_IDS, st.integers(0, 99)), b=st.tuples(_NODE_IDS, st.integers(0, 99)))
def test_two_save_nodes_or_images_of_one_cell_never_share_a_name(index, values, a, b) -> None:
    if a != b:
        assert paths.cell_filename(index, values, a[1], node_id=a[0]) != paths.cell_filename(index, values, b[1], node_id=b[0])
