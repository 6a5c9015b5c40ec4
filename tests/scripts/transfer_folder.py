# Mirrors the PyTorch "Transfer Learning for Computer Vision Tutorial" (beginner/transfer_learning_tutorial.py):
# a `data_transforms` dict ('train': RandomRotation / Resize / CenterCrop / RandomHorizontalFlip / ToTensor /
# Normalize with ImageNet's mean and std; 'val': Resize / CenterCrop / ToTensor / Normalize), `image_datasets = {x:
# datasets.ImageFolder(os.path.join(data_dir, x), data_transforms[x]) ...}`, `dataloaders`, `dataset_sizes`,
# `class_names`, a batch shown with `torchvision.utils.make_grid` (saved with `save_image` instead of plotted),
# `train_model` with its train/val phases, `torch.set_grad_enabled(phase == 'train')`, `torch.max(outputs, 1)`,
# `running_corrects += torch.sum(preds == labels.data)`, `running_corrects.double() / dataset_sizes[phase]`,
# `copy.deepcopy(model.state_dict())` of the best epoch and StepLR. A small CNN trained from scratch replaces the
# pretrained ResNet-18 (no weights download here). --data-dir holds train/<class>/*.png and val/<class>/*.png.
# Reduced for tests: --epochs, --seed. Last line: "accuracy: 0.XXXX" (best val accuracy).
import argparse
import copy
import os
import tempfile
import time

import torch
import torch.nn as nn
import torch.optim as optim
import torchvision
from PIL import Image
from torch.optim import lr_scheduler
from torchvision import datasets, transforms

parser = argparse.ArgumentParser(description="transfer learning tutorial, ImageFolder part")
parser.add_argument("--data-dir", default="data/hymenoptera_data")
parser.add_argument("--epochs", type=int, default=25)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
torch.manual_seed(args.seed)

mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
data_transforms = {
    'train': transforms.Compose([
        transforms.RandomRotation(10),
        transforms.Resize(36),
        transforms.CenterCrop(32),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize(mean, std)
    ]),
    'val': transforms.Compose([
        transforms.Resize(36),
        transforms.CenterCrop(32),
        transforms.ToTensor(),
        transforms.Normalize(mean, std)
    ]),
}

data_dir = args.data_dir
image_datasets = {x: datasets.ImageFolder(os.path.join(data_dir, x), data_transforms[x])
                  for x in ['train', 'val']}
dataloaders = {x: torch.utils.data.DataLoader(image_datasets[x], batch_size=16, shuffle=True, num_workers=2)
               for x in ['train', 'val']}
dataset_sizes = {x: len(image_datasets[x]) for x in ['train', 'val']}
class_names = image_datasets['train'].classes
print(dataset_sizes, class_names)

device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")

# Get a batch of training data and make a grid from it (the tutorial's imshow, written to a file here)
inputs, classes = next(iter(dataloaders['train']))
out = torchvision.utils.make_grid(inputs)
print("grid:", tuple(out.shape), [class_names[x] for x in classes][:4])
grid_path = os.path.join(tempfile.mkdtemp(), "batch.png")
unnormalized = inputs * torch.tensor(std).view(1, 3, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1)
torchvision.utils.save_image(unnormalized, grid_path, nrow=8)
with Image.open(grid_path) as img:
    print(f"saved: {img.size[0]}x{img.size[1]} {img.mode}")


def train_model(model, criterion, optimizer, scheduler, num_epochs=25):
    since = time.time()
    best_model_wts = copy.deepcopy(model.state_dict())
    best_acc = 0.0

    for epoch in range(num_epochs):
        print(f'Epoch {epoch}/{num_epochs - 1}')
        print('-' * 10)

        # Each epoch has a training and validation phase
        for phase in ['train', 'val']:
            if phase == 'train':
                model.train()  # Set model to training mode
            else:
                model.eval()   # Set model to evaluate mode

            running_loss = 0.0
            running_corrects = 0

            # Iterate over data.
            for inputs, labels in dataloaders[phase]:
                inputs = inputs.to(device)
                labels = labels.to(device)

                # zero the parameter gradients
                optimizer.zero_grad()

                # forward
                # track history if only in train
                with torch.set_grad_enabled(phase == 'train'):
                    outputs = model(inputs)
                    _, preds = torch.max(outputs, 1)
                    loss = criterion(outputs, labels)

                    # backward + optimize only if in training phase
                    if phase == 'train':
                        loss.backward()
                        optimizer.step()

                # statistics
                running_loss += loss.item() * inputs.size(0)
                running_corrects += torch.sum(preds == labels.data)
            if phase == 'train':
                scheduler.step()

            epoch_loss = running_loss / dataset_sizes[phase]
            epoch_acc = running_corrects.double() / dataset_sizes[phase]

            print(f'{phase} Loss: {epoch_loss:.4f} Acc: {epoch_acc:.4f}')

            # deep copy the model
            if phase == 'val' and epoch_acc > best_acc:
                best_acc = epoch_acc
                best_model_wts = copy.deepcopy(model.state_dict())

        print()

    time_elapsed = time.time() - since
    print(f'Training complete in {time_elapsed // 60:.0f}m {time_elapsed % 60:.0f}s')
    print(f'Best val Acc: {best_acc:4f}')

    # load best model weights
    model.load_state_dict(best_model_wts)
    return model, float(best_acc)


model_ft = nn.Sequential(
    nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(32 * 8 * 8, len(class_names)))
model_ft = model_ft.to(device)

criterion = nn.CrossEntropyLoss()

# Observe that all parameters are being optimized
optimizer_ft = optim.SGD(model_ft.parameters(), lr=0.01, momentum=0.9)

# Decay LR by a factor of 0.1 every 7 epochs
exp_lr_scheduler = lr_scheduler.StepLR(optimizer_ft, step_size=7, gamma=0.1)

model_ft, best_acc = train_model(model_ft, criterion, optimizer_ft, exp_lr_scheduler, num_epochs=args.epochs)
print(f"accuracy: {best_acc:.4f}")
