# Mirrors the PyTorch recipe "Saving and Loading a General Checkpoint in PyTorch"
# (recipes/recipes/saving_and_loading_a_general_checkpoint.py) and the "Saving and Loading Models" tutorial:
# `torch.save({'epoch': ..., 'model_state_dict': ..., 'optimizer_state_dict': ..., 'loss': ...}, PATH)`, then a new
# model and optimizer, `checkpoint = torch.load(PATH, weights_only=True)`, `model.load_state_dict(...)`,
# `optimizer.load_state_dict(...)`, `epoch = checkpoint['epoch']`, `model.train()` and training on from there.
# The model is a small CNN with BatchNorm2d and Dropout (buffers and train/eval both matter) trained with Adam (its
# per-parameter state is in the optimizer's state_dict). Reduced for tests: --epochs (per half), --limit, --seed,
# --data-dir. Prints whether the reloaded model gives the saved model's outputs; last line "accuracy: 0.XXXX".
import argparse
import os
import tempfile

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(16)
        self.dropout = nn.Dropout(0.25)
        self.fc = nn.Linear(16 * 7 * 7, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        x = self.dropout(torch.flatten(x, 1))
        return self.fc(x)


def train_epoch(model, loader, optimizer, device):
    model.train()
    total = 0.0
    for inputs, labels in loader:
        inputs, labels = inputs.to(device), labels.to(device)
        optimizer.zero_grad()
        loss = F.cross_entropy(model(inputs), labels)
        loss.backward()
        optimizer.step()
        total += loss.item() * inputs.size(0)
    return total / len(loader.dataset)


def evaluate(model, loader, device):
    model.eval()
    correct = 0
    with torch.no_grad():
        for inputs, labels in loader:
            outputs = model(inputs.to(device))
            correct += (outputs.argmax(dim=1) == labels.to(device)).sum().item()
    return correct / len(loader.dataset)


def main():
    parser = argparse.ArgumentParser(description="general checkpoint: save, load, resume")
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--epochs", type=int, default=2, help="epochs before and after the checkpoint")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
    train_set = datasets.FashionMNIST(args.data_dir, train=True, transform=transform)
    test_set = datasets.FashionMNIST(args.data_dir, train=False, transform=transform)
    if args.limit:
        train_set = Subset(train_set, range(args.limit))
        test_set = Subset(test_set, range(args.limit // 2))
    train_loader = DataLoader(train_set, batch_size=64, shuffle=True)
    test_loader = DataLoader(test_set, batch_size=256)

    model = Net().to(device)
    optimizer = optim.Adam(model.parameters(), lr=0.002)
    for epoch in range(args.epochs):
        loss = train_epoch(model, train_loader, optimizer, device)
        print(f"epoch {epoch}: loss {loss:.4f}")

    PATH = os.path.join(tempfile.mkdtemp(), "model.pt")
    torch.save({
        'epoch': epoch,
        'model_state_dict': model.state_dict(),
        'optimizer_state_dict': optimizer.state_dict(),
        'loss': loss,
    }, PATH)

    model = Net()
    optimizer = optim.Adam(model.parameters(), lr=0.002)

    checkpoint = torch.load(PATH, weights_only=True)
    model.load_state_dict(checkpoint['model_state_dict'])
    optimizer.load_state_dict(checkpoint['optimizer_state_dict'])
    epoch = checkpoint['epoch']
    loss = checkpoint['loss']
    model.to(device)
    print(f"resumed after epoch {epoch} (loss {loss:.4f}), optimizer step "
          f"{int(optimizer.state_dict()['state'][0]['step'])}")

    # the reloaded model in eval mode gives the saved weights' outputs: compare with a second load
    reference = Net()
    reference.load_state_dict(torch.load(PATH, weights_only=True)['model_state_dict'])
    model.eval()
    reference.eval()
    probe = next(iter(test_loader))[0][:8]
    with torch.no_grad():
        print("reloaded outputs equal:", torch.equal(model(probe), reference(probe)))
    saved_mean = checkpoint['model_state_dict']['bn1.running_mean']
    print("running_mean restored:", torch.equal(model.bn1.running_mean, saved_mean))

    model.train()
    start = epoch + 1
    for epoch in range(start, start + args.epochs):
        loss = train_epoch(model, train_loader, optimizer, device)
        print(f"epoch {epoch}: loss {loss:.4f}")
    print(f"accuracy: {evaluate(model, test_loader, device):.4f}")


if __name__ == "__main__":
    main()
