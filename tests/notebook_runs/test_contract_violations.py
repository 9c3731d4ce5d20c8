"""Run every exercise notebook with an answer pasted in each stub that gives the right values but breaks what
the next cell needs (a NumPy step, an .item() loss, a float sigma, ...), as a learner might write it.

Each checker must refuse it, and Run All must still reach the end: every cell that runs the learner's
function (``exercises.use``) must say that it used the reference solution and why, in words that name the
next cell's need. Run in the notebook phase of `./course.sh test` (whole notebooks under the ci profile).
"""

import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NB_DIR = Path(__file__).resolve().parents[2] / "notebooks"

# exercise -> (an answer with the right values that breaks the next cell, words of the reason `use` prints)
VIOLATIONS = {
    "langevin_step": ('''def my_langevin_step(x, score, alpha, z):
    return (x + alpha * score + (2 * alpha) ** 0.5 * z).numpy()
''', "score_fn(x, sigma)"),
    "dsm_loss": ('''def my_dsm_loss(score_fn, x, levels, generator):
    sigma = levels[torch.randint(0, len(levels), (x.shape[0],), generator=generator)]
    z = torch.randn(x.shape, generator=generator)
    residual = sigma[:, None] * score_fn(x + sigma[:, None] * z, sigma) + z
    return (0.5 * residual.pow(2).sum(1).mean()).item()
''', "training calls loss.backward()"),
    "num_levels": ('''def my_num_levels(sigma_1, sigma_L, dim, target):
    L = 2.0
    while sigmas.technique2_overlap((sigma_1 / sigma_L) ** (1 / (L - 1)), dim) < target:
        L += 1
    return L
''', "expected an int"),
    "variance_ratio": ('''def my_variance_ratio(eps, sigma_L, gamma, T):
    r, v = 1 - eps / sigma_L**2, torch.tensor([gamma**2], dtype=torch.float64)
    for _ in range(T):
        v = r**2 * v + 2 * eps / sigma_L**2
    return v
''', "math.sqrt(v)"),
    "instance_norm_pp": ('''def my_instance_norm_pp(x, gamma, alpha, beta, eps=1e-5):
    x = x.double()
    mu = x.mean((2, 3), keepdim=True)
    h = (x - mu) / torch.sqrt(x.var((2, 3), keepdim=True, unbiased=False) + eps)
    m, s2 = mu.mean(1, keepdim=True), mu.var(1, keepdim=True, unbiased=False)
    h = h + alpha.view(1, -1, 1, 1) * (mu - m) / torch.sqrt(s2 + eps)
    return gamma.view(1, -1, 1, 1) * h + beta.view(1, -1, 1, 1)
''', "torch.allclose"),
    "training_step": ('''def my_training_step(model, ema, optimizer, x, sigma, z, ema_decay):
    s = sigma.view(-1, 1, 1, 1)
    per_image = 0.5 * (s * model(x + s * z, sigma) + z).pow(2).flatten(1).sum(1)
    optimizer.zero_grad()
    per_image.mean().backward()
    optimizer.step()
    with torch.no_grad():
        for avg, w in zip(ema.parameters(), model.parameters()):
            avg.mul_(ema_decay).add_(w, alpha=1 - ema_decay)
    return per_image.detach()
''', "keeps each step's loss as one number"),
    "annealed_langevin": ('''def my_annealed_langevin(score_fn, x0, sigmas, T, eps, noise):
    x, sigma_L = x0, float(sigmas[-1])
    for i, sigma_i in enumerate(sigmas.tolist()):
        alpha = eps * sigma_i**2 / sigma_L**2
        for j in range(T):
            x = x + alpha * score_fn(x, sigma_i) + math.sqrt(2 * alpha) * noise(1 + i * T + j, x.shape, x.device,
                                                                                 x.dtype)
    return x + sigma_L**2 * score_fn(x, sigma_L)
''', "the U-Net"),
    "interpolate": ('''def my_interpolate(score_fn, tape1, tape2, n, ks, sigmas, T, eps):
    rows = []
    for k in ks:
        c, s = math.cos(k * math.pi / (2 * (n + 1))), math.sin(k * math.pi / (2 * (n + 1)))
        tape = sampling.TapeNoise({i: c * tape1[i] + s * tape2[i] for i in tape1})
        rows.append(sampling.annealed_langevin(score_fn, tape1[0].shape, sigmas, T, eps, noise=tape, progress=False))
    return rows
''', "torch.cat"),
    "guided_score": ('''def my_guided_score(score_fn, classifier_fn, x, sigma, y, scale):
    with torch.enable_grad():
        xg = x.detach().double().requires_grad_(True)
        log_p = classifier_fn(xg.float(), sigma).log_softmax(-1)
        (grad,) = torch.autograd.grad(log_p[torch.arange(x.shape[0]), y].sum(), xg)
    return score_fn(x, sigma) + scale * grad
''', "the sampler adds it to x"),
}
EXERCISE_NBS = [p for p in sorted(NB_DIR.glob("[0-9][0-9]_*.ipynb")) if '"exercise"' in p.read_text()]


def _exercise(source: str) -> str:
    return re.search(r"^def my_(\w+)\(", source, re.M).group(1)


def test_every_exercise_has_a_violation():
    names = {_exercise(c.source) for p in EXERCISE_NBS for c in nbformat.read(p, as_version=4).cells
             if "exercise" in c.metadata.get("tags", [])}
    assert names == set(VIOLATIONS)


@pytest.mark.parametrize("path", EXERCISE_NBS, ids=lambda p: p.stem)
def test_run_all_reaches_the_end_with_answers_that_break_the_next_cell(path, monkeypatch):
    monkeypatch.setenv("PEGASUS_PROFILE", "ci")
    monkeypatch.setenv("TQDM_DISABLE", "1")
    nb = nbformat.read(path, as_version=4)
    pasted = []
    for c in nb.cells:
        if "exercise" in c.metadata.get("tags", []):
            pasted.append(_exercise(c.source))
            c.source = VIOLATIONS[pasted[-1]][0]
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NB_DIR)}})
    client.execute()  # raises on the first cell that fails: Run All reaches the end only if none does
    said = "".join(out.get("text", "") for c in nb.cells if c.cell_type == "code" and "exercises.use(" in c.source
                   for out in c.outputs if out.get("output_type") == "stream")
    for name in pasted:
        line = next(ln for ln in said.splitlines() if ln.startswith(f"[{name}] using"))
        assert line.startswith(f"[{name}] using the reference solution: your my_{name} does not pass its check (wrong: ")
        assert VIOLATIONS[name][1] in line, line
