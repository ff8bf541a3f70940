"""EBM: the grid normaliser, the Langevin negatives and their buffer, the CD gradient.

Most checks plug in a quadratic energy E(x) = a |x|^2 / 2 + b . x, for which p = exp(-E) / Z
is N(-b / a, I / a) and every moment, score and normaliser is known in closed form.
"""
