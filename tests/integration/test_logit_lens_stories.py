"""The logit lens on stories260k (a real trained tiny Llama): at the last layer, the top-1 of
every position is the model's greedy next token, and along the README's known greedy story it
predicts the story's next token. Skips when the folder is absent."""

from __future__ import annotations

import torch

import lens

README_PROMPT = [1, 403, 407, 261, 378]  # BOS + "Once upon a time"
README_TEXT = (
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
    "park. One day,"
)


def test_last_layer_top1_is_greedy_next_token(stories_model):
    model = stories_model
    prompt_ids = model.tokenizer.encode("Once upon a time", add_special_tokens=False)
    assert [model.tokenizer.bos_token_id, *prompt_ids] == README_PROMPT
    new = lens.generate.greedy_tokens(model, [README_PROMPT], max_new_tokens=30)[0].tolist()
    story = model.tokenizer.decode(README_PROMPT[1:] + new, skip_special_tokens=True)
    assert README_TEXT.startswith(story.strip()) or story.strip().startswith(README_TEXT)

    sequence = README_PROMPT + new
    res = lens.logit_lens(model, [sequence], positions="all", top_k=3)
    top1 = res.top_ids[-1, 0, :, 0].tolist()
    with torch.no_grad():
        greedy = model(torch.tensor([sequence])).argmax(-1)[0].tolist()
    assert top1 == greedy  # every position, the prompt included
    assert top1[len(README_PROMPT) - 1 : -1] == new  # along the README's greedy story
    assert res.top_ids.shape[0] == model.cfg.n_layers == 5
