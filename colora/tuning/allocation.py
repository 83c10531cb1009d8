"""CoLoRA's rank allocation: LoRA capacity in proportion to each layer's FAIG contribution.

The paper shows delta = "ratio of learnable network parameters" per layer (0 .. 0.5) driven by the
contribution, with two scalars alpha, beta, but gives no formula. Ours:

    s_i     = FAIG score of layer i, min-max normalised to [0, 1]
    delta_i = clip(alpha * s_i + beta, 0, delta_max)          fraction of the layer made trainable
    r_i     = round(delta_i * d_i * k_i / (d_i + k_i))         for a d_i x k_i weight (C_out x C_in*k*k)

since a rank-r LoRA of a d x k weight has r (d + k) parameters, r_i makes exactly the fraction delta_i
trainable. alpha is found by bisection so that the adapter's trainable parameters -- LoRA plus the
`extra` parameters it also trains (the method's extras: biases, norms, layer scales, as
colora.adapters.base.Method.trained_extras decides) -- hit `budget` x (base parameters); a final pass
moves single ranks (highest scores first) to land within 1 % when rounding leaves a gap.
beta (default 0) gives every layer a floor; delta_max (default 0.5, the paper's colour bar) a cap,
so a budget above ~delta_max cannot be met: that is an error, not a silently smaller adapter.
"""
from colora.adapters.base import adaptable_layers
from colora.errors import ColoraError


def layer_shapes(model):
    """{path: (d, k)} of the LoRA-adaptable layers: d = C_out, k = C_in/groups * kh * kw."""
    modules = dict(model.named_modules())
    return {p: (modules[p].weight.shape[0], modules[p].weight[0].numel()) for p in adaptable_layers(model)}


def allocate_ranks(model, rows, budget, extra, beta=0.0, delta_max=0.5, base_params=None):
    """{layer path: rank} from FAIG rows (as faig.layer_table gives), for an adapter that also
    trains `extra` parameters besides LoRA. Returns (ranks, table, total trainable)."""
    shapes = layer_shapes(model)
    scores = {r["name"]: r["score"] for r in rows}
    missing = [p for p in shapes if p not in scores]
    if missing:
        raise ColoraError(f"the FAIG profile has no score for {len(missing)} layers of this model "
                          f"(e.g. '{missing[0]}'); it was made for another architecture: rerun colora faig")
    if base_params is None:
        base_params = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("colora_adapters."))
    target = budget * base_params
    if extra >= target:
        raise ColoraError(f"adapter.budget {budget} allows {int(target):,} parameters but the biases/norms/"
                          f"scales CoLoRA trains already take {extra:,}; raise the budget or set "
                          "train_bias/train_norm/train_layer_scale to false")
    lo_s, hi_s = min(scores[p] for p in shapes), max(scores[p] for p in shapes)
    norm = {p: (scores[p] - lo_s) / (hi_s - lo_s) if hi_s > lo_s else 1.0 for p in shapes}

    def ranks_for(alpha):
        out = {}
        for p, (d, k) in shapes.items():
            delta = min(max(alpha * norm[p] + beta, 0.0), delta_max)
            out[p] = min(int(round(delta * d * k / (d + k))), min(d, k))
        return out

    def total(ranks):
        return extra + sum(r * sum(shapes[p]) for p, r in ranks.items())

    lo, hi = 0.0, 1.0
    while total(ranks_for(hi)) < target and hi < 1e6:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if total(ranks_for(mid)) < target else (lo, mid)
    ranks = min((ranks_for(lo), ranks_for(hi)), key=lambda r: abs(total(r) - target))
    ranks = _nudge(ranks, shapes, norm, target, total, delta_max)
    if total(ranks) < 0.99 * target:  # every layer at delta_max: the budget is out of reach
        raise ColoraError(f"adapter.budget {budget} cannot be met: with at most {delta_max:g} of each layer made "
                          f"trainable (delta_max), CoLoRA reaches {total(ranks):,} parameters "
                          f"({total(ranks) / base_params:.3f} of the base); lower the budget")
    table = [{"name": p, "score": scores[p], "s": norm[p], "delta": ranks[p] * sum(shapes[p]) / (shapes[p][0] * shapes[p][1]),
              "rank": ranks[p], "params": ranks[p] * sum(shapes[p])} for p in shapes]
    return ranks, table, total(ranks)


def _nudge(ranks, shapes, norm, target, total, delta_max):
    """Move single ranks until the total is within 1 % of the target (or no move helps)."""
    order = sorted(shapes, key=lambda p: -norm[p])
    for _ in range(10000):
        gap = target - total(ranks)
        if abs(gap) <= 0.01 * target:
            break
        if gap > 0:  # add capacity to the best-scoring layer that has room and fits the gap best
            room = [p for p in order if ranks[p] < min(shapes[p]) and
                    (ranks[p] + 1) * sum(shapes[p]) <= delta_max * shapes[p][0] * shapes[p][1]]
            if not room:
                break
            p = min(room[:8], key=lambda q: abs(gap - sum(shapes[q])))
            ranks[p] += 1
        else:  # remove from the lowest-scoring layer that has some
            have = [p for p in reversed(order) if ranks[p] > 0]
            if not have:
                break
            p = min(have[:8], key=lambda q: abs(-gap - sum(shapes[q])))
            ranks[p] -= 1
    return ranks


def uniform_rank(model, budget, extra, base_params=None):
    """The one LoRA rank for every adapted layer whose trainable count (LoRA plus `extra`
    parameters besides) is nearest `budget` x base: uniform LoRA "at the same budget" as CoLoRA, the
    comparison of the paper's fine-tuning ablation. Ranks clamp at min(d, k) as LoRA does."""
    shapes = layer_shapes(model)
    if base_params is None:
        base_params = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("colora_adapters."))

    def total(r):
        return extra + sum(min(r, d, k) * (d + k) for d, k in shapes.values())

    top = max(min(d, k) for d, k in shapes.values())
    return min(range(1, top + 1), key=lambda r: abs(total(r) - budget * base_params))


def format_table(table, limit=None):
    lines = [f"{'layer':40s} {'score':>10s} {'s':>5s} {'delta':>6s} {'rank':>5s} {'params':>8s}"]
    for r in table[:limit]:
        lines.append(f"{r['name'][:40]:40s} {r['score']:10.3e} {r['s']:5.2f} {r['delta']:6.3f} {r['rank']:5d} {r['params']:8d}")
    return "\n".join(lines)
