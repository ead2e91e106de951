"""Stage 3, deduplication: near-identical images (perceptual hashes within ``max_hamming`` bits) and
near-identical captions (character-shingle Jaccard similarity ≥ ``caption_threshold``).

Records linked by either kind of pair form a group, and each group keeps one record: the one whose caption names
the most medical terms, then the smallest id. The choice depends on the records only, so with ``scope: global``
every shard reads the image-filter output of all shards, finds the same groups, and keeps its own survivors:
duplicates across shards are removed without the machines talking to each other.

Candidates come from locality-sensitive hashing (hash bands for images, MinHash bands for captions); every
candidate pair is then checked exactly, so LSH only decides which pairs are compared.
"""

from __future__ import annotations

import re
from collections import defaultdict

import numpy as np

from training.pubmedvision import hf
from training.pubmedvision.records import AtomicJsonl, count_records, write_empty
from training.pubmedvision.stage import Context, StageReport

_NOT_TEXT = re.compile(r"[\W_]+")


def normalized_caption(caption: str) -> str:
    # Case, punctuation and spacing differences do not make a caption new.
    return _NOT_TEXT.sub(" ", caption.lower()).strip()


def shingles(caption: str, size: int) -> set[str]:
    text = normalized_caption(caption)
    if len(text) <= size:
        return {text}
    return {text[i : i + size] for i in range(len(text) - size + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def minhash_batch(batch: dict, shingle_size: int, num_perm: int) -> dict:
    from datasketch import MinHash

    signatures = []
    for caption in batch["caption"]:
        m = MinHash(num_perm=num_perm)  # fixed default seed: every machine computes the same signatures
        m.update_batch([s.encode("utf-8") for s in shingles(caption, shingle_size)])
        signatures.append(m.hashvalues.tolist())
    return {"minhash": signatures}


class Groups:
    """Union-find over record indices."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def link_images(hashes: list[list[str]], max_hamming: int, groups: Groups) -> set[int]:
    """Join records that have an image each whose hashes differ in at most max_hamming bits; returns the records
    so linked.

    Split into max_hamming + 1 bands, two hashes within that distance agree exactly on at least one band
    (pigeonhole), so comparing only hashes that share a band finds every pair.
    """
    entries = [(int(h, 16), i) for i, hs in enumerate(hashes) for h in hs]
    linked: set[int] = set()
    if not entries:
        return linked
    bits = max(len(h) for hs in hashes for h in hs) * 4
    bands = max_hamming + 1
    edges = [round(k * bits / bands) for k in range(bands + 1)]
    for lo, hi in zip(edges, edges[1:], strict=False):
        mask = (1 << (hi - lo)) - 1
        buckets: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for value, i in entries:
            buckets[(value >> lo) & mask].append((value, i))
        for members in buckets.values():
            for a in range(len(members)):
                va, ia = members[a]
                for b in range(a + 1, len(members)):
                    vb, ib = members[b]
                    if ia != ib and (va ^ vb).bit_count() <= max_hamming:
                        groups.union(ia, ib)
                        linked.update((ia, ib))
    return linked


def link_captions(captions: list[str], signatures: np.ndarray, threshold: float, shingle_size: int,
                  groups: Groups) -> int:
    """Join records whose captions are near-identical; returns how many pairs were joined.

    Candidates share a band of MinHash values (banded LSH; datasketch picks the bands for the threshold,
    weighting recall over precision); each candidate pair not yet in one group is checked exactly.
    """
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=signatures.shape[1], weights=(0.2, 0.8))
    shingle_sets: dict[int, set[str]] = {}

    def shingle_set(i: int) -> set[str]:
        if i not in shingle_sets:
            shingle_sets[i] = shingles(captions[i], shingle_size)
        return shingle_sets[i]

    joined = 0
    for band in range(lsh.b):
        rows = signatures[:, band * lsh.r : (band + 1) * lsh.r]
        _, bucket_of, sizes = np.unique(rows, axis=0, return_inverse=True, return_counts=True)
        if len(sizes) == 0 or sizes.max() < 2:
            continue
        by_bucket = np.argsort(bucket_of.ravel(), kind="stable")
        for members in np.split(by_bucket, np.cumsum(sizes)[:-1]):
            for a in range(len(members)):
                for b in range(a + 1, len(members)):
                    i, j = int(members[a]), int(members[b])
                    if groups.find(i) != groups.find(j) and jaccard(shingle_set(i), shingle_set(j)) >= threshold:
                        groups.union(i, j)
                        joined += 1
    return joined


def run(ctx: Context, report: StageReport) -> None:
    settings = ctx.config.dedup
    paths = ctx.paths
    shards = list(range(paths.num_shards)) if settings.scope == "global" else [paths.shard_index]
    inputs = [paths.output("image", shard=s) for s in shards]
    hf.show_progress(ctx.progress)
    with hf.scratch(paths.dir) as cache:
        ds = hf.load_jsonl(inputs, hf.IMAGE_COLUMNS, cache)
        if len(ds) == 0:
            return write_empty(paths, "dedup")
        ds = ds.map(minhash_batch, batched=True, num_proc=hf.processes(ctx.num_proc, len(ds)),
                    fn_kwargs={"shingle_size": settings.shingle_size, "num_perm": settings.num_perm},
                    desc="dedup: caption MinHash")
        ids = ds["id"]
        terms = ds["medical_terms"]
        groups = Groups(len(ids))
        image_linked = link_images(ds["image_hashes"], settings.max_hamming, groups)
        signatures = np.asarray(ds.with_format("numpy")["minhash"]).reshape(len(ids), settings.num_perm)
        caption_links = link_captions(ds["caption"], signatures, settings.caption_threshold, settings.shingle_size,
                                      groups)
        keeper: dict[int, int] = {}
        for i in range(len(ids)):
            root = groups.find(i)
            best = keeper.get(root)
            if best is None or (-terms[i], ids[i]) < (-terms[best], ids[best]):
                keeper[root] = i

        # This shard's rows: those read from its own file (files are read in order).
        own_file = shards.index(paths.shard_index)
        start = sum(count_records(p) for p in inputs[:own_file])
        own = range(start, start + count_records(inputs[own_file]))
        report.records_in = len(own)
        with AtomicJsonl(paths.rejected("dedup")) as rejected:
            for i in own:
                keep = keeper[groups.find(i)]
                if keep != i:
                    reason = "duplicate_image" if i in image_linked else "duplicate_caption"
                    report.rejected[reason] += 1
                    rejected.write({"id": ids[i], "reason": reason, "detail": f"duplicate of {ids[keep]}"})
        with AtomicJsonl(paths.output("dedup")) as kept:
            kept.write_all(ds.select([i for i in own if keeper[groups.find(i)] == i]).remove_columns(["minhash"]))
        report.records_out = kept.count
        report.extra["linked_records"] = {"by_image": len(image_linked), "by_caption": caption_links}
        report.extra["records_compared"] = len(ids)
