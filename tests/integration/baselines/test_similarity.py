"""The similarity methods' helpers: the memo that embeds each image once across folds and draws."""

import numpy as np

from simsearch.baselines.similarity import MemoEmbedder, memo_embedder


def test_the_memo_gives_the_wrapped_embedders_vectors_and_embeds_each_image_once(small_embedder):
    calls = []
    real = small_embedder.embed

    def counting(images):
        calls.append(len(images))
        return real(images)

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (40, 50, 3), dtype=np.uint8) for _ in range(3)]
    expected = real(images)
    small_embedder.embed = counting
    memo = MemoEmbedder(small_embedder)
    first = memo.embed(images[:2])
    both = memo.embed([images[1], images[2], images[0]])
    assert calls == [2, 1]  # only the image not seen before is embedded
    np.testing.assert_allclose(both.image, expected.image[[1, 2, 0]], rtol=1e-4, atol=1e-5)  # batch-size float noise
    np.testing.assert_allclose(both.patches, expected.patches[[1, 2, 0]], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(first.image, expected.image[:2], rtol=1e-4, atol=1e-5)
    assert memo.fingerprint == small_embedder.fingerprint and memo.config == small_embedder.config
    assert memo_embedder(small_embedder) is memo_embedder(small_embedder)


def test_the_memo_stays_within_its_budget(small_embedder):
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(4)]
    memo = MemoEmbedder(small_embedder, budget_bytes=1)
    again = memo.embed(images)
    assert memo.used_bytes == 0 and len(again.image) == 4  # nothing kept, still every vector given
