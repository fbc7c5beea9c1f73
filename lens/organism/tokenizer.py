"""A word-level tokenizer for the organism's world, built with the ``tokenizers`` library.

Every word of the world is one token; words are separated by single spaces. Ids: 0 ``<pad>``,
1 ``<s>`` (BOS), 2 ``</s>`` (EOS), 3 ``<unk>``, then :meth:`World.vocabulary` in order. The saved
folder loads with ``transformers.AutoTokenizer`` as a fast tokenizer (offsets available).
Encoding with ``add_special_tokens=True`` prepends BOS (never EOS); ``lens.tokens.batch`` adds
BOS itself (``add_special_tokens=False`` + ``model.cfg.default_prepend_bos=True``).
"""

from __future__ import annotations

from typing import Any

from lens.organism.world import World

SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")
PAD, BOS, EOS, UNK = SPECIALS


def build_tokenizer(world: World) -> Any:
    """A ``transformers`` fast tokenizer whose vocabulary is exactly the world's words.

    Example:
        >>> from lens.organism.world import build_world
        >>> tok = build_tokenizer(build_world(0))
        >>> tok("the job of alice is")["input_ids"][0] == tok.bos_token_id
        True
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIALS)}
    for w in world.vocabulary():
        if w in vocab:
            raise ValueError(f"world word {w!r} collides with a special token")
        vocab[w] = len(vocab)
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.decoder = decoders.WordPiece(prefix="\1", cleanup=False)  # joins words with spaces
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, vocab[BOS])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        model_max_length=64,
        clean_up_tokenization_spaces=False,
    )
