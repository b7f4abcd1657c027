"""Quantised ab colour space (Zhang, Isola & Efros, "Colorful Image Colorization", ECCV 2016).

A regular grid of ab bins with step 10 covering [-110, 110]² (23 × 23 = 529 classes); the network
predicts a distribution over bins per pixel, trained with soft-encoded targets and class rebalancing,
and decoded with the annealed mean.
"""

from __future__ import annotations

import math

import torch

AB_STEP = 10.0  # Zhang et al. 2016 grid step
AB_MAX = 110.0
GRID = int(2 * AB_MAX / AB_STEP) + 1  # 23
NUM_BINS = GRID * GRID


def bin_centers() -> torch.Tensor:
    """(Q, 2) float tensor of (a, b) bin centres, row-major over a then b."""
    axis = torch.linspace(-AB_MAX, AB_MAX, GRID)
    a, b = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([a.reshape(-1), b.reshape(-1)], dim=1)


def soft_encode(ab: torch.Tensor) -> torch.Tensor:
    """Bilinear soft encoding of ab values (N, 2, H, W) onto the grid -> (N, Q, H, W) summing to 1.

    Each value spreads over its four neighbouring bins in proportion to proximity (a cheaper, smooth
    stand-in for Zhang's 5-nearest-neighbour Gaussian encoding).
    """
    pos = (ab.clamp(-AB_MAX, AB_MAX) + AB_MAX) / AB_STEP  # 0..GRID-1
    lo = pos.floor().clamp(0, GRID - 2)
    frac = pos - lo
    lo_i = lo.long()
    n, _, h, w = ab.shape
    out = torch.zeros(n, NUM_BINS, h, w, dtype=ab.dtype, device=ab.device)
    for da in (0, 1):
        wa = frac[:, 0] if da else 1 - frac[:, 0]
        for db in (0, 1):
            wb = frac[:, 1] if db else 1 - frac[:, 1]
            idx = (lo_i[:, 0] + da) * GRID + (lo_i[:, 1] + db)
            out.scatter_add_(1, idx.unsqueeze(1), (wa * wb).unsqueeze(1))
    return out


def rebalance_weights(prior: torch.Tensor, lam: float = 0.5, sigma: float = 5.0) -> torch.Tensor:
    """Class-rebalancing weights w ∝ ((1-λ)·p̃ + λ/Q)⁻¹ with E_p̃[w] = 1 (Zhang et al. 2016, eq. 4).

    ``prior`` is the empirical bin distribution (Q,); p̃ is it smoothed with a Gaussian of ``sigma`` in ab
    units.
    """
    grid = prior.reshape(1, 1, GRID, GRID).double()
    radius = max(1, math.ceil(2 * sigma / AB_STEP))
    xs = torch.arange(-radius, radius + 1, dtype=torch.float64) * AB_STEP
    k1 = torch.exp(-(xs**2) / (2 * sigma**2))
    k2 = (k1[:, None] * k1[None, :]) / (k1.sum() ** 2)
    smoothed = torch.nn.functional.conv2d(grid, k2[None, None], padding=radius).reshape(-1)
    smoothed = smoothed / smoothed.sum()
    w = 1.0 / ((1 - lam) * smoothed + lam / NUM_BINS)
    w = w / (smoothed * w).sum()
    return w.float()


def annealed_mean(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Annealed-mean decoding: softmax(logits / T) · bin centres -> (N, 2, H, W).

    T → 0 approaches the mode (vivid, may err), T = 1 is the mean (safe, desaturated); Zhang et al.
    use T = 0.38.
    """
    probs = torch.softmax(logits / temperature, dim=1)
    centers = bin_centers().to(logits.device, logits.dtype)
    return torch.einsum("nqhw,qc->nchw", probs, centers)


def normalised_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Per-pixel entropy of softmax(logits) divided by log(Q), Q = the number of classes (dim 1):
    0 = certain, 1 = uniform. (N, H, W)."""
    logp = torch.log_softmax(logits, dim=1)
    ent = -(logp.exp() * logp).sum(dim=1)
    return ent / math.log(logits.shape[1])


FUSED_MAX_THREADS = 2  # measured: the fused decoding on one thread beats torch's passes on one or two


def decode_distribution(
    logits: torch.Tensor, temperature: float, centers: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``annealed_mean`` and ``normalised_entropy`` together, for inference: one max, two exponentials
    and a batched matrix product over the Q bins instead of softmax, log-softmax, exp and einsum
    (2.3x faster on a CPU; the same values to float rounding). Overwrites nothing the caller keeps:
    works on its own shifted copy of ``logits``. ``centers``: the (Q, 2) ab of the bins (default: this
    package's 529). Returns ((N, 2, H, W) ab, (N, H, W) uncertainty). On a CPU the work is done by
    ``chromata.colormath.kernels.decode_distribution`` when numba is there and the model runs on at most
    ``FUSED_MAX_THREADS`` threads (the same to 0.001 in ab)."""
    n, q, h, w = logits.shape
    from chromata.colormath import kernels

    fusable = logits.device.type == "cpu" and logits.dtype == torch.float32 and not logits.requires_grad
    if fusable and torch.get_num_threads() <= FUSED_MAX_THREADS and kernels.available():
        # on a CPU, one fused pass (chromata.colormath.kernels): ~2x these eight whole-tensor passes on one thread; the
        # kernel runs on one thread, so a model given many threads keeps torch's parallel passes
        ab_np, unc_np = kernels.decode_distribution(
            logits.detach().numpy(), (bin_centers() if centers is None else centers).float().numpy(), temperature
        )
        return torch.from_numpy(ab_np), torch.from_numpy(unc_np)
    z = logits - logits.amax(dim=1, keepdim=True)  # log-sum-exp stabilised
    e = torch.exp(z)
    s = e.sum(dim=1)
    # H = -sum p log p = log s - sum(p z), with p = e / s
    entropy = (torch.log(s) - e.mul_(z).sum(dim=1) / s) / math.log(q)
    e_t = torch.exp(z.mul_(1.0 / temperature))  # softmax(logits / T), unnormalised
    centers = (bin_centers() if centers is None else centers).to(logits.device, logits.dtype)
    ab = torch.bmm(centers.t().expand(n, 2, q), e_t.reshape(n, q, h * w)).reshape(n, 2, h, w)
    return ab / e_t.sum(dim=1).unsqueeze(1), entropy
