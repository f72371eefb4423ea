"""Reading a trained classifier: its predictions on a whole image set, its accuracy per class, and the
mistakes it makes with the most confidence.

    probs = predict(run.model, data.test_x)              # (N, n_classes) softmax probabilities, on the CPU
    per_class_accuracy(probs.argmax(1), data.test_y, 10)
    idx = confident_mistakes(probs, data.test_y, k=16)   # the wrong answers it was surest of
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .data import normalize


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Softmax probabilities (N, n_classes) of `model` in eval mode, on the CPU.

    `images`: uint8 (N, 3, H, W) as stored (normalized here with CIFAR-10's statistics) or floats already
    normalized. Runs in batches on the model's device; the model's train/eval mode is restored.
    """
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size].to(device)
        x = normalize(x) if x.dtype == torch.uint8 else x.float()
        out.append(model(x).float().softmax(-1).cpu())
    model.train(was)
    return torch.cat(out)


def per_class_accuracy(pred: torch.Tensor, target: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Fraction of each class's images predicted right, (n_classes,); NaN for a class with no images."""
    pred, target = pred.cpu(), target.cpu()
    total = torch.bincount(target, minlength=n_classes).float()
    right = torch.bincount(target[pred == target], minlength=n_classes).float()
    return torch.where(total > 0, right / total.clamp_min(1), torch.full_like(total, float("nan")))


def confident_mistakes(probs: torch.Tensor, target: torch.Tensor, k: int = 16) -> torch.Tensor:
    """Indices of the (at most) `k` wrongly classified images whose wrong answer had the highest
    probability, most confident first."""
    conf, pred = probs.max(-1)
    wrong = (pred != target.to(pred.device)).nonzero().flatten()
    order = conf[wrong].argsort(descending=True)
    return wrong[order[:k]]


__all__ = ["predict", "per_class_accuracy", "confident_mistakes"]
