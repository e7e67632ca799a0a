"""Float training: AdamW, one-cycle learning rate, gradient clipping, early stopping on validation.

Deterministic: the seed fixes the initial weights and the batch order, and torch runs with
deterministic algorithms, so the same seed and data give the same weights.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from edgegru.checkpoint import Checkpoint
from edgegru.data import Dataset, Normalization, Split
from edgegru.model import GRUClassifier, ModelConfig, count_parameters


@dataclass(frozen=True)
class TrainConfig:
    hidden: int = 64
    layers: int = 1
    variant: str = "reset_after"
    epochs: int = 40
    batch_size: int | None = None  # None: N/16 clamped to [16, 128], so small datasets get enough updates
    learning_rate: float = 5e-3
    weight_decay: float = 1e-4
    clip_norm: float = 1.0
    patience: int = 10  # epochs without a better validation score before stopping
    seed: int = 0


def as_tensors(split: Split, normalization: Normalization) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = normalization.apply(split.x) * (np.arange(split.x.shape[1])[None, :, None] < split.lengths[:, None, None])
    return torch.from_numpy(x), torch.from_numpy(split.lengths), torch.from_numpy(split.y)


@torch.no_grad()
def predict(model: GRUClassifier, split: Split, normalization: Normalization, batch_size: int = 512) -> np.ndarray:
    """Logits [N, classes] for a split (float32)."""
    model.eval()
    x, lengths, _ = as_tensors(split, normalization)
    return torch.cat([model(x[i : i + batch_size], lengths[i : i + batch_size]) for i in range(0, len(x), batch_size)]).numpy()


def accuracy(model: GRUClassifier, split: Split, normalization: Normalization) -> float:
    return accuracy_of(torch.from_numpy(predict(model, split, normalization)), split)


def validation_score(model: GRUClassifier, split: Split, normalization: Normalization) -> tuple[float, float]:
    """(accuracy, -cross-entropy): accuracy first, the loss breaks ties once accuracy saturates."""
    logits = torch.from_numpy(predict(model, split, normalization))
    return accuracy_of(logits, split), -float(nn.functional.cross_entropy(logits, torch.from_numpy(split.y)))


def accuracy_of(logits: torch.Tensor, split: Split) -> float:
    return float((logits.argmax(1).numpy() == split.y).mean())


def train(dataset: Dataset, config: TrainConfig, progress: bool = True) -> tuple[Checkpoint, dict]:
    """Train a classifier on `dataset`; returns the best-on-validation model and its metrics."""
    torch.manual_seed(config.seed)
    torch.use_deterministic_algorithms(True)
    normalization = dataset.normalization()
    model = GRUClassifier(
        ModelConfig(dataset.num_features, config.hidden, dataset.num_classes, config.layers, config.variant)
    )
    x, lengths, y = as_tensors(dataset.train, normalization)
    batch_size = config.batch_size or int(np.clip(len(x) // 16, 16, 128))
    batches_per_epoch = -(-len(x) // batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.learning_rate, total_steps=config.epochs * batches_per_epoch, pct_start=0.15
    )
    loss_function = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(config.seed)
    best = ((-1.0, -np.inf), None, 0)  # (validation score, state dict, epoch)
    start = time.perf_counter()
    bar = tqdm(range(config.epochs), desc=f"train {dataset.name} H={config.hidden}", disable=not progress, unit="epoch")
    for epoch in bar:
        model.train()
        order = torch.randperm(len(x), generator=generator)
        for i in range(0, len(x), batch_size):
            batch = order[i : i + batch_size]
            steps = int(lengths[batch].max())  # trim padding shared by the whole batch
            loss = loss_function(model(x[batch, :steps], lengths[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
            optimizer.step()
            schedule.step()
        score = validation_score(model, dataset.val, normalization)
        if score > best[0]:
            best = (score, copy.deepcopy(model.state_dict()), epoch + 1)
        bar.set_postfix(loss=f"{loss.item():.3f}", val=f"{score[0]:.3f}", best=f"{best[0][0]:.3f}")
        if epoch + 1 - best[2] >= config.patience:
            break
    model.load_state_dict(best[1])
    model.eval()
    metrics = {
        "dataset": dataset.name,
        **asdict(config),
        "params": count_parameters(model),
        "epochs_run": epoch + 1,
        "best_epoch": best[2],
        "val_accuracy": best[0][0],
        "test_accuracy": accuracy(model, dataset.test, normalization),
        "train_seconds": round(time.perf_counter() - start, 2),
    }
    return Checkpoint(model, normalization, dataset.class_names, dataset.name), metrics

