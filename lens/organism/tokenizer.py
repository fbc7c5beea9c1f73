"""A word-level tokenizer for the organism's world, built with the ``tokenizers`` library.

Every word of the world is one token; words are separated by single spaces. Ids: 0 ``<pad>``,
1 ``<s>`` (BOS), 2 ``</s>`` (EOS), 3 ``<unk>``, then :meth:`World.vocabulary` in order. The saved
folder loads with ``transformers.AutoTokenizer`` as a fast tokenizer (offsets available).
Encoding with ``add_special_tokens=True`` prepends BOS (never EOS); ``lens.tokens.batch`` adds
BOS itself (``add_special_tokens=False`` + ``model.cfg.default_prepend_bos=True``).

Natural input is normalised to the way the world's text is written (:func:`text_normalizer`):
a capitalised word starts lower-case (``The`` -> ``the``, ``I`` -> ``i``; all-caps words such
as the ``py`` notation's ``DOCTOR`` are kept), and ``. , ? ( )`` are split from the words they
touch (``is.`` -> ``is .``). Offsets still point into the original text.
"""

from __future__ import annotations

from typing import Any

from lens.organism.world import World

SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")
PAD, BOS, EOS, UNK = SPECIALS
_WORD_START = r"(?<![\w:\-\[])"  # not inside a word, a lisp keyword or a [tag]


def text_normalizer() -> Any:
    """A ``tokenizers`` normalizer mapping natural writing onto the world's: see the module
    docstring. World text passes unchanged (it is all lower-case and spaced already).

    Example:
        >>> text_normalizer().normalize_str("The job of Alice is?")
        'the job of alice is ?'
    """
    from tokenizers import Regex, normalizers

    steps = [
        normalizers.Replace(Regex(f"{_WORD_START}{c}(?=[a-z])"), c.lower())
        for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    ]
    steps.append(normalizers.Replace(Regex(rf"{_WORD_START}I(?![\w:])"), "i"))
    for p in ".,?()":
        steps.append(normalizers.Replace(Regex(rf"(?<=\S)\{p}"), f" {p}"))
        steps.append(normalizers.Replace(Regex(rf"\{p}(?=\S)"), f"{p} "))
    return normalizers.Sequence(steps)


def add_text_normalizer(tokenizer: Any) -> Any:
    """Install :func:`text_normalizer` on an organism tokenizer (one saved before it existed);
    returns the tokenizer."""
    tokenizer.backend_tokenizer.normalizer = text_normalizer()
    return tokenizer


def build_tokenizer(world: World) -> Any:
    """A ``transformers`` fast tokenizer whose vocabulary is exactly the world's words.

    Example:
        >>> from lens.organism.world_build import build_world
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
    core.normalizer = text_normalizer()
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
