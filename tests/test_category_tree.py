"""Category tree: named paths, subsumption over anonymous attributes, hierarchical k-means."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import sparse

from genrec_bench.config import DataConfig
from genrec_bench.data.loaders import ItemMeta
from genrec_bench.data.split import SplitData
from genrec_bench.errors import GenrecError
from genrec_bench.items.category_tree import (
    NONE_NAME,
    CategoryTree,
    TreeConfig,
    ancestor_chains,
    brand_candidates,
    build_category_tree,
    subsumption_parents,
)


def make_data(n_items: int, meta: ItemMeta | None = None) -> SplitData:
    """A catalogue of items '1'..'n' (one user who saw everything); only item metadata matters here."""
    item_ids = np.array([str(i + 1) for i in range(n_items)])
    return SplitData(name="toy", user_ids=np.array(["u"]), item_ids=item_ids,
                     items=np.arange(n_items, dtype=np.int64), offsets=np.array([0, n_items]),
                     config=DataConfig(), fingerprint="toy", meta=meta or ItemMeta())


def path_names(tree: CategoryTree) -> list[tuple[str, ...]]:
    return [tuple(tree.names[d][int(tree.paths[i, d])] for d in range(tree.depth))
            for i in range(tree.paths.shape[0])]


def check_structure(tree: CategoryTree) -> None:
    """Ids in range, one parent per node, and every item's path walks parent -> child."""
    assert tree.paths.dtype == torch.int64 and tree.paths.shape[1] == len(tree.sizes) == len(tree.names)
    assert len(tree.parents) == max(tree.depth - 1, 0)
    for d in range(tree.depth):
        assert len(tree.names[d]) == tree.sizes[d]
        assert int(tree.paths[:, d].min()) >= 0 and int(tree.paths[:, d].max()) < tree.sizes[d]
        assert set(tree.paths[:, d].tolist()) == set(range(tree.sizes[d]))  # no orphan node
    for d in range(1, tree.depth):
        parent = tree.parents[d - 1]
        assert parent.shape == (tree.sizes[d],)
        assert torch.equal(parent[tree.paths[:, d]], tree.paths[:, d - 1])
        # a name is unique among the children of one parent; <none> at most once per parent
        pairs = list(zip(parent.tolist(), tree.names[d], strict=True))
        assert len(pairs) == len(set(pairs))


# --- named ---------------------------------------------------------------------------------------

NAMED = {  # unordered bags: Food (4 items) > Pizza (2) > Italian (1)
    "1": ["Pizza", "Food", "Italian"],
    "2": ["Food", "Pizza"],
    "3": ["Food", "Bars"],
    "4": ["Food"],
    "5": ["Bars", "Nightlife", "Nightlife"],  # Bars (2 items) above Nightlife (1)
    "6": [],
}


def test_named_orders_by_frequency_and_pads_with_none() -> None:
    tree = build_category_tree(make_data(6, ItemMeta(categories=NAMED)), TreeConfig(depth=3))
    check_structure(tree)
    assert tree.source == "named"
    assert path_names(tree) == [
        ("Food", "Pizza", "Italian"),
        ("Food", "Pizza", NONE_NAME),
        ("Food", "Bars", NONE_NAME),
        ("Food", NONE_NAME, NONE_NAME),
        ("Bars", "Nightlife", NONE_NAME),
        (NONE_NAME, NONE_NAME, NONE_NAME),
    ]
    # the <none> pads of items 2 (under Pizza) and 3 (under Bars) are different nodes
    assert tree.paths[1, 2] != tree.paths[2, 2]
    assert tree.real_depths().tolist() == [3, 2, 2, 1, 2, 0]


def test_named_depth_one_truncates_to_the_coarsest_name() -> None:
    tree = build_category_tree(make_data(6, ItemMeta(categories=NAMED)), TreeConfig(depth=1))
    check_structure(tree)
    assert [p[0] for p in path_names(tree)] == ["Food", "Food", "Food", "Food", "Bars", NONE_NAME]
    assert tree.parents == ()


def test_named_ordered_path_is_kept() -> None:
    # a real path: every item under a child also lists the parent, so frequency keeps the order
    cats = {"1": ["Beauty", "Skin", "Face"], "2": ["Beauty", "Skin"], "3": ["Beauty", "Hair"],
            "4": ["Beauty", "Hair", "Face"]}
    tree = build_category_tree(make_data(4, ItemMeta(categories=cats)), TreeConfig(depth=3))
    check_structure(tree)
    names = path_names(tree)
    assert names[0] == ("Beauty", "Skin", "Face") and names[3] == ("Beauty", "Hair", "Face")
    assert tree.paths[0, 2] != tree.paths[3, 2]  # 'Face' under two parents is two nodes
    assert tree.sizes == (1, 2, 4)


# --- subsumption ---------------------------------------------------------------------------------

def s3rec_table() -> dict[str, list[int]]:
    """S3-Rec layout: [brand] + category paths without their root, coarse -> fine.

    0 is on every list (a catalogue-wide category, like Sports' top one); brands 100-102;
    hierarchy 1 > {2 > {4, 9}, 3 > 8} and 5 > 6 > 8, i.e. 8 is a name shared by two parents.
    """
    rows: list[list[int]] = (
        [[100, 0, 1, 2, 4]] * 6 + [[100, 0, 1, 2]] * 3 + [[101, 0, 1, 3, 8]] * 4 + [[102, 0, 5, 6, 8]] * 3
        + [[102, 0, 5, 6]] * 6 + [[0, 5]] * 4 + [[0, 1, 2, 9]] * 2
        + [[9, 0, 1, 2, 9]]  # a brand whose id equals a category's: skipped before the path starts
        + [[100, 0, 1, 2, 0, 5, 6]]  # two paths: the first is kept
        + [[101, 0, 1, 3]] * 4  # 3 holds more items than its child 8, as parents do
        + [[]]
    )
    return {str(i + 1): row for i, row in enumerate(rows)}


def tag_table() -> dict[str, list[int]]:
    """No brands, children listed BEFORE parents: hierarchy 1 > {2 > 4, 3}; 5 > 6.

    7 has 10 items, 9 inside 5 and 6 and one (item 23) not: a child only at tolerance >= 0.1.
    """
    rows: list[list[int]] = ([[4, 2, 1]] * 6 + [[2, 1]] * 3 + [[3, 1]] * 4 + [[7, 6, 5]] * 9 + [[7, 1]]
                             + [[5]] * 4 + [[6, 5]] + [[]])
    return {str(i + 1): row for i, row in enumerate(rows)}


def test_brand_candidates() -> None:
    assert brand_candidates(list(s3rec_table().values())).tolist() == [100, 101, 102]
    assert len(brand_candidates([[1, 2], [2, 1], [1, 3], [3, 2]])) == 0  # nothing only-first
    # leaves listed first look like brands here; the tree builder rejects them (next tests)
    assert brand_candidates(list(tag_table().values())).tolist() == [3, 4, 7]


def test_s3rec_table_gives_listed_paths_without_brands() -> None:
    data = make_data(35, ItemMeta(attributes=s3rec_table()))
    tree = build_category_tree(data, TreeConfig(depth=3))
    check_structure(tree)
    assert tree.source == "subsumption"
    names = path_names(tree)
    a = {i: f"attr:{i}" for i in range(10)}
    assert names[0] == (a[1], a[2], a[4]) and names[6] == (a[1], a[2], NONE_NAME)
    assert names[9] == (a[1], a[3], a[8]) and names[13] == (a[5], a[6], a[8])
    assert names[16] == (a[5], a[6], NONE_NAME) and names[22] == (a[5], NONE_NAME, NONE_NAME)
    assert names[26] == names[28] == (a[1], a[2], a[9])
    assert names[29] == (a[1], a[2], NONE_NAME) and names[30] == (a[1], a[3], NONE_NAME)
    assert names[34] == (NONE_NAME, NONE_NAME, NONE_NAME)
    assert set(tree.names[0]) == {a[1], a[5], NONE_NAME}  # 0 covers the catalogue: not a level
    assert not any(n.startswith("attr:10") for level in tree.names for n in level)  # brands excluded
    assert tree.names[2].count(a[8]) == 2  # the shared name is one node under each parent
    assert tree.paths[9, 2] != tree.paths[13, 2]


def test_leaf_first_table_uses_subsumption_chains() -> None:
    data = make_data(29, ItemMeta(attributes=tag_table()))
    tree = build_category_tree(data, TreeConfig(source="subsumption", depth=3, tolerance=0.05))
    check_structure(tree)
    names = path_names(tree)
    a = {i: f"attr:{i}" for i in range(8)}
    assert names[0] == (a[1], a[2], a[4])  # the leaves 3, 4, 7 were not taken for brands
    assert names[6] == (a[1], a[2], NONE_NAME) and names[9] == (a[1], a[3], NONE_NAME)
    assert names[13] == (a[5], a[6], NONE_NAME)  # 7 is a root at 5 % ...
    assert names[22] == (a[7], NONE_NAME, NONE_NAME)  # ... and item 23 lists it first
    assert names[23] == (a[5], NONE_NAME, NONE_NAME) and names[28] == (NONE_NAME,) * 3
    assert set(tree.names[0]) == {a[1], a[5], a[7], NONE_NAME}


def test_tolerance_admits_a_noisy_child() -> None:
    data = make_data(29, ItemMeta(attributes=tag_table()))
    tree = build_category_tree(data, TreeConfig(source="subsumption", depth=3, tolerance=0.1))
    check_structure(tree)
    names = path_names(tree)
    assert names[13] == ("attr:5", "attr:6", "attr:7")
    # item 23 has 7 but neither 6 nor 5: a path holds only the item's own attributes
    assert names[22] == ("attr:1", NONE_NAME, NONE_NAME)
    assert set(tree.names[0]) == {"attr:1", "attr:5", NONE_NAME}


def test_subsumption_parents_follow_tolerance_and_specificity() -> None:
    lists = list(tag_table().values())
    rows = np.repeat(np.arange(len(lists)), [len(x) for x in lists])
    cols = np.array([a for x in lists for a in x])
    inc = sparse.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(len(lists), 8))
    strict = subsumption_parents(inc, 0.05)
    assert strict[[1, 2, 3, 4, 5, 6, 7]].tolist() == [-1, 1, 1, 2, -1, 5, -1]
    loose = subsumption_parents(inc, 0.1)
    assert loose[7] == 6  # 5 and 6 both hold 9 of 7's 10 items; 6 is the more specific
    assert ancestor_chains(loose)[7].tolist()[:3] == [5, 6, 7]


def test_subsumption_depth_one() -> None:
    tree = build_category_tree(make_data(35, ItemMeta(attributes=s3rec_table())), TreeConfig(depth=1))
    check_structure(tree)
    assert [p[0] for p in path_names(tree)][:14] == ["attr:1"] * 13 + ["attr:5"]


# --- k-means -------------------------------------------------------------------------------------

def blobs(seed: int = 0) -> np.ndarray:
    """4 far-apart groups of 30 items, each made of 2 near sub-groups of 15."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0], [100, 0], [0, 100], [100, 100]], dtype=float)
    offsets = np.array([[-10, 0], [10, 0]], dtype=float)
    pts = [c + o + rng.normal(scale=0.5, size=(15, 2)) for c in centres for o in offsets]
    return np.concatenate(pts)


def test_kmeans_tree_shapes_parents_and_determinism() -> None:
    data, vectors = make_data(120), blobs()
    cfg = TreeConfig(depth=2, branching=4, seed=3)
    tree = build_category_tree(data, cfg, vectors)
    check_structure(tree)
    assert tree.source == "kmeans" and tree.paths.shape == (120, 2)
    assert tree.sizes[0] == 4 and tree.sizes[1] <= 16
    # top level recovers the 4 groups exactly
    groups = tree.paths[:, 0].numpy()
    assert all(len(set(groups[i * 30:(i + 1) * 30])) == 1 for i in range(4))
    assert len(set(groups)) == 4
    assert all(name.startswith("k") for name in tree.names[0])
    assert all(name.startswith(tree.names[0][int(p)] + ".")
               for name, p in zip(tree.names[1], tree.parents[0], strict=True))
    again = build_category_tree(data, cfg, vectors)
    assert torch.equal(tree.paths, again.paths) and tree.names == again.names


def test_kmeans_depth_three_small_clusters() -> None:
    tree = build_category_tree(make_data(120), TreeConfig(source="kmeans", depth=3, branching=8), blobs())
    check_structure(tree)
    assert tree.paths.shape == (120, 3) and len(tree.parents) == 2
    leaf_items = np.bincount(tree.paths[:, 2].numpy())
    assert leaf_items.min() >= 1


def test_kmeans_with_duplicate_vectors_keeps_only_real_clusters() -> None:
    vectors = np.repeat(np.array([[0.0, 0.0], [5.0, 5.0]]), [7, 3], axis=0)  # 2 distinct points
    tree = build_category_tree(make_data(10), TreeConfig(source="kmeans", depth=2, branching=4), vectors)
    check_structure(tree)
    assert tree.sizes == (2, 2)  # no empty cluster becomes a node
    assert sorted(np.bincount(tree.paths[:, 1].numpy()).tolist()) == [3, 7]


def test_auto_falls_back_to_kmeans_and_needs_vectors() -> None:
    tree = build_category_tree(make_data(120), TreeConfig(branching=4), blobs())
    assert tree.source == "kmeans"
    with pytest.raises(GenrecError, match="item vectors"):
        build_category_tree(make_data(120), TreeConfig())
    with pytest.raises(GenrecError, match="rows"):
        build_category_tree(make_data(10), TreeConfig(source="kmeans"), blobs())


# --- none, stats, config -------------------------------------------------------------------------

def test_source_none_gives_empty_paths() -> None:
    tree = build_category_tree(make_data(6, ItemMeta(categories=NAMED)), TreeConfig(source="none"))
    assert tree.paths.shape == (6, 0) and tree.sizes == () and tree.parents == () and tree.names == ()
    assert tree.stats()["depth"] == 0
    assert "none" in tree.format_stats()


def test_stats_hand_checked() -> None:
    tree = build_category_tree(make_data(6, ItemMeta(categories=NAMED)), TreeConfig(depth=2))
    # level 0: Food, Bars, <none>; level 1: Food>{Pizza, Bars, <none>}, Bars>Nightlife, <none>><none>
    assert tree.sizes == (3, 5)
    s = tree.stats()
    assert s["depth"] == 2 and s["nodes_per_level"] == [3, 5]
    # branching over the virtual root (3) and the level-0 nodes (3, 1, 1)
    assert s["mean_branching"] == pytest.approx(2.0) and s["max_branching"] == 3
    # leaves: Pizza 2 items, Bars 1, <none> under Food 1, Nightlife 1, <none><none> 1
    assert s["mean_items_per_leaf"] == pytest.approx(6 / 5) and s["max_items_per_leaf"] == 2
    assert s["real_depth_counts"] == {0: 1, 1: 1, 2: 4}
    assert "3/5" in tree.format_stats()


@pytest.mark.parametrize("kwargs, key", [
    ({"source": "tree"}, "source"), ({"depth": 0}, "depth"), ({"branching": 1}, "branching"),
    ({"tolerance": 1.0}, "tolerance"),
])
def test_config_validation(kwargs: dict, key: str) -> None:
    with pytest.raises(GenrecError, match=key):
        TreeConfig(**kwargs)


def test_explicit_source_without_metadata_is_an_error() -> None:
    with pytest.raises(GenrecError, match="no category names"):
        build_category_tree(make_data(3), TreeConfig(source="named"))
    with pytest.raises(GenrecError, match="no attributes"):
        build_category_tree(make_data(3), TreeConfig(source="subsumption"))
