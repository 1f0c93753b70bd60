"""Hierarchical category tree: a coarse -> fine path of category nodes for every item.

MindRec writes a target item as its category path followed by its identifier tokens, so the
decoder commits to a coarse region of the catalogue before naming an item. The paper takes the
path from Amazon's named category lists; our datasets carry three kinds of side information,
so the tree has three sources:

* ``named`` - category names per item (Yelp ``description``, MovieLens genres, or an ordered
  path). Names are ordered coarse -> fine by global frequency (more items = coarser, ties keep
  the listed order): for an unordered bag of names this is the only sensible order, and for a
  true path it reproduces the listed order, since every item under a child also lists the parent
  (unless one name is used under several parents and outnumbers one of them).
* ``subsumption`` - anonymous attribute ids (S3-Rec ``item2attributes``, Amazon 2014): brands
  are set apart (`brand_candidates`), the hierarchy is recovered from the item sets
  (`subsumption_parents`), and each item's path is its listed category path when the table lists
  parents first (`first_path_labels`), else its subsumption chain (`item_leaves`).
* ``kmeans`` - no metadata (Amazon 2018): hierarchical k-means over item vectors.

Whatever the source, node ids are level-local and every node has exactly one parent (the same
name under two parents is two nodes), so "a child belongs to its parent" is a lookup in
`CategoryTree.parents`, which is what a constrained decoder needs. Items whose path is shorter
than `depth` continue with a ``<none>`` child of their last real node, one per parent.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from scipy import sparse

from genrec_bench.data.split import SplitData
from genrec_bench.errors import GenrecError

NONE_NAME = "<none>"
SOURCES = ("auto", "named", "subsumption", "kmeans", "none")
# Brand-first layout (S3-Rec): detected when at least this share of items starts with an attribute
# that never appears later in any list. Beauty 62 %, Sports 99 %, Toys 100 %; Yelp 0.2 %, LastFM 0 %.
BRAND_FIRST_MIN_SHARE = 0.25
# Lists are read as ordered paths when at least this share of (parent, child) pairs on an item lists
# the parent first: S3-Rec Beauty 99.99 %, Toys 99.5 %, Sports 98.5 %; a bag in random order ~50 %.
PATH_ORDER_MIN_SHARE = 0.95


@dataclass(frozen=True)
class TreeConfig:
    """How the tree is built; `depth` fixes the number of category tokens in every target path."""

    source: str = "auto"  # auto | named | subsumption | kmeans | none
    depth: int = 2  # category levels in every path (shallow paths padded with <none>)
    branching: int = 16  # children per node for hierarchical k-means
    tolerance: float = 0.05  # subsumption: child if at most this fraction of its items lie outside the parent
    seed: int = 0

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise GenrecError(f"category tree source must be one of {', '.join(SOURCES)}, "
                              f"got {self.source!r}")
        if not isinstance(self.depth, int) or self.depth < 1:
            raise GenrecError(f"category tree depth must be an integer >= 1, got {self.depth!r}")
        if not isinstance(self.branching, int) or self.branching < 2:
            raise GenrecError(f"category tree branching must be an integer >= 2, got {self.branching!r}")
        if not 0.0 <= self.tolerance < 1.0:
            raise GenrecError(f"category tree tolerance must be a number in [0, 1), got {self.tolerance!r}")


@dataclass(frozen=True)
class CategoryTree:
    """Every item's category path as level-local node ids, plus the parent of every node."""

    paths: torch.Tensor  # [N, D] int64; paths[:, d] in [0, sizes[d]) - level-local node ids
    sizes: tuple[int, ...]  # number of nodes per level
    parents: tuple[torch.Tensor, ...]  # parents[d-1][j] = level d-1 id of node j at level d, d = 1..D-1
    names: tuple[tuple[str, ...], ...]  # readable name of every node per level
    source: str  # named | subsumption | kmeans | none

    @property
    def depth(self) -> int:
        return len(self.sizes)

    def real_depths(self) -> np.ndarray:
        """[N] number of non-<none> levels on each item's path (padding is always a suffix)."""
        if self.depth == 0:
            return np.zeros(self.paths.shape[0], dtype=np.int64)
        real = np.stack([np.array([n != NONE_NAME for n in self.names[d]])[self.paths[:, d].numpy()]
                         for d in range(self.depth)], axis=1)
        return real.sum(axis=1)

    def stats(self) -> dict[str, object]:
        """Shape of the tree: what a decoder's branching factor and a leaf's crowding look like."""
        n_items = int(self.paths.shape[0])
        out: dict[str, object] = {"source": self.source, "depth": self.depth, "items": n_items,
                                  "nodes_per_level": list(self.sizes)}
        if self.depth == 0:
            out.update(mean_branching=0.0, max_branching=0, mean_items_per_leaf=float(n_items),
                       max_items_per_leaf=n_items, real_depth_counts={0: n_items})
            return out
        # children of every internal node, the roots counting as children of one virtual root
        children = [np.array([self.sizes[0]])]
        children += [np.bincount(p.numpy(), minlength=self.sizes[d]) for d, p in enumerate(self.parents)]
        branching = np.concatenate(children)
        leaf_items = np.bincount(self.paths[:, -1].numpy(), minlength=self.sizes[-1])
        depth_counts = np.bincount(self.real_depths(), minlength=self.depth + 1)
        out.update(mean_branching=float(branching.mean()), max_branching=int(branching.max()),
                   mean_items_per_leaf=float(leaf_items.mean()), max_items_per_leaf=int(leaf_items.max()),
                   real_depth_counts={d: int(c) for d, c in enumerate(depth_counts)})
        return out

    def format_stats(self) -> str:
        s = self.stats()
        if self.depth == 0:
            return f"category tree: none (depth 0, {s['items']} items)"
        depths = ", ".join(f"{d}:{c}" for d, c in s["real_depth_counts"].items())
        return (f"category tree ({self.source}): depth {self.depth}, nodes per level "
                f"{'/'.join(map(str, self.sizes))}, branching mean {s['mean_branching']:.1f} "
                f"max {s['max_branching']}, items per leaf mean {s['mean_items_per_leaf']:.1f} "
                f"max {s['max_items_per_leaf']}\n"
                f"  items by real path depth: {depths}")


def build_category_tree(data: SplitData, cfg: TreeConfig,
                        item_vectors: np.ndarray | None = None) -> CategoryTree:
    """The category tree of `data`'s catalogue from the source `cfg.source` selects."""
    source = resolve_source(data, cfg, item_vectors)
    n = data.n_items
    if source == "none":
        return CategoryTree(paths=torch.zeros((n, 0), dtype=torch.int64), sizes=(), parents=(), names=(),
                            source="none")
    if source == "named":
        labels, vocab = named_labels(data, cfg.depth)
    elif source == "subsumption":
        labels, vocab = subsumption_labels(data, cfg.depth, cfg.tolerance)
    else:
        if item_vectors is None:
            raise GenrecError("category tree source 'kmeans' needs item vectors; none were given")
        if item_vectors.shape[0] != n:
            raise GenrecError(f"item vectors have {item_vectors.shape[0]} rows but the catalogue has "
                              f"{n} items")
        labels, vocab = kmeans_labels(np.asarray(item_vectors, dtype=np.float64), cfg.depth, cfg.branching,
                                      cfg.seed)
    return assemble(labels, vocab, source)


def resolve_source(data: SplitData, cfg: TreeConfig, item_vectors: np.ndarray | None) -> str:
    """`auto`: named categories, else anonymous attributes, else k-means over item vectors."""
    has_named = any(data.meta.categories.get(str(i)) for i in data.item_ids)
    has_attrs = any(data.meta.attributes.get(str(i)) for i in data.item_ids)
    if cfg.source == "auto":
        if has_named:
            return "named"
        if has_attrs:
            return "subsumption"
        if item_vectors is None:
            raise GenrecError(f"dataset '{data.name}' has no category names or attributes, so the category "
                              "tree needs item vectors for k-means; none were given (or set the tree source "
                              "to 'none')")
        return "kmeans"
    if cfg.source == "named" and not has_named:
        raise GenrecError(f"category tree source 'named' but dataset '{data.name}' has no category names")
    if cfg.source == "subsumption" and not has_attrs:
        raise GenrecError(f"category tree source 'subsumption' but dataset '{data.name}' has no attributes")
    return cfg.source


# --- assembling level-local nodes ----------------------------------------------------------------

def assemble(labels: np.ndarray, vocab: list[str], source: str) -> CategoryTree:
    """Turn per-level labels into a tree with one parent per node.

    `labels` [N, D] holds indices into `vocab` (-1 = no category at this level; -1 must be a
    suffix). A node is the pair (parent node, label), so equal labels under different parents are
    different nodes and a <none> pad is a child of the item's last real node. Node ids are sorted
    by (parent, name), so the children of a parent are contiguous and the numbering depends on the
    names alone: a tree read back from its written category paths is the same tree.
    """
    n, depth = labels.shape
    by_name = sorted(range(len(vocab)), key=vocab.__getitem__)
    rank = np.empty(len(vocab), dtype=np.int64)
    rank[by_name] = np.arange(len(vocab))
    labels = np.where(labels < 0, -1, rank[np.maximum(labels, 0)]) if len(vocab) else labels
    vocab = [vocab[i] for i in by_name]
    vocab_arr = np.array([*vocab, NONE_NAME], dtype=object)
    pad_code = len(vocab)
    codes = np.where(labels < 0, pad_code, labels)
    parent_of_item = np.zeros(n, dtype=np.int64)  # a single virtual root above level 0
    paths, sizes, parents, names = [], [], [], []
    for d in range(depth):
        keys = np.stack([parent_of_item, codes[:, d]], axis=1)
        nodes, node_of_item = np.unique(keys, axis=0, return_inverse=True)
        node_of_item = node_of_item.reshape(-1)
        paths.append(node_of_item)
        sizes.append(len(nodes))
        if d > 0:
            parents.append(torch.from_numpy(nodes[:, 0].astype(np.int64)))
        names.append(tuple(str(x) for x in vocab_arr[nodes[:, 1]]))
        parent_of_item = node_of_item
    return CategoryTree(paths=torch.from_numpy(np.stack(paths, axis=1).astype(np.int64)), sizes=tuple(sizes),
                        parents=tuple(parents), names=tuple(names), source=source)


# --- named categories ----------------------------------------------------------------------------

def named_labels(data: SplitData, depth: int) -> tuple[np.ndarray, list[str]]:
    """Each item's distinct names ordered by global item frequency (desc), listed order on ties."""
    lists = [list(dict.fromkeys(data.meta.categories.get(str(i), []))) for i in data.item_ids]
    vocab = sorted({name for names in lists for name in names})
    index = {name: j for j, name in enumerate(vocab)}
    lengths = np.array([len(x) for x in lists], dtype=np.int64)
    flat = np.array([index[name] for names in lists for name in names], dtype=np.int64)
    item = np.repeat(np.arange(len(lists)), lengths)
    position = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    freq = np.bincount(flat, minlength=len(vocab))
    order = np.lexsort((position, -freq[flat], item))  # by item, then frequency desc, then listed order
    return _rank_into_labels(item[order], flat[order], len(lists), depth), vocab


def _rank_into_labels(item: np.ndarray, label: np.ndarray, n: int, depth: int) -> np.ndarray:
    """[N, depth] labels from (item, label) pairs already sorted by item then coarse -> fine."""
    counts = np.bincount(item, minlength=n)
    rank = np.arange(len(item)) - np.repeat(np.cumsum(counts) - counts, counts)
    keep = rank < depth
    out = np.full((n, depth), -1, dtype=np.int64)
    out[item[keep], rank[keep]] = label[keep]
    return out


# --- anonymous attributes: subsumption -----------------------------------------------------------

def brand_candidates(lists: list[list[int]]) -> np.ndarray:
    """Ids that only ever come FIRST in a list, when they start at least a quarter of the lists.

    They are brands when the remaining lists read as category paths (`subsumption_labels`
    checks that). Why (S3-Rec builds each list as [brand if known] + every category path without
    its root; we checked the real files rather than trusting that): in Beauty_item2attributes.json
    435 of 637 ids occur only in first position and start 7,492 of 12,101 lists; without them the
    lists are category paths (parents listed first in 21,018 of 21,020 pairs). The 8 ids that come
    first in some lists and later in others are 6 top categories (items without a brand) and 2
    brands whose name equals a category name (item 97 is [439, 4, 21, 439]): S3-Rec maps names to
    ids, so these cannot be split and are read as categories. No list ends with a first-only id (so
    "the last id is the brand" is false) and no category's items lie inside a first-only id's items
    (a brand never subsumes a category), while 249 of the 435 lie within 5 % inside one category
    and would become spurious leaves if kept. Sports (1,154 ids, 99 % of lists) and Toys (658,
    100 %) have the same layout; LastFM tags (no first-only id) and Yelp (37 of 20,033 lists) do not.
    Requiring path order of the rest keeps a table that lists leaves first from losing its leaves.
    """
    firsts = np.array([x[0] for x in lists if x], dtype=np.int64)
    later = np.array([a for x in lists for a in x[1:]], dtype=np.int64)
    only_first = np.setdiff1d(firsts, later)
    if np.isin(firsts, only_first).sum() < BRAND_FIRST_MIN_SHARE * max(len(lists), 1):
        return np.zeros(0, dtype=np.int64)
    return only_first


@dataclass(frozen=True)
class AttributeTable:
    """Flat (item, attribute) pairs in listed order and the hierarchy subsumption finds in them."""

    item: np.ndarray  # [P] item index of each pair
    attr: np.ndarray  # [P] compact attribute column
    ids: np.ndarray  # [A] raw id of each column
    parent: np.ndarray  # [A] parent column, -1 = root
    path_order: float  # share of (parent, child) pairs listed parent first

    @classmethod
    def build(cls, lists: list[list[int]], tolerance: float) -> AttributeTable:
        lengths = np.array([len(x) for x in lists], dtype=np.int64)
        raw = np.array([a for x in lists for a in x], dtype=np.int64)
        item = np.repeat(np.arange(len(lists)), lengths)
        raw, item = drop_catalogue_attributes(raw, item, tolerance)
        ids, attr = np.unique(raw, return_inverse=True)
        attr = attr.reshape(-1)
        incidence = sparse.csr_matrix((np.ones(len(attr)), (item, attr)), shape=(len(lists), len(ids)))
        parent = subsumption_parents(incidence, tolerance)
        return cls(item=item, attr=attr, ids=ids, parent=parent,
                   path_order=listed_in_path_order(item, attr, parent))


def drop_catalogue_attributes(attr: np.ndarray, item: np.ndarray, tolerance: float
                              ) -> tuple[np.ndarray, np.ndarray]:
    """Remove attributes that (within `tolerance`) every attributed item carries.

    Such an attribute is the catalogue itself, like the 'Beauty' root S3-Rec already strips: a
    level with one node would cost the decoder a step and tell it nothing. Sports and Toys each
    have one (id 2, on every item with a category), Beauty none.
    """
    pairs = np.unique(np.stack([item, attr], axis=1), axis=0)  # distinct (item, attr)
    ids, n_items_of = np.unique(pairs[:, 1], return_counts=True)
    catalogue = ids[n_items_of >= (1.0 - tolerance) * len(np.unique(item))]
    keep = ~np.isin(attr, catalogue)
    return attr[keep], item[keep]


def subsumption_parents(incidence: sparse.csr_matrix, tolerance: float) -> np.ndarray:
    """parent[a] for every attribute column of the [N, A] item x attribute incidence (-1 = root).

    b is a candidate parent of a when b comes before a in the order (more items first, lower id on
    ties, so identical item sets form a chain instead of a cycle) and at most `tolerance` of a's
    items lie outside b's. The most specific candidate (the latest in that order) is the parent.
    Parents always precede children in the order, so the result is a forest.
    """
    inc = (incidence > 0).astype(np.float64).tocsc()
    co = (inc.T @ inc).toarray()  # [A, A] items shared by a and b
    count = np.diag(co).copy()
    n_attr = len(count)
    order = np.lexsort((np.arange(n_attr), -count))
    rank = np.empty(n_attr, dtype=np.int64)
    rank[order] = np.arange(n_attr)
    outside = count[:, None] - co  # [a, b] items of a not in b
    cand = (rank[None, :] < rank[:, None]) & (outside <= tolerance * count[:, None]) & (count[:, None] > 0)
    best = np.where(cand, rank[None, :], -1).max(axis=1, initial=-1)
    return np.where(best >= 0, order[np.clip(best, 0, None)], -1)


def ancestor_chains(parent: np.ndarray) -> np.ndarray:
    """[A, H] chain of each attribute from its root down to itself, left-aligned, -1 padded."""
    n_attr = len(parent)
    up = [np.arange(n_attr)]  # up[k] = k-th ancestor (-1 past the root)
    while (up[-1] >= 0).any():
        prev = up[-1]
        up.append(np.where(prev >= 0, parent[np.clip(prev, 0, None)], -1))
    up_ak = np.stack(up[:-1], axis=1)  # [A, H] self, parent, grandparent, ...
    length = (up_ak >= 0).sum(axis=1)
    height = up_ak.shape[1]
    # reverse each row's valid prefix so the chain reads root -> self
    idx = length[:, None] - 1 - np.arange(height)[None, :]
    return np.where(idx >= 0, np.take_along_axis(up_ak, np.clip(idx, 0, None), axis=1), -1)


def item_leaves(item: np.ndarray, attr: np.ndarray, chains: np.ndarray, n_items: int) -> np.ndarray:
    """Each item's leaf attribute: its deepest attribute whose whole chain the item itself has.

    Requiring the whole chain keeps every node on a path an attribute the item really carries
    (an item inside the tolerance margin, or a brand that shares a category's id, cannot drag in a
    parent it lacks). Ties go to the first listed, i.e. the item's first category path. -1 = none.
    """
    n_attr = chains.shape[0]
    have = np.unique(item * n_attr + attr)
    chain_pa = chains[attr]  # [P, H]
    on = chain_pa >= 0
    member = np.isin(item[:, None] * n_attr + np.clip(chain_pa, 0, None), have) | ~on
    full = member.all(axis=1)
    depth = on.sum(axis=1)
    position = np.arange(len(item))
    score = np.where(full, depth, 0)
    order = np.lexsort((position, -score, item))  # best pair of every item first
    first = np.ones(len(order), dtype=bool)
    first[1:] = item[order][1:] != item[order][:-1]
    leaves = np.full(n_items, -1, dtype=np.int64)
    best = order[first]
    leaves[item[best]] = np.where(score[best] > 0, attr[best], -1)
    return leaves


def listed_in_path_order(item: np.ndarray, attr: np.ndarray, parent: np.ndarray) -> float:
    """Share of (parent, child) pairs on one item where the item lists the parent first.

    `item`/`attr` are the flat pairs in listed order. S3-Rec lists are their category paths
    written coarse -> fine: Beauty 21,018 of 21,020 pairs, Toys 14,572 of 14,643, Sports 44,590 of
    45,251 (its items carry more concatenated paths); a bag of tags in arbitrary order gives ~0.5.
    """
    n_attr = len(parent)
    if n_attr == 0:
        return 0.0
    key = item * n_attr + attr
    uniq, first = np.unique(key, return_index=True)  # first listed position of each (item, attr)
    child_item, child_attr = uniq // n_attr, uniq % n_attr
    par = parent[child_attr]
    parent_key = child_item * n_attr + np.clip(par, 0, None)
    at = np.clip(np.searchsorted(uniq, parent_key), 0, len(uniq) - 1)
    both = (par >= 0) & (uniq[at] == parent_key)
    if not both.any():
        return 0.0
    return float((first[at][both] < first[both]).mean())


def first_path_labels(item: np.ndarray, attr: np.ndarray, parent: np.ndarray, n_items: int,
                      depth: int) -> np.ndarray:
    """[N, depth] labels: each item's first listed category path, in listed order.

    Why the listed order and not the subsumption chain: S3-Rec maps category NAMES to ids, so a
    name used under several parents is one id ('Face' under 'Skin Care' and under 'Makeup'), which
    no single parent subsumes. In Beauty attribute 2 (2,546 items) lies 78 % inside 17 and 22 %
    inside 1, so the chain rule makes it one of 12 roots and leaves 17 off 1,647 of its 3,814
    items' paths (40 % of all paths differ); read in listed order, [17, 2, 39, 87] is the path
    17 > 2 > 39 > 87 and `assemble` makes '2 under 17' and '2 under 1' separate nodes.
    Subsumption still finds where a path starts: at a root attribute that begins some item's list
    (Beauty: the 6 top categories). Only the first path is kept (a second one: Beauty 2 of 12,101
    items, Toys 81 of 11,924, Sports 2,195 of 18,357). Ids listed before the first start (a brand
    sharing a category's id, like 439 in [439, 4, 21, 439]) are skipped; repeats keep their first place.
    """
    counts = np.bincount(item, minlength=n_items)
    starts_of_lists = np.unique(attr[np.cumsum(counts)[counts > 0] - counts[counts > 0]])
    is_start = np.isin(attr, starts_of_lists[parent[starts_of_lists] < 0])
    seg = _cumsum_per_item(is_start.astype(np.int64), item)
    has_start = np.bincount(item, weights=is_start, minlength=n_items)[item] > 0
    keep = np.where(has_start, seg == 1, seg == 0)
    item, attr = item[keep], attr[keep]
    _, first = np.unique(item * len(parent) + attr, return_index=True)
    first = np.sort(first)  # drop repeats, keep listed order
    return _rank_into_labels(item[first], attr[first], n_items, depth)


def _cumsum_per_item(values: np.ndarray, item: np.ndarray) -> np.ndarray:
    """Running sum of `values` restarted at every item (pairs grouped by item)."""
    total = np.cumsum(values)
    new_item = np.ones(len(item), dtype=bool)
    new_item[1:] = item[1:] != item[:-1]
    base = np.maximum.accumulate(np.where(new_item, total - values, 0))
    return total - base


def chain_labels(item: np.ndarray, attr: np.ndarray, parent: np.ndarray, n_items: int,
                 depth: int) -> np.ndarray:
    """[N, depth] labels: the subsumption chain of each item's leaf (see `item_leaves`)."""
    chains = ancestor_chains(parent)
    leaves = item_leaves(item, attr, chains, n_items)
    labels = np.where(leaves[:, None] >= 0, chains[np.clip(leaves, 0, None)], -1)[:, :depth]
    return np.pad(labels, ((0, 0), (0, depth - labels.shape[1])), constant_values=-1)


def subsumption_labels(data: SplitData, depth: int, tolerance: float) -> tuple[np.ndarray, list[str]]:
    """Labels from anonymous attributes: brands out, hierarchy by subsumption, one path per item.

    When the table lists parents before children (S3-Rec), a path is read in listed order, which
    keeps names shared by several parents apart; otherwise it is the subsumption chain.
    """
    lists = [data.meta.attributes.get(str(i), []) for i in data.item_ids]
    brands = brand_candidates(lists)
    table = None
    if len(brands):
        is_brand = set(brands.tolist())
        table = AttributeTable.build([[a for a in x if a not in is_brand] for x in lists], tolerance)
    if table is None or table.path_order < PATH_ORDER_MIN_SHARE:
        table = AttributeTable.build(lists, tolerance)  # no brand-first layout: every id is a category
    read = first_path_labels if table.path_order >= PATH_ORDER_MIN_SHARE else chain_labels
    labels = read(table.item, table.attr, table.parent, len(lists), depth)
    return labels, [f"attr:{a}" for a in table.ids]


# --- no metadata: hierarchical k-means -----------------------------------------------------------

def kmeans_labels(vectors: np.ndarray, depth: int, branching: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """Split every cluster into `branching` sub-clusters, level by level (fewer when it is small).

    Labels are global cluster ids; a cluster's name is its path of local indices ('k3.11').
    """
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    n = vectors.shape[0]
    labels = np.full((n, depth), -1, dtype=np.int64)
    vocab: list[str] = []
    groups = [(np.arange(n), "k")]
    for d in range(depth):
        next_groups = []
        for members, prefix in groups:  # one k-means per parent cluster, not per item
            local = np.zeros(len(members), dtype=np.int64)
            if len(members) > 1:
                with warnings.catch_warnings():  # duplicate vectors leave clusters empty; they are skipped
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    km = KMeans(n_clusters=min(branching, len(members)), n_init=3, random_state=seed + d)
                    local = km.fit(vectors[members]).labels_.astype(np.int64)
            sep = "" if d == 0 else "."
            for c in np.unique(local):
                labels[members[local == c], d] = len(vocab)
                vocab.append(f"{prefix}{sep}{c}")
                next_groups.append((members[local == c], vocab[-1]))
        groups = next_groups
    return labels, vocab
