# Mirrors the PyTorch tutorials "Automatic Differentiation with torch.autograd" (beginner/basics/autogradqs_tutorial.py)
# and "A Gentle Introduction to torch.autograd" (beginner/blitz/autograd_tutorial.py): the one-layer example
# `z = torch.matmul(x, w) + b` with binary_cross_entropy_with_logits, printing `z.grad_fn` / `loss.grad_fn`, walking
# `grad_fn.next_functions` down to the AccumulateGrad leaves (whose `.variable` is the leaf tensor), `loss.backward()`,
# `w.grad`, `torch.no_grad()` and `detach()`, freezing parameters with `requires_grad = False`; then, as
# "Learning PyTorch with Examples" does, a model trained by hand: full-batch gradient descent on softmax regression
# over Fashion-MNIST tensors (`dataset.data`, `dataset.targets`) with `with torch.no_grad(): w -= lr * w.grad`.
# Reduced for tests: --steps, --limit, --seed, --data-dir. Last line: "accuracy: 0.XXXX".
import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision import datasets


def walk(fn, depth=0, leaves=None):
    """Print the backward graph under ``fn``; collect the tensors its AccumulateGrad nodes accumulate into."""
    leaves = [] if leaves is None else leaves
    if fn is None:
        return leaves
    print("  " * depth + fn.name())
    if hasattr(fn, "variable"):
        leaves.append(fn.variable)
    for next_fn, _ in fn.next_functions:
        walk(next_fn, depth + 1, leaves)
    return leaves


parser = argparse.ArgumentParser(description="autograd tutorial")
parser.add_argument("--data-dir", default="data")
parser.add_argument("--steps", type=int, default=150)
parser.add_argument("--lr", type=float, default=0.2)
parser.add_argument("--limit", type=int, default=5000)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
torch.manual_seed(args.seed)

# -- the tutorial's one-layer network -------------------------------------------------------------------------------
x = torch.ones(5)  # input tensor
y = torch.zeros(3)  # expected output
w = torch.randn(5, 3, requires_grad=True)
b = torch.randn(3, requires_grad=True)
z = torch.matmul(x, w) + b
loss = torch.nn.functional.binary_cross_entropy_with_logits(z, y)
print(f"Gradient function for z = {z.grad_fn}")
print(f"Gradient function for loss = {loss.grad_fn}")
leaves = walk(loss.grad_fn)
print("leaves are w and b:", sorted(id(t) for t in leaves) == sorted([id(w), id(b)]))
loss.backward()
print(w.grad)
print(b.grad)
expected = (torch.sigmoid(z.detach()) - y) / 3  # d loss / d z, by hand
print("b.grad is dloss/dz:", torch.allclose(b.grad, expected, atol=1e-6))
print("w.grad is x outer dloss/dz:", torch.allclose(w.grad, x[:, None] * expected, atol=1e-6))

z = torch.matmul(x, w) + b
print(z.requires_grad)
with torch.no_grad():
    z = torch.matmul(x, w) + b
print(z.requires_grad)
z_det = (torch.matmul(x, w) + b).detach()
print(z_det.requires_grad)

# -- the graph of a small CNN reaches every parameter; frozen ones are left out -----------------------------------
model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 10))
out = model(torch.rand(2, 1, 28, 28))
leaves = walk(F.cross_entropy(out, torch.tensor([1, 2])).grad_fn)
params = list(model.parameters())
print(f"graph leaves: {len({id(t) for t in leaves} & {id(p) for p in params})} of {len(params)} parameters")
for param in model[0].parameters():
    param.requires_grad = False
leaves = walk(F.cross_entropy(model(torch.rand(2, 1, 28, 28)), torch.tensor([1, 2])).grad_fn)
print(f"after freezing conv: {len({id(t) for t in leaves} & {id(p) for p in params})} of {len(params)} parameters")

# -- softmax regression trained by hand -----------------------------------------------------------------------------
train = datasets.FashionMNIST(args.data_dir, train=True)
test = datasets.FashionMNIST(args.data_dir, train=False)
X = train.data[:args.limit].float().div(255).view(-1, 28 * 28)
Y = train.targets[:args.limit]
X_test = test.data.float().div(255).view(-1, 28 * 28)
Y_test = test.targets

W = (torch.randn(28 * 28, 10) * 0.01).requires_grad_()
B = torch.zeros(10, requires_grad=True)
for step in range(args.steps):
    loss = F.cross_entropy(X @ W + B, Y)
    loss.backward()
    with torch.no_grad():
        W -= args.lr * W.grad
        B -= args.lr * B.grad
        W.grad = None
        B.grad = None
    if step % 20 == 0:
        print(step, loss.item())

with torch.no_grad():
    accuracy = (torch.argmax(X_test @ W + B, dim=1) == Y_test).float().mean().item()
print(f"accuracy: {accuracy:.4f}")
