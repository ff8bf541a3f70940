"""A multilayer perceptron, the network of every 2D model."""

from __future__ import annotations

from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh, "leaky_relu": lambda: nn.LeakyReLU(0.2), "elu": nn.ELU}


class MLP(nn.Sequential):
    """in_dim -> [hidden] * layers -> out_dim, activation between linear layers."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 64, layers: int = 2, activation: str = "relu"):
        act = ACTIVATIONS[activation]
        dims = [in_dim] + [hidden] * layers + [out_dim]
        mods: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            mods.append(nn.Linear(a, b))
            if i < len(dims) - 2:
                mods.append(act())
        super().__init__(*mods)
        self.in_dim, self.out_dim = in_dim, out_dim

    def zero_last(self) -> "MLP":
        """Start as the zero map: a coupling layer then begins as the identity."""
        nn.init.zeros_(self[-1].weight)
        nn.init.zeros_(self[-1].bias)
        return self
