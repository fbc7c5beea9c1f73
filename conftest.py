"""Doctests in lens/ and interventions/ run on tiny models: single-threaded, like tests/."""

import torch

torch.set_num_threads(1)
