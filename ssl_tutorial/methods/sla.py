"""SLA: "Self-supervised Label Augmentation via Input Transformations".

Lee, Hwang & Shin, ICML 2020. Taught in notebooks/01_foundations/02_sla.ipynb.

Adding a self-supervised task to a supervised one is usually done in one of two ways: use the
transformations t_j as *data augmentation* (asks for invariance to them) or add a second head
for the transformation (multi-task). SLA instead learns ONE classifier over the joint labels
(y, j), for N classes and M transformations (here the M = 4 rotations):

    L_SLA(x, y) = (1/M) sum_j  CE( softmax(z(t_j(x))), (y, j) )          -- N*M-way softmax

At test time the M predictions agree on y but not on j, so they are **aggregated**:

    P_aggregated(y | x)  proportional to  exp( (1/M) sum_j z_(y, j)(t_j(x)) )

**Self-distillation** teaches a plain N-way head v on the untransformed image to imitate the
aggregated prediction, for single-pass inference:

    L = L_SLA + KL( P_aggregated(. | x) || softmax(v(x)) ) + CE( softmax(v(x)), y )

``MultiTask`` (class loss + rotation loss with two heads) is the baseline SLA argues against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..views import all_rotations


class SLA(nn.Module):
    num_transforms = 4  # the rotations by 0, 90, 180 and 270 degrees

    def __init__(self, backbone: nn.Module, num_classes: int, distill: bool = True, augment=None):
        super().__init__()
        self.backbone = backbone
        self.num_classes = num_classes
        self.joint_head = nn.Linear(backbone.out_dim, num_classes * self.num_transforms)  # z_(y, j)
        self.single_head = nn.Linear(backbone.out_dim, num_classes)  # v, for self-distillation
        self.distill = distill
        self.augment = augment
        self.hparams = {"num_classes": num_classes, "distill": distill, "augment": repr(augment)}

    def own_rotation(self, z: torch.Tensor) -> torch.Tensor:
        """From the joint logits (M*B, N*M) of the rotated views [all t_0, all t_1, ...], keep for view j
        the logits of the labels (., j): z_(y, j)(t_j(x)), shape (M, B, N)."""
        M = self.num_transforms
        z = z.view(M, -1, self.num_classes, M)  # joint label index = y*M + j
        j = torch.arange(M, device=z.device)
        return z[j, :, :, j]

    def joint_logits(self, images: torch.Tensor) -> torch.Tensor:
        """z_(y, j)(t_j(x)) for every rotation j of every image: shape (M, B, N)."""
        views, _ = all_rotations(images)
        return self.own_rotation(self.joint_head(self.backbone(views)))

    def loss(self, batch):
        images, labels = batch
        if self.augment is not None:
            images = self.augment(images)
        views, rotation = all_rotations(images)
        h = self.backbone(views)
        z = self.joint_head(h)
        joint_label = labels.repeat(self.num_transforms) * self.num_transforms + rotation
        loss = F.cross_entropy(z, joint_label)
        logs = {"joint_acc": (z.argmax(1) == joint_label).float().mean()}
        if self.distill:
            aggregated = self.own_rotation(z).mean(0).detach()  # the teacher: (1/M) sum_j z_(y, j)(t_j(x))
            v = self.single_head(h[:len(images)])  # the untransformed images come first
            loss = loss + F.kl_div(F.log_softmax(v, 1), F.log_softmax(aggregated, 1), log_target=True,
                                   reduction="batchmean") + F.cross_entropy(v, labels)
        return loss, logs

    @torch.no_grad()
    def predict(self, images: torch.Tensor, mode: str = "aggregated", batch_size: int = 512) -> torch.Tensor:
        """Class predictions. ``mode``: "single" (joint head on the untransformed image, labels (y, 0)),
        "aggregated" (all M rotations, averaged logits) or "distilled" (the self-distilled head v)."""
        if mode not in ("single", "aggregated", "distilled"):
            raise ValueError(f"mode must be 'single', 'aggregated' or 'distilled', got {mode!r}")
        self.eval()
        device = next(self.parameters()).device
        out = []
        for i in range(0, len(images), batch_size):
            x = images[i:i + batch_size].to(device)
            if mode == "distilled":
                logits = self.single_head(self.backbone(x))
            else:
                zj = self.joint_logits(x)
                logits = zj[0] if mode == "single" else zj.mean(0)
            out.append(logits.argmax(1).cpu())
        return torch.cat(out)


class MultiTask(nn.Module):
    """The usual way to add a self-supervised task: a class head and a rotation head on shared features.

        L = CE( softmax(u(x)), y ) + (1/M) sum_j CE( softmax(w(t_j(x))), j )
    """

    def __init__(self, backbone: nn.Module, num_classes: int, augment=None):
        super().__init__()
        self.backbone = backbone
        self.class_head = nn.Linear(backbone.out_dim, num_classes)
        self.rotation_head = nn.Linear(backbone.out_dim, SLA.num_transforms)
        self.augment = augment
        self.hparams = {"num_classes": num_classes, "augment": repr(augment)}

    def loss(self, batch):
        images, labels = batch
        if self.augment is not None:
            images = self.augment(images)
        views, rotation = all_rotations(images)
        h = self.backbone(views)
        logits = self.class_head(h[:len(images)])
        loss = F.cross_entropy(logits, labels) + F.cross_entropy(self.rotation_head(h), rotation)
        return loss, {"acc": (logits.argmax(1) == labels).float().mean()}

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        self.eval()
        device = next(self.parameters()).device
        return torch.cat([self.class_head(self.backbone(images[i:i + batch_size].to(device))).argmax(1).cpu()
                          for i in range(0, len(images), batch_size)])
