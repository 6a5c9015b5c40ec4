"""numcnn.utils.data answers to the imports PyTorch scripts write for torch.utils.data."""

import importlib

import numpy as np
import torch.utils.data as tud

import numcnn.data
import numcnn.utils.data as nud

NAMES = ["BatchSampler", "ChainDataset", "ConcatDataset", "DataLoader", "Dataset", "IterableDataset", "RandomSampler",
         "Sampler", "SequentialSampler", "StackDataset", "Subset", "SubsetRandomSampler", "TensorDataset",
         "WeightedRandomSampler", "default_collate", "default_convert", "get_worker_info", "random_split"]


def test_torch_names_exist_and_are_torch_names():
    for name in NAMES:
        assert hasattr(tud, name), name  # the names are torch's
        assert hasattr(nud, name), name


def test_submodule_imports():
    for module, names in {"sampler": ["SubsetRandomSampler", "WeightedRandomSampler", "BatchSampler", "Sampler"],
                          "dataset": ["Dataset", "TensorDataset", "Subset", "random_split", "ConcatDataset"],
                          "dataloader": ["DataLoader", "default_collate", "get_worker_info"]}.items():
        ours = importlib.import_module(f"numcnn.utils.data.{module}")
        theirs = importlib.import_module(f"torch.utils.data.{module}")
        for name in names:
            assert hasattr(theirs, name) and getattr(ours, name) is getattr(nud, name), (module, name)


def test_numcnn_data_keeps_its_image_batches():
    x = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4)
    images, labels = next(iter(numcnn.data.DataLoader(numcnn.data.TensorDataset(x, np.arange(2)), batch_size=2)))
    assert images.shape == (2, 1, 4, 4)  # numcnn.data: channel added, uint8 scaled to float32
    np.testing.assert_array_equal(images.numpy(), x[:, None] / np.float32(255))
    batch = next(iter(nud.DataLoader(nud.TensorDataset(x, np.arange(2)), batch_size=2)))
    assert isinstance(batch, list) and batch[0].shape == (2, 4, 4)  # torch: stacked as they are
    np.testing.assert_array_equal(batch[0].numpy(), x)
