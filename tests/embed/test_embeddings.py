"""FaceNet embeddings on real photos: identity is what separates them."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from streamrec.detect.types import FaceDetections
from streamrec.embed.facenet import DEFAULT_THRESHOLD, EmbedConfig, FaceEmbedder
from streamrec.embed.select import main_face, selection_scores


@pytest.fixture(scope="module")
def gallery(faces_dir: Path, models) -> tuple[list[str], np.ndarray]:
    paths = sorted(p for p in faces_dir.glob("*/*") if p.suffix in (".jpg", ".png"))
    results = list(models.analyse(paths))
    assert all(len(r.embeddings) == 1 for r in results), [r.path for r in results if not len(r.embeddings)]
    return [p.parent.name for p in paths], np.stack([r.embeddings[0] for r in results])


def test_embeddings_are_unit_512d_float32(gallery):
    _, vectors = gallery
    assert vectors.shape[1] == 512 and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_same_person_is_closer_than_different_people(gallery):
    labels, vectors = gallery
    dist = np.linalg.norm(vectors[:, None] - vectors[None], axis=2)
    same = np.equal.outer(labels, labels)
    np.fill_diagonal(same, False)
    different = ~np.equal.outer(labels, labels)
    assert dist[same].max() < dist[different].min()
    # and the default threshold sits between them on these photos
    assert dist[same].max() < DEFAULT_THRESHOLD < dist[different].min()


def test_leave_one_out_identification(gallery):
    """Each photo of a person with >= 3 photos is named correctly by its nearest neighbour
    among all the other photos (9 people)."""
    labels, vectors = gallery
    counts = Counter(labels)
    probes = [i for i, name in enumerate(labels) if counts[name] >= 3]
    assert len(probes) >= 16
    for i in probes:
        dist = np.linalg.norm(vectors - vectors[i], axis=1)
        dist[i] = np.inf
        assert labels[int(np.argmin(dist))] == labels[i], f"photo {i} of {labels[i]}"


def test_batching_is_exact(faces_dir: Path, models):
    from streamrec.images import load_image

    image = load_image(faces_dir / "barack_obama" / "4.jpg").rgb
    faces = models.detector.detect(image)[0]
    plain = models.embedder.embed(image, faces)
    crops = models.embedder.crops(image, faces)
    batched = models.embedder.embed_crops(np.concatenate([crops] * 5))
    np.testing.assert_allclose(batched, np.repeat(plain, 5, axis=0), atol=1e-5)


@pytest.mark.parametrize("config", [EmbedConfig(flip=True), EmbedConfig(alignment="warp"), EmbedConfig(margin=0.4)])
def test_every_crop_option_keeps_identity(faces_dir: Path, models, config):
    from streamrec.images import load_image

    embedder = FaceEmbedder(models.embedder.backend, config)
    vectors = []
    for photo in ("barack_obama/1.jpg", "barack_obama/2.jpg", "joe_biden/2.jpg"):
        image = load_image(faces_dir / photo).rgb
        faces = models.detector.detect(image)[0]
        vectors.append(embedder.embed(image, faces[[main_face(faces, image.shape[1], image.shape[0])]])[0])
    same = np.linalg.norm(vectors[0] - vectors[1])
    different = min(np.linalg.norm(vectors[0] - vectors[2]), np.linalg.norm(vectors[1] - vectors[2]))
    assert same < different


def test_no_faces_no_embeddings(models):
    assert models.embedder.embed(np.zeros((50, 50, 3), np.uint8), FaceDetections.empty()).shape == (0, 512)


def _faces(boxes: list[list[float]]) -> FaceDetections:
    n = len(boxes)
    return FaceDetections(np.array(boxes, np.float32), np.ones(n, np.float32), np.zeros((n, 5, 2), np.float32))


def test_main_face_prefers_large_and_central():
    # a big face cut by the left border, and a smaller one in the middle of a 250x250 photo
    faces = _faces([[-100, 40, 50, 220], [80, 70, 170, 190]])
    assert main_face(faces, 250, 250, "largest") == 0
    assert main_face(faces, 250, 250, "largest_clipped") == 1
    assert main_face(faces, 250, 250, "centre") == 1
    assert main_face(FaceDetections.empty(), 250, 250) is None
    with pytest.raises(ValueError, match="unknown face selection"):
        selection_scores(faces, 250, 250, "biggest")  # type: ignore[arg-type]
