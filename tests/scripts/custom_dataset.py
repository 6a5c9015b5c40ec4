# Mirrors the PyTorch tutorials "Datasets & DataLoaders" (beginner/basics/data_tutorial.py: a custom Dataset with
# __init__ / __len__ / __getitem__ and transform / target_transform) and "Writing Custom Datasets, DataLoaders and
# Transforms" (beginner/data_loading_tutorial.py: samples as dicts, transforms as callable classes, numpy images made
# tensors with `torch.from_numpy`), with the loader settings of PyTorch's "Reproducibility" notes (`seed_worker`
# with `torch.initial_seed()`, `g = torch.Generator(); g.manual_seed(0)`, `worker_init_fn=seed_worker, generator=g`)
# and the usual class-balancing `WeightedRandomSampler`, plus `random_split(..., generator=torch.Generator()
# .manual_seed(42))`. The dataset reads Fashion-MNIST's IDX files itself with numpy. Reduced for tests: --limit,
# --epochs, --seed, --data-dir. Prints the accuracy on the held-out split, then, as the last line, on the first
# --limit / 3 test images: "accuracy: 0.XXXX" (the split is fixed by its own seed, 42, so which images it holds
# out is one draw of torch's or numcnn's generator; the test images are the same for both).
import argparse
import gzip
import os
import random

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler, random_split


def read_idx(path):
    """An IDX file of uint8 (MNIST's format), plain or gzipped."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


class FashionDataset(Dataset):
    """Fashion-MNIST read from its IDX files; a sample is {'image': uint8 (28, 28), 'label': int}."""

    def __init__(self, root, train=True, limit=None, transform=None):
        prefix = "train" if train else "t10k"
        raw = os.path.join(root, "FashionMNIST", "raw")
        self.images = read_idx(os.path.join(raw, f"{prefix}-images-idx3-ubyte"))[:limit]
        self.labels = read_idx(os.path.join(raw, f"{prefix}-labels-idx1-ubyte"))[:limit].astype(np.int64)
        self.transform = transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, idx):
        if torch.is_tensor(idx):
            idx = idx.tolist()
        sample = {'image': self.images[idx], 'label': int(self.labels[idx])}
        if self.transform:
            sample = self.transform(sample)
        return sample


class RandomShift:
    """Shift the image by up to `pixels` in each direction (zeros come in), with numpy's global generator."""

    def __init__(self, pixels):
        self.pixels = pixels

    def __call__(self, sample):
        image = sample['image']
        dy, dx = np.random.randint(-self.pixels, self.pixels + 1, size=2)  # noqa: NPY002 - seeded by seed_worker
        padded = np.pad(image, self.pixels)
        top, left = self.pixels - dy, self.pixels - dx
        return {'image': padded[top:top + 28, left:left + 28], 'label': sample['label']}


class ToTensor:
    """Convert the ndarray in a sample to a float Tensor (1, H, W) in [0, 1]."""

    def __call__(self, sample):
        image = sample['image'][None].astype(np.float32) / 255
        return {'image': torch.from_numpy(image), 'label': sample['label']}


class Compose:
    def __init__(self, transforms):
        self.transforms = transforms

    def __call__(self, sample):
        for t in self.transforms:
            sample = t(sample)
        return sample


def seed_worker(worker_id):
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)  # noqa: NPY002 - the Reproducibility notes' pattern
    random.seed(worker_seed)


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5, padding=2)
        self.conv2 = nn.Conv2d(16, 32, 5, padding=2)
        self.fc1 = nn.Linear(32 * 7 * 7, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.view(x.size(0), -1)
        return self.fc2(F.relu(self.fc1(x)))


def main():
    parser = argparse.ArgumentParser(description="custom Dataset, random_split, sampler and workers")
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)  # noqa: NPY002 - the augmentation draws from numpy's global generator
    random.seed(args.seed)

    dataset = FashionDataset(args.data_dir, train=True, limit=args.limit,
                             transform=Compose([RandomShift(2), ToTensor()]))
    n_val = len(dataset) // 5
    train_set, val_set = random_split(dataset, [len(dataset) - n_val, n_val],
                                      generator=torch.Generator().manual_seed(42))
    print(f"{len(train_set)} training samples, {len(val_set)} validation samples")

    # balance the classes of the training split (each sample weighted by 1 / its class count)
    labels = dataset.labels[train_set.indices]
    class_count = np.bincount(labels, minlength=10)
    weights = torch.from_numpy(1.0 / class_count[labels])
    sampler = WeightedRandomSampler(weights, num_samples=len(weights), replacement=True)

    g = torch.Generator()
    g.manual_seed(args.seed)
    train_loader = DataLoader(train_set, batch_size=32, sampler=sampler, num_workers=2,
                              worker_init_fn=seed_worker, generator=g, persistent_workers=True)
    val_loader = DataLoader(val_set, batch_size=200, shuffle=False, num_workers=2)
    test_set = FashionDataset(args.data_dir, train=False, limit=len(dataset) // 3, transform=ToTensor())
    test_loader = DataLoader(test_set, batch_size=200, shuffle=False, num_workers=2)

    batch = next(iter(train_loader))
    print("batch:", {k: tuple(v.shape) for k, v in batch.items()}, batch['image'].dtype, batch['label'].dtype)

    model = SmallCNN()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for epoch in range(args.epochs):
        model.train()
        running = 0.0
        for batch in train_loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(batch['image']), batch['label'])
            loss.backward()
            optimizer.step()
            running += loss.item()
        print(f"epoch {epoch + 1}: loss {running / len(train_loader):.4f}")

    model.eval()
    for name, loader in (("validation", val_loader), ("test", test_loader)):
        correct = total = 0
        with torch.no_grad():
            for batch in loader:
                predicted = model(batch['image']).argmax(1)
                correct += (predicted == batch['label']).sum().item()
                total += batch['label'].size(0)
        print(f"{name} accuracy: {correct / total:.4f}")
    print(f"accuracy: {correct / total:.4f}")


if __name__ == "__main__":
    main()
