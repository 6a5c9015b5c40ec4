# Mirrors the LeNet chapter of "Dive into Deep Learning" (d2l.ai, chapter "Convolutional Neural Networks (LeNet)",
# PyTorch edition): LeNet as nn.Sequential with Sigmoid and AvgPool2d, the layer-by-layer shape check on
# `torch.rand(size=(1, 1, 28, 28), dtype=torch.float32)`, `evaluate_accuracy_gpu` (device taken from
# `next(iter(net.parameters())).device`, `net.eval()`, an Accumulator of correct / total), `accuracy(y_hat, y)` with
# `y_hat.argmax(axis=1)` and `cmp = y_hat.type(y.dtype) == y`, `train_ch6` with xavier_uniform_ init via
# `net.apply(init_weights)`, SGD and CrossEntropyLoss, the data loaded as d2l's `load_data_fashion_mnist` does
# (transforms.ToTensor, DataLoader with `num_workers=4`), and with --batch-norm the LeNet of d2l's "Batch
# Normalization" chapter (concise version: BatchNorm2d / BatchNorm1d before each Sigmoid, lr 1.0), which leaves the
# sigmoid plateau in a few hundred steps where plain LeNet needs thousands. Reduced for tests: --epochs, --limit,
# --seed, --data-dir; d2l's plotting Animator is left out. Last line: "accuracy: 0.XXXX" (test accuracy).
import argparse
import time

import torch
import torchvision
from torch import nn
from torch.utils import data
from torchvision import transforms


class Accumulator:
    """For accumulating sums over `n` variables."""
    def __init__(self, n):
        self.data = [0.0] * n

    def add(self, *args):
        self.data = [a + float(b) for a, b in zip(self.data, args)]

    def __getitem__(self, idx):
        return self.data[idx]


def accuracy(y_hat, y):
    """Compute the number of correct predictions."""
    if len(y_hat.shape) > 1 and y_hat.shape[1] > 1:
        y_hat = y_hat.argmax(axis=1)
    cmp = y_hat.type(y.dtype) == y
    return float(cmp.type(y.dtype).sum())


def load_data_fashion_mnist(batch_size, root, limit, resize=None):
    """Download the Fashion-MNIST dataset and then load it into memory."""
    trans = [transforms.ToTensor()]
    if resize:
        trans.insert(0, transforms.Resize(resize))
    trans = transforms.Compose(trans)
    mnist_train = torchvision.datasets.FashionMNIST(root=root, train=True, transform=trans, download=False)
    mnist_test = torchvision.datasets.FashionMNIST(root=root, train=False, transform=trans, download=False)
    if limit:
        mnist_train = data.Subset(mnist_train, range(limit))
        mnist_test = data.Subset(mnist_test, range(limit // 2))
    return (data.DataLoader(mnist_train, batch_size, shuffle=True, num_workers=4),
            data.DataLoader(mnist_test, batch_size, shuffle=False, num_workers=4))


def evaluate_accuracy_gpu(net, data_iter, device=None):
    """Compute the accuracy for a model on a dataset using a GPU."""
    if isinstance(net, nn.Module):
        net.eval()  # Set the model to evaluation mode
        if not device:
            device = next(iter(net.parameters())).device
    # No. of correct predictions, no. of predictions
    metric = Accumulator(2)
    with torch.no_grad():
        for X, y in data_iter:
            if isinstance(X, list):
                X = [x.to(device) for x in X]
            else:
                X = X.to(device)
            y = y.to(device)
            metric.add(accuracy(net(X), y), y.numel())
    return metric[0] / metric[1]


def try_gpu(i=0):
    """Return gpu(i) if exists, otherwise return cpu()."""
    if torch.cuda.device_count() >= i + 1:
        return torch.device(f'cuda:{i}')
    return torch.device('cpu')


def train_ch6(net, train_iter, test_iter, num_epochs, lr, device):
    """Train a model with a GPU."""
    def init_weights(m):
        if type(m) == nn.Linear or type(m) == nn.Conv2d:  # noqa: E721 - d2l's code
            nn.init.xavier_uniform_(m.weight)
    net.apply(init_weights)
    print('training on', device)
    net.to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    loss = nn.CrossEntropyLoss()
    start, num_batches = time.time(), len(train_iter)
    for epoch in range(num_epochs):
        # Sum of training loss, sum of training accuracy, no. of examples
        metric = Accumulator(3)
        net.train()
        for i, (X, y) in enumerate(train_iter):
            optimizer.zero_grad()
            X, y = X.to(device), y.to(device)
            y_hat = net(X)
            l = loss(y_hat, y)  # noqa: E741 - d2l's name
            l.backward()
            optimizer.step()
            with torch.no_grad():
                metric.add(l * X.shape[0], accuracy(y_hat, y), X.shape[0])
            train_l = metric[0] / metric[2]
            train_acc = metric[1] / metric[2]
            if (i + 1) % (num_batches // 5 or 1) == 0 or i == num_batches - 1:
                print(f'epoch {epoch + 1 + (i + 1) / num_batches:.2f}: loss {train_l:.3f}, train acc {train_acc:.3f}')
        test_acc = evaluate_accuracy_gpu(net, test_iter)
        print(f'loss {train_l:.3f}, train acc {train_acc:.3f}, test acc {test_acc:.3f}')
    print(f'{metric[2] * num_epochs / (time.time() - start):.1f} examples/sec on {str(device)}')
    return test_acc


def main():
    parser = argparse.ArgumentParser(description="d2l LeNet")
    parser.add_argument("--data-dir", default="../data")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.9)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-norm", action="store_true", help="d2l's LeNet with batch normalization")
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    if args.batch_norm:
        net = nn.Sequential(
            nn.Conv2d(1, 6, kernel_size=5), nn.BatchNorm2d(6), nn.Sigmoid(),
            nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Conv2d(6, 16, kernel_size=5), nn.BatchNorm2d(16), nn.Sigmoid(),
            nn.AvgPool2d(kernel_size=2, stride=2), nn.Flatten(),
            nn.Linear(256, 120), nn.BatchNorm1d(120), nn.Sigmoid(),
            nn.Linear(120, 84), nn.BatchNorm1d(84), nn.Sigmoid(),
            nn.Linear(84, 10))
    else:
        net = nn.Sequential(
            nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(),
            nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(),
            nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(),
            nn.Linear(120, 84), nn.Sigmoid(),
            nn.Linear(84, 10))

    X = torch.rand(size=(2 if args.batch_norm else 1, 1, 28, 28), dtype=torch.float32)  # BatchNorm1d needs 2 rows
    for layer in net:
        X = layer(X)
        print(layer.__class__.__name__, 'output shape: \t', X.shape)
    print("output shape:", tuple(X.shape))

    train_iter, test_iter = load_data_fashion_mnist(args.batch_size, args.data_dir, args.limit)
    test_acc = train_ch6(net, train_iter, test_iter, args.epochs, args.lr, try_gpu())
    print(f"accuracy: {test_acc:.4f}")


if __name__ == "__main__":
    main()
