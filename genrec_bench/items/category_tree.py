"""Hierarchical category tree: a coarse -> fine path of category nodes for every item.

MindRec writes a target item as its category path followed by its identifier tokens, so the
decoder commits to a coarse region of the catalogue before naming an item. The paper takes the
path from Amazon's named category lists; our datasets carry three kinds of side information,
so the tree has three sources:

* ``named`` - category names per item (Yelp ``description``, MovieLens genres, or an ordered
  path). Names are ordered coarse -> fine by global frequency (more items = coarser, ties keep
  the listed order): for an unordered bag of names this is the only sensible order, and for a
  true path it reproduces the listed order, since every item under a child also lists the parent.
* ``subsumption`` - anonymous attribute ids (S3-Rec ``item2attributes``, Amazon 2014): the
  hierarchy is recovered from the item sets, see `subsumption_parents` and `split_brands`.
* ``kmeans`` - no metadata (Amazon 2018): hierarchical k-means over item vectors.

Whatever the source, node ids are level-local and every node has exactly one parent (the same
name under two parents is two nodes), so "a child belongs to its parent" is a lookup in
`CategoryTree.parents`, which is what a constrained decoder needs. Items whose path is shorter
than `depth` continue with a ``<none>`` child of their last real node, one per parent.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class TreeConfig:
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
    by (parent, label), so the children of a parent are contiguous.
    """
    n, depth = labels.shape
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

def split_brands(lists: list[list[int]]) -> tuple[list[list[int]], np.ndarray]:
    """Separate brand ids from category ids in S3-Rec attribute lists.

    Rule: when the table has the brand-first layout, an attribute that appears only ever as the
    FIRST element of a list is a brand; all other attributes are categories.

    Why (S3-Rec builds each list as [brand if known] + every category path without its root, and
    we checked the real files rather than trusting that): in Beauty_item2attributes.json 435 of
    637 ids occur only in first position and start 7,492 of 12,101 lists; the other 202 ids are
    category path elements. The 8 ids that are first in some list and later in others are 6 root
    categories (items without a brand) and 2 brands whose name equals a category name (item 97 is
    [439, 4, 21, 439]) - a string-mapped id we cannot split, but such an id is a category and its
    chain is checked against the item's own attributes in `item_leaves`. No list ends with a
    first-only id (so "the last id is the brand" is false), and no category's items lie inside a
    first-only id's items (a brand never subsumes a category), while 249 of the 435 brands lie
    within 5 % inside some category - left in, they would become spurious leaves. Sports (1,154
    brand ids, 99 % of items) and Toys (658, 100 %) show the same layout. Tables without it (LastFM
    tags: no first-only id; Yelp: 37 of 20,033 lists) are used whole.
    """
    firsts = np.array([x[0] for x in lists if x], dtype=np.int64)
    later = np.array([a for x in lists for a in x[1:]], dtype=np.int64)
    only_first = np.setdiff1d(firsts, later)
    if len(lists) == 0 or np.isin(firsts, only_first).sum() < BRAND_FIRST_MIN_SHARE * len(lists):
        return lists, np.zeros(0, dtype=np.int64)
    brands = set(only_first.tolist())
    return [[a for a in x if a not in brands] for x in lists], only_first


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
    best = np.where(cand, rank[None, :], -1).max(axis=1)
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


def subsumption_labels(data: SplitData, depth: int, tolerance: float) -> tuple[np.ndarray, list[str]]:
    lists = [data.meta.attributes.get(str(i), []) for i in data.item_ids]
    lists, _brands = split_brands(lists)
    lengths = np.array([len(x) for x in lists], dtype=np.int64)
    raw = np.array([a for x in lists for a in x], dtype=np.int64)
    ids, attr = np.unique(raw, return_inverse=True)  # compact attribute columns
    attr = attr.reshape(-1)
    item = np.repeat(np.arange(len(lists)), lengths)
    incidence = sparse.csr_matrix((np.ones(len(attr)), (item, attr)), shape=(len(lists), len(ids)))
    chains = ancestor_chains(subsumption_parents(incidence, tolerance))
    leaves = item_leaves(item, attr, chains, len(lists))
    labels = np.where(leaves[:, None] >= 0, chains[np.clip(leaves, 0, None)], -1)[:, :depth]
    if labels.shape[1] < depth:
        labels = np.pad(labels, ((0, 0), (0, depth - labels.shape[1])), constant_values=-1)
    return labels, [f"attr:{a}" for a in ids]


# --- no metadata: hierarchical k-means -----------------------------------------------------------

def kmeans_labels(vectors: np.ndarray, depth: int, branching: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """Split every cluster into `branching` sub-clusters, level by level (fewer when it is small).

    Labels are global cluster ids; a cluster's name is its path of local indices ('k3.11').
    """
    from sklearn.cluster import KMeans

    n = vectors.shape[0]
    labels = np.full((n, depth), -1, dtype=np.int64)
    vocab: list[str] = []
    groups = [(np.arange(n), "k")]
    for d in range(depth):
        next_groups = []
        for members, prefix in groups:  # one k-means per parent cluster, not per item
            k = min(branching, len(members))
            if k <= 1:
                local = np.zeros(len(members), dtype=np.int64)
                k = 1
            else:
                km = KMeans(n_clusters=k, n_init=3, random_state=seed + d).fit(vectors[members])
                local = km.labels_.astype(np.int64)
            sep = "" if d == 0 else "."
            for c in np.unique(local):
                labels[members[local == c], d] = len(vocab)
                vocab.append(f"{prefix}{sep}{c}")
                next_groups.append((members[local == c], vocab[-1]))
        groups = next_groups
    return labels, vocab
