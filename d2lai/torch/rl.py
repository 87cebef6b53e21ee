"""The reinforcement-learning chapter's environment and figures: `make_env('FrozenLake-v1')`
(on gymnasium, the optional `rl` extra) gives the environment with its Markov decision process
spelled out, and `show_value_function_progress` / `show_Q_function_progress` draw how the value
function and the greedy policy change over the iterations."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["frozen_lake", "make_env", "show_value_function_progress",
           "show_Q_function_progress"]

ARROWS = {0: (-0.25, 0.0), 1: (0.0, 0.25), 2: (0.25, 0.0), 3: (0.0, -0.25)}  # L, D, R, U
LETTERS = {"H": ("y", 20), "G": ("w", 20)}  # holes and the goal; the rest green, smaller


def _gymnasium():
    try:
        import gymnasium
    except ImportError:
        raise ImportError("the reinforcement-learning environments need gymnasium, the 'rl' "
                          "extra: pip install 'd2lai[rl]' (or pip install gymnasium)") from None
    return gymnasium


class BookStepAPI:
    """A gymnasium environment with the step API the chapter's code is written in (gym before
    0.26): `reset()` gives the state alone, `step(action)` gives (state, reward, done, info)
    with done = terminated or truncated. Anything else is the environment's own
    (`desc`, `P`, `action_space`, ...)."""

    def __init__(self, env, seed=None):
        self.env, self._seed = env, seed

    def reset(self, seed=None, options=None):
        seed = self._seed if seed is None else seed
        self._seed = None  # the first reset seeds the environment; later ones go on from there
        state, _ = self.env.reset(seed=seed, options=options)
        return state

    def step(self, action):
        state, reward, terminated, truncated, info = self.env.step(action)
        return state, reward, terminated or truncated, info

    def seed(self, seed):
        """Seed the next reset and the action space (gym's old `env.seed`)."""
        self._seed = seed
        self.env.action_space.seed(seed)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return getattr(self.env, name)
        except AttributeError:
            return getattr(self.env.unwrapped, name)


def frozen_lake(seed):
    """FrozenLake-v1 (4 x 4, not slippery) and its Markov decision process: a dict with `desc`
    (the map, bytes), `num_states`, `num_actions`, `mdp` ((state, action) -> [(probability,
    next state, reward, done), ...]), the indices of those four in each tuple, and `env`."""
    gym = _gymnasium()
    env = BookStepAPI(gym.make("FrozenLake-v1", is_slippery=False), seed)
    env.seed(seed)
    lake = env.unwrapped
    mdp = {(s, a): transitions for s, actions in lake.P.items()
           for a, transitions in actions.items()}
    return {"desc": lake.desc, "num_states": env.observation_space.n,
            "num_actions": env.action_space.n, "trans_prob_idx": 0, "nextstate_idx": 1,
            "reward_idx": 2, "done_idx": 3, "mdp": mdp, "env": env}


def make_env(name='', seed=0):
    """The environment `name` as `frozen_lake` describes it; only 'FrozenLake-v1' for now."""
    if name == "FrozenLake-v1":
        return frozen_lake(seed)
    raise ValueError(f"make_env: environment {name!r} is not supported; the chapter's is "
                     f"'FrozenLake-v1'")


def _draw_progress(env_desc, V, pi, steps):
    """One panel per row of V and pi: the value of each cell in grey, its letter, and an arrow
    for the greedy action (none on holes and the goal); a pyplot figure, 4 panels a row."""
    from matplotlib import pyplot as plt

    desc = np.asarray(env_desc)
    V, pi = np.asarray(V, dtype=float), np.asarray(pi)
    if desc.ndim != 2:
        raise ValueError(f"env_desc must be the 2-d map of the lake, got shape {desc.shape}")
    if V.ndim != 2 or V.shape[1] != desc.size or pi.shape != V.shape:
        raise ValueError(f"V and pi must both be (iterations, {desc.size} states) for a "
                         f"{desc.shape[0]} x {desc.shape[1]} map, got {V.shape} and {pi.shape}")
    rows_, cols_ = desc.shape
    rows = math.ceil(len(V) / 4)
    fig, axes = plt.subplots(rows, 4, figsize=(15, 15 * rows / 4), squeeze=False)
    for ax in axes.flat[len(V):]:
        ax.axis("off")
    for ax, values, actions, step in zip(axes.flat, V, pi, steps, strict=False):
        ax.imshow(values.reshape(rows_, cols_), cmap="bone")
        ax.set_xticks(np.arange(cols_ + 1) - 0.5, minor=True)
        ax.set_yticks(np.arange(rows_ + 1) - 0.5, minor=True)
        ax.grid(which="minor", color="w", linestyle="-", linewidth=3)
        ax.tick_params(which="minor", bottom=False, left=False)
        ax.set_xticks([])
        ax.set_yticks([])
        for y in range(rows_):
            for x in range(cols_):
                cell = desc[y, x].decode() if isinstance(desc[y, x], bytes) else str(desc[y, x])
                color, size = LETTERS.get(cell, ("g", 15))
                ax.text(x, y, cell, ha="center", va="center", color=color, size=size,
                        fontweight="bold")
                if cell not in LETTERS:
                    dx, dy = ARROWS[int(actions.reshape(rows_, cols_)[y, x])]
                    ax.arrow(x, y, dx, dy, color="r", head_width=0.2, head_length=0.15)
        ax.set_title(f"Step = {step}", fontsize=20)
    fig.tight_layout()
    return fig


def show_value_function_progress(env_desc, V, pi):
    """The value function V and policy pi after each iteration (V, pi: iterations x states),
    a panel each."""
    _draw_progress(env_desc, V, pi, range(1, len(V) + 1))


def show_Q_function_progress(env_desc, V_all, pi_all):
    """As `show_value_function_progress` for many iterations: about ten panels, every tenth of
    the way, and the last."""
    n = len(V_all)
    if n == 0:
        raise ValueError("show_Q_function_progress: V_all has no iterations")
    shown = list(range(0, n, max(1, n // 10)))
    if shown[-1] != n - 1:
        shown.append(n - 1)
    V_all, pi_all = np.asarray(V_all), np.asarray(pi_all)
    _draw_progress(env_desc, V_all[shown], pi_all[shown], [i + 1 for i in shown])
