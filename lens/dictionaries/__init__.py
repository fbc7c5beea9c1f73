"""Sparse dictionaries (SAEs and transcoders) on TransformerLens 4 bridges: load (lens,
SAELens and eai-sparsify folders), save, splice (``interventions.SpliceSAE`` and friends),
encode, train, evaluate and inspect. See README.md ("Sparse dictionaries").

Example:
    >>> import lens, torch
    >>> model = lens.load_model(lens.tiny_config("llama"))
    >>> sae = lens.dictionaries.random_sae(model, site="resid_post", layer=1, n_latents=128, k=4)
    >>> acts = next(lens.dictionaries.encode(model, sae, [[1, 2, 3]]))
    >>> tuple(acts.acts.shape), int((acts.acts > 0).sum(-1).max()) <= 4
    ((3, 128), True)
"""

from interventions.dictionary import SAE, Transcoder
from interventions.dictionary_edits import FeatureAblation, FeatureSteering, SpliceSAE
from lens.dictionaries.build import binding, random_sae
from lens.dictionaries.encode import TokenActivations, encode
from lens.dictionaries.evaluation import Evaluation, evaluate
from lens.dictionaries.formats import load, save, save_saelens, sparsify_site
from lens.dictionaries.training import Trainer
from lens.dictionaries.training_run import train

__all__ = [
    "SAE",
    "Evaluation",
    "FeatureAblation",
    "FeatureSteering",
    "SpliceSAE",
    "TokenActivations",
    "Trainer",
    "Transcoder",
    "binding",
    "encode",
    "evaluate",
    "load",
    "random_sae",
    "save",
    "save_saelens",
    "sparsify_site",
    "train",
]
