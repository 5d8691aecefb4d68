"""A model ready for batched inference: its transforms, the shape of its
output, and where it runs."""

import numpy as np
import pytest
import torch
from PIL import Image

from fiftyone_dedup.algorithms import embedding_model as em


def test_squash_transform_resizes_the_whole_image_to_uint8():
    img = Image.new("RGB", (64, 32), (255, 0, 0))
    x = em.SquashTransform((16, 8))(img)
    assert x.shape == (3, 8, 16) and x.dtype == torch.uint8 and int(x[0].min()) == 255
    grey = em.SquashTransform((16, 8), grey=True)(img)
    assert grey.shape == (1, 8, 16) and int(grey.max()) == 76  # the luma of red
    assert repr(em.SquashTransform((16, 8))) == "SquashTransform(size=(16, 8), grey=False)"


def test_sizes_are_probed_and_drafts_keep_the_detail():
    assert em.transform_size(em.SquashTransform((224, 200))) == (224, 200)
    assert em.transform_size(lambda img: 1 / 0) is None
    assert em.transform_size(lambda img: np.zeros(5)) is None
    assert em.draft_size((224, 224)) == (256, 256)
    assert em.draft_size(None) is None


def test_batches_become_float32_embeddings_or_are_explained():
    model = em.EmbeddingModel(
        "toy", forward=lambda b: b.float().mean((2, 3), keepdim=True),
        transform=em.SquashTransform((4, 4)),
    )
    batch = torch.full((2, 3, 4, 4), 2, dtype=torch.uint8)
    out = model.embed_batch(batch)  # (N, D, 1, 1) feature maps are squeezed
    assert out.shape == (2, 3) and out.dtype == np.float32 and np.all(out == 2)
    model.forward = lambda b: b.float().sum()
    with pytest.raises(ValueError, match=r"Model 'toy' returned an array of shape \(\)"):
        model.embed_batch(batch)
    assert repr(model) == "EmbeddingModel('toy', input_size=None, runtime='torch')"


def test_moving_off_the_cpu_gives_a_cpu_only_runtime_way_to_torch():
    module = torch.nn.Identity()

    class CpuOnly:
        cpu_only = True

    model = em.EmbeddingModel(
        "toy", forward=CpuOnly(), transform=None, module=module, runtime="onnxruntime"
    )
    assert model.to(torch.device("cpu")).forward.__class__ is CpuOnly
    model.to(torch.device("meta"))  # any device but the CPU
    assert model.forward is module and model.runtime == "torch"
    assert model.device == torch.device("meta")
    assert issubclass(em.ModelUnavailableError, ValueError)
