"""The simulator's random numbers, one definition for every part of it (world, response, touches,
long run, churn truth): independent generators per (block, variable) and counter-based uniforms.

`Streams(seed, block)(name)` gives the generator of one variable of one block of customers, so a
variable's draws never shift when another's change. `u01(key, salt, stream)` is a uniform drawn
from a hash of (key, salt, stream): a customer's draw does not depend on who else is drawn.
"""

from __future__ import annotations

import zlib

import numpy as np


class Streams:
    """One independent generator per (block, variable): draws never shift when others change."""

    def __init__(self, seed: int, block: int):
        self.seed, self.block = seed, block

    def __call__(self, name: str) -> np.random.Generator:
        key = zlib.crc32(name.encode())
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(self.block, key)))


def mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a counter-based hash, uniform over uint64."""
    with np.errstate(over="ignore"):
        z = np.asarray(x, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def u01(key: np.ndarray, salt: np.uint64, stream: int) -> np.ndarray:
    """Uniform [0, 1) from (key, salt, stream), 53 bits."""
    with np.errstate(over="ignore"):
        h = mix(mix(np.asarray(key, dtype=np.uint64) ^ salt)
                + np.uint64(stream) * np.uint64(0xD1B54A32D192ED03))
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / 2**53)


def expit(x: np.ndarray) -> np.ndarray:
    """The logistic function (the simulator's link from logits to probabilities)."""
    return 1.0 / (1.0 + np.exp(-x))


__all__ = ["Streams", "expit", "mix", "u01"]
