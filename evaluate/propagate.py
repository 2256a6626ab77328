"""CRW label propagation (Jabri et al. 2020) in bounded memory.

For every target frame t the keys are the first frame (every position) and the n_context preceding
frames (positions closer than `radius` feature cells to the query; CRW pads the start of a video with
copies of the first frame, so for t < n_context the first frame fills the missing slots). The top-k
affinities over all keys jointly are soft-maxed with temperature tau and the context soft labels are
averaged with those weights; the prediction becomes the label of frame t for later frames.

Only the keys near each query are ever multiplied: queries are cut into tile x tile blocks and each
block meets the (tile + 2 r) square of keys around it, which is masked to the disk. Top-k of the union
of key sets equals the merge of per-frame top-k, so no affinity row over all context keys exists and
the memory held is n_context + 1 frames of features and soft labels, whatever the video length.
"""
from collections import deque
from functools import lru_cache

import math
import torch
import torch.nn.functional as F

NEG = float("-inf")


@lru_cache(maxsize=8)
def _tiling(h: int, w: int, radius: float, tile: int, device: torch.device = torch.device("cpu")):
    """Key-window geometry for an h x w grid: flat key index per window slot and the allowed mask."""
    p = math.ceil(radius) - 1  # largest offset with distance < radius
    ty, tx = math.ceil(h / tile), math.ceil(w / tile)
    win = tile + 2 * p
    qy = torch.arange(tile).repeat_interleave(tile)  # query position inside its tile
    qx = torch.arange(tile).repeat(tile)
    wy = torch.arange(win).repeat_interleave(win)  # key position inside the window
    wx = torch.arange(win).repeat(win)
    dy = (wy[None, :] - p) - qy[:, None]
    dx = (wx[None, :] - p) - qx[:, None]
    disk = (dy * dy + dx * dx).float().sqrt() < radius  # (tile^2, win^2), as CRW's D < radius
    oy = (torch.arange(ty) * tile)[:, None, None] + wy[None, None, :] - p  # (ty, 1, win^2)
    ox = (torch.arange(tx) * tile)[None, :, None] + wx[None, None, :] - p  # (1, tx, win^2)
    inside = (oy >= 0) & (oy < h) & (ox >= 0) & (ox < w)
    key = torch.where(inside, oy * w + ox, h * w).reshape(ty * tx, win * win)  # h*w = a zero row
    blocked = ~(disk[None] & inside.reshape(ty * tx, 1, win * win))
    return key.to(device), blocked.to(device), ty, tx


def _tiles(q: torch.Tensor, tile: int, ty: int, tx: int) -> torch.Tensor:
    """(C, h, w) -> (ty*tx, tile^2, C), zero padded at the bottom/right."""
    c, h, w = q.shape
    q = F.pad(q, (0, tx * tile - w, 0, ty * tile - h))
    return q.reshape(c, ty, tile, tx, tile).permute(1, 3, 2, 4, 0).reshape(ty * tx, tile * tile, c)


def _untile(x: torch.Tensor, h: int, w: int, tile: int, ty: int, tx: int) -> torch.Tensor:
    """(ty*tx, tile^2, k) -> (h*w, k)."""
    k = x.shape[-1]
    x = x.reshape(ty, tx, tile, tile, k).permute(0, 2, 1, 3, 4).reshape(ty * tile, tx * tile, k)
    return x[:h, :w].reshape(h * w, k)


def key_rows(keys: torch.Tensor) -> torch.Tensor:
    """(C,h,w) -> (h*w + 1, C): one row per key plus a zero row that padded window slots point to."""
    c = keys.shape[0]
    return torch.cat([keys.reshape(c, -1).t(), keys.new_zeros(1, c)])


def _buffer(work: dict, name: str, shape: tuple, dtype, device) -> torch.Tensor:
    """A scratch tensor reused across calls: fresh ~100 MB allocations page-fault on every call
    (glibc hands large blocks back to the OS), which cost more than the gather itself."""
    buf = work.get(name)
    if buf is None or buf.shape != shape or buf.dtype != dtype or buf.device != device:
        buf = work[name] = torch.empty(shape, dtype=dtype, device=device)
    return buf


def local_topk(q: torch.Tensor, keys: torch.Tensor, radius: float, topk: int, tile: int = 8, q_tiles=None,
               work: dict | None = None):
    """Top-k affinities of every query of q (C,h,w) among the keys closer than radius; keys are
    (C,h,w) or key_rows(...). Returns values (h*w, k) and flat key indices (h*w, k).
    `work` holds scratch buffers between calls."""
    c, h, w = q.shape
    key_index, blocked, ty, tx = _tiling(h, w, radius, tile, q.device)
    kt = keys if keys.dim() == 2 else key_rows(keys)
    work = {} if work is None else work
    n_tiles, n_win = key_index.shape
    windows = _buffer(work, "windows", (n_tiles * n_win, c), kt.dtype, kt.device)
    torch.index_select(kt, 0, key_index.flatten(), out=windows)
    windows = windows.view(n_tiles, n_win, c)
    q_tiles = _tiles(q, tile, ty, tx) if q_tiles is None else q_tiles
    aff = _buffer(work, "aff", (n_tiles, tile * tile, n_win), q_tiles.dtype, q_tiles.device)
    torch.bmm(q_tiles, windows.transpose(1, 2), out=aff)  # (tiles, tile^2, win^2)
    aff.masked_fill_(blocked, NEG)
    vals, slot = aff.topk(topk, dim=-1)
    idx = torch.gather(key_index[:, None, :].expand(-1, tile * tile, -1), 2, slot)
    return _untile(vals, h, w, tile, ty, tx), _untile(idx, h, w, tile, ty, tx)


def full_topk(q: torch.Tensor, keys: torch.Tensor, topk: int, chunk: int = 2048):
    """Top-k affinities of every query among all keys (the unrestricted first frame)."""
    c, h, w = q.shape
    qt, kf = q.reshape(c, -1).t(), keys.reshape(c, -1)
    vals, idx = [], []
    for s in range(0, qt.shape[0], chunk):
        v, i = (qt[s:s + chunk] @ kf).topk(topk, dim=-1)
        vals.append(v)
        idx.append(i)
    return torch.cat(vals), torch.cat(idx)


# CRW's evaluation (DESIGN: first frame + 20 preceding frames, radius 12 feature cells, top-k 10, tau 0.05);
# `evaluate davis` options default to these
DEFAULTS = {"n_context": 20, "radius": 12.0, "topk": 10, "tau": 0.05}
N_CONTEXT, RADIUS, TOPK, TAU = DEFAULTS.values()


class Propagator:
    """Feeds frames one at a time; holds the first frame and the last n_context frames."""

    def __init__(self, n_context=N_CONTEXT, radius=RADIUS, topk=TOPK, tau=TAU, tile=8):
        self.n_context, self.radius, self.topk, self.tau, self.tile = n_context, radius, topk, tau, tile
        self.work = {}

    def start(self, feat0: torch.Tensor, labels0: torch.Tensor) -> None:
        """feat0 (C,h,w) L2-normalised, labels0 (K,h,w) soft labels of the first frame."""
        self.shape = feat0.shape[1:]
        labels0 = labels0.to(feat0.device)
        self.first = (feat0, labels0.reshape(labels0.shape[0], -1).t().contiguous())
        self.context = deque([self._entry(feat0, self.first[1])] * self.n_context, maxlen=self.n_context)

    @staticmethod
    def _entry(feat, labels):
        return key_rows(feat), torch.cat([labels, labels.new_zeros(1, labels.shape[1])])

    @torch.no_grad()
    def step(self, feat: torch.Tensor) -> torch.Tensor:
        """Soft labels (K,h,w) of the next frame; they join the context."""
        h, w = self.shape
        f0, l0 = self.first
        v, i = full_topk(feat, f0, self.topk)
        vals, idx, offset = [v], [i], [0]
        tables, start = {id(l0): (l0, 0)}, l0.shape[0]  # label rows of each distinct frame, stacked once
        _, _, ty, tx = _tiling(h, w, self.radius, self.tile, feat.device)
        q_tiles = _tiles(feat, self.tile, ty, tx)
        done = {}
        for keys, lab in self.context:  # the same frame may fill several slots: compute it once
            if id(keys) not in done:
                done[id(keys)] = local_topk(feat, keys, self.radius, self.topk, self.tile, q_tiles, self.work)
            if id(lab) not in tables:
                tables[id(lab)] = (lab, start)
                start += lab.shape[0]
            v, i = done[id(keys)]
            vals.append(v)
            idx.append(i)
            offset.append(tables[id(lab)][1])
        best, slot = torch.cat(vals, 1).topk(self.topk, dim=1)  # over (hw, F*k)
        weights = F.softmax(best / self.tau, dim=1)
        # labels only of the k chosen keys: frame slot -> row offset in the stacked tables, plus the key's row
        rows = torch.gather(torch.cat(idx, 1), 1, slot) + torch.tensor(offset, device=slot.device)[slot // self.topk]
        chosen = torch.cat([t for t, _ in tables.values()])[rows]  # (hw, k, K)
        pred = (weights[..., None] * chosen).sum(1)  # (hw, K)
        self.context.append(self._entry(feat, pred))
        return pred.t().reshape(-1, h, w)


def propagate_full(feats: list, labels0: torch.Tensor, n_context=N_CONTEXT, radius=RADIUS, topk=TOPK, tau=TAU,
                   chunk=512) -> list:
    """Reference: CRW's algorithm written the straightforward way (all context features kept, full
    affinity of every query to every key, the radius applied as a mask afterwards). Slow; for checks."""
    c, h, w = feats[0].shape
    k = labels0.shape[0]
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    pos = torch.stack([ys.flatten(), xs.flatten()], 1).float()
    far = torch.cdist(pos, pos) >= radius  # (hw, hw)
    flat = [f.reshape(c, -1) for f in feats]
    labels = [labels0.reshape(k, -1).t()]
    preds = []
    for t in range(1, len(feats)):
        ctx = [0] + [max(0, t - n_context + j) for j in range(n_context)]
        keys = torch.cat([flat[s] for s in ctx], 1)  # (C, (n+1) hw)
        labs = torch.cat([labels[s] for s in ctx], 0)  # ((n+1) hw, K)
        q = flat[t].t()
        out = []
        for s in range(0, h * w, chunk):
            aff = q[s:s + chunk] @ keys
            aff = aff.reshape(aff.shape[0], n_context + 1, h * w)
            aff[:, 1:].masked_fill_(far[s:s + chunk, None, :], NEG)
            best, idx = aff.reshape(aff.shape[0], -1).topk(topk, dim=1)
            wgt = F.softmax(best / tau, dim=1)
            out.append((wgt[..., None] * labs[idx]).sum(1))
        pred = torch.cat(out)
        labels.append(pred)
        preds.append(pred.t().reshape(k, h, w))
    return preds
